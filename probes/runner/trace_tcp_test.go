package runner

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/catalog"
	"github.com/reachprobe/reachprobe/probes/dnsprobe"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// sniResetLab serves a TLS target at 127.0.0.1 whose front resets every
// connection whose ClientHello names sni.test and answers the others with
// a byte: a reset on the server name, at the server's own hop (TTL 1 on
// loopback).
func sniResetLab(t *testing.T) (measurements.Catalog, *dnsprobe.Resolver, netip.AddrPort) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				tc := c.(*net.TCPConn)
				defer tc.Close()
				buf := make([]byte, 2048)
				_ = tc.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, _ := tc.Read(buf)
				if bytes.Contains(buf[:n], []byte("sni.test")) {
					_ = tc.SetLinger(0)
					return
				}
				_, _ = tc.Write([]byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28}) // a TLS alert
			}()
		}
	}()
	ap := netip.MustParseAddrPort(ln.Addr().String())
	text := fmt.Sprintf("[target front]\ngroup = identity\nhost = sni.test\nports = %d\ntransports = tcp, tls\ncontrol_server_name = control.test\nnetworks = 127.0.0.0/8\n", ap.Port())
	cat, err := catalog.Parse("sni", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cat, zoneResolver(t, probetest.Zone{"sni.test": {Addrs: []netip.Addr{ap.Addr()}}}), ap
}

// zoneResolver serves zone from a loopback DNS server and returns a
// resolver, system engine included, that asks it.
func zoneResolver(t *testing.T, zone probetest.Zone) *dnsprobe.Resolver {
	t.Helper()
	srv, err := probetest.StartDNS("127.0.0.1:0", zone)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &dnsprobe.Resolver{Nameservers: []string{srv.Addr()}, System: systemResolver(srv.Addr()), ListenWindow: -1}
}

// traceSteps runs cat with plan as its confirmation pass and returns its
// trace steps.
func traceSteps(t *testing.T, cat measurements.Catalog, res *dnsprobe.Resolver, plan ConfirmPlan, noPath bool) []*measurements.Observation {
	t.Helper()
	rec := &memRecorder{}
	r := &Runner{Catalog: cat, Resolver: res, Recorder: rec, NoPathProbes: noPath, ConfirmDelay: -1,
		HasRoute: func(netip.Addr) bool { return true },
		ASLookup: func(netip.Addr) (uint, string) { return 64500, "Lab" },
		Confirm:  func(context.Context) (ConfirmPlan, error) { return plan, nil }}
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out []*measurements.Observation
	for _, o := range rec.obs {
		if o.Step == measurements.StepTrace {
			out = append(out, o)
		}
	}
	return out
}

// TestResetTraceRequest: a reset trace is one trace step holding the
// ClientHellos and the hops; on loopback the reset comes at the server's
// own hop (TTL 1), which is where the trace must say it comes from.
// NoPathProbes drops it.
func TestResetTraceRequest(t *testing.T) {
	cat, res, ap := sniResetLab(t)
	plan := ConfirmPlan{ResetTraces: []ResetTraceRequest{{Target: "front", Dst: ap}, {Target: "nosuch", Dst: ap}}}
	if got := traceSteps(t, cat, res, plan, true); len(got) != 0 {
		t.Fatalf("%d trace steps with NoPathProbes, want none", len(got))
	}
	got := traceSteps(t, cat, res, plan, false)
	if len(got) != 1 {
		t.Fatalf("%d trace steps, want 1 (the target the catalog lacks dropped)", len(got))
	}
	o := got[0]
	d := o.Trace
	if !o.Confirmation || o.Target != "front" || o.Port != int(ap.Port()) || !d.IsReset() {
		t.Fatalf("trace step %+v (%+v): want the front's reset trace, in the confirmation pass", o, d)
	}
	if d.Skipped != "" {
		t.Skipf("skipped here: %s", d.Stop.Reason)
	}
	if d.Stop.DestinationHop != 1 || d.ResetTTL != 1 || !d.Stop.Known || d.Stop.Hop != 0 {
		t.Errorf("stop %+v reset TTL %d: want the reset at TTL 1, the server's own hop 1", d.Stop, d.ResetTTL)
	}
	if len(d.Tries) != 2 || d.Tries[0].Role != "control" || d.Tries[0].Outcome != measurements.TraceTryData ||
		d.Tries[1].Role != "test" || d.Tries[1].Outcome != measurements.TraceTryReset {
		t.Errorf("tries %+v: want the control answered, then the target name reset", d.Tries)
	}
	if len(d.Hops) == 0 || d.Probes <= len(d.Tries) {
		t.Errorf("hops %+v, %d probes: want the trace to the same address's", d.Hops, d.Probes)
	}
}

// TestTCPTraceRequest: a SYN trace request makes two trace steps of SYNs:
// against an open port of the same address, then toward a control
// address on the same port.
func TestTCPTraceRequest(t *testing.T) {
	cat, res, ap := sniResetLab(t)
	closed, err := probetest.StartRefusingPort()
	if err != nil {
		t.Fatal(err)
	}
	req := TCPTraceRequest{Target: "front", Test: netip.AddrPortFrom(ap.Addr(), closed.Port()), OpenPort: int(ap.Port()),
		ControlTarget: "front", Control: netip.MustParseAddr("127.0.0.2")}
	got := traceSteps(t, cat, res, ConfirmPlan{TCPTraces: []TCPTraceRequest{req, {Target: "front", Test: ap, OpenPort: int(ap.Port())}}}, false)
	if len(got) != 2 {
		t.Fatalf("%d trace steps, want 2 (a request whose open port is the tested one dropped)", len(got))
	}
	for i, o := range got {
		d := o.Trace
		if d.IsReset() || d.Test.Network != "tcp" || d.Control.Network != "tcp" || o.Port != int(closed.Port()) || !o.Confirmation {
			t.Errorf("trace step %d: %+v %+v, want SYNs to the tested port in the confirmation pass", i, o, d)
		}
	}
	if got[0].Trace.Control.Port != int(ap.Port()) || got[1].Trace.Control.Address != "127.0.0.2" {
		t.Errorf("controls %+v, %+v: want the open port of the same address, then the control address", got[0].Trace.Control, got[1].Trace.Control)
	}
}
