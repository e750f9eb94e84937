package runner

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/catalog"
	"github.com/reachprobe/reachprobe/probes/dnsprobe"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// closedUDPPort returns a loopback UDP port nothing listens on: the kernel
// answers datagrams to it with a port unreachable from the target itself.
func closedUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return port
}

// callLab serves a call target (and a push target, which gets no arrival
// step) at 127.0.0.1 on a closed UDP port.
func callLab(t *testing.T) (measurements.Catalog, *dnsprobe.Resolver) {
	t.Helper()
	port := closedUDPPort(t)
	zone := probetest.Zone{"relay.test": {Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}}
	text := fmt.Sprintf("[target relay]\ngroup = call\nhost = relay.test\nports = %d\ntransports = udp\nnetworks = 127.0.0.0/8\n\n"+
		"[target stunpush]\ngroup = push\nhost = relay.test\nports = %d\ntransports = udp\nnetworks = 127.0.0.0/8\n", port, port)
	srv, err := probetest.StartDNS("127.0.0.1:0", zone)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cat, err := catalog.Parse("call", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	system := systemResolver(srv.Addr())
	return cat, &dnsprobe.Resolver{Nameservers: []string{srv.Addr()}, System: system, ListenWindow: -1}
}

func TestArrivalStep(t *testing.T) {
	tests := []struct {
		name         string
		noPathProbes bool
		want         int // arrival steps
	}{
		{name: "call endpoints get an arrival step", want: 1},
		{name: "no-path-probes sends none", noPathProbes: true, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cat, res := callLab(t)
			rec := &memRecorder{}
			r := &Runner{Catalog: cat, Resolver: res, Recorder: rec, NoPathProbes: tt.noPathProbes, HasRoute: func(netip.Addr) bool { return true }}
			if _, err := r.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			var got []*measurements.Observation
			for _, o := range rec.obs {
				if o.Step == measurements.StepArrival {
					got = append(got, o)
				}
			}
			if len(got) != tt.want {
				t.Fatalf("arrival steps = %d, want %d", len(got), tt.want)
			}
			for _, o := range got {
				if o.Group != measurements.GroupCall || o.Arrival == nil || len(o.Arrival.Kinds) != 4 {
					t.Fatalf("arrival step %+v: want the call target's, with 4 kinds", o)
				}
				if o.Arrival.ICMPSkipped != "" {
					t.Skipf("ICMP errors unreadable here: %s", o.Arrival.ICMPSkipped)
				}
				for _, k := range o.Arrival.Kinds {
					if k.Evidence != measurements.ArrivalPortUnreachable || k.ICMP == nil || !k.ICMP.FromTarget {
						t.Errorf("kind %s: evidence %s, icmp %+v; want a port unreachable from the target", k.Kind, k.Evidence, k.ICMP)
					}
				}
			}
		})
	}
}

// TestTraceRequests checks that a plan's trace request makes two trace
// steps (a TCP control to the same address, a UDP control to another),
// marked as the confirmation pass's, and that NoPathProbes drops them.
func TestTraceRequests(t *testing.T) {
	cat, res := callLab(t)
	port := cat.Targets[0].Ports[0]
	req := TraceRequest{Target: "relay", Test: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)), TCPPort: 443,
		ControlTarget: "stunpush", Control: netip.MustParseAddr("127.0.0.2")}
	for _, noPath := range []bool{false, true} {
		t.Run(fmt.Sprintf("no-path-probes=%v", noPath), func(t *testing.T) {
			rec := &memRecorder{}
			r := &Runner{Catalog: cat, Resolver: res, Recorder: rec, NoPathProbes: noPath, ConfirmDelay: -1,
				HasRoute: func(netip.Addr) bool { return true },
				ASLookup: func(netip.Addr) (uint, string) { return 64500, "Lab" },
				Confirm:  func(context.Context) (ConfirmPlan, error) { return ConfirmPlan{Traces: []TraceRequest{req}}, nil }}
			if _, err := r.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			var traces []*measurements.Observation
			for _, o := range rec.obs {
				if o.Step == measurements.StepTrace {
					traces = append(traces, o)
				}
			}
			want := 2
			if noPath {
				want = 0
			}
			if len(traces) != want {
				t.Fatalf("trace steps = %d, want %d", len(traces), want)
			}
			for _, o := range traces {
				if !o.Confirmation || o.Trace == nil || o.Target != "relay" || o.Address != "127.0.0.1" || o.Port != port {
					t.Errorf("trace step %+v: want the relay's, in the confirmation pass", o)
				}
			}
			if want > 0 && (traces[0].Trace.Control.Network != "tcp" || traces[1].Trace.Control.Address != "127.0.0.2") {
				t.Errorf("controls = %+v, %+v; want TCP to the same address, then UDP to the control", traces[0].Trace.Control, traces[1].Trace.Control)
			}
		})
	}
}
