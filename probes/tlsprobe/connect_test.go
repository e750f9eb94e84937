package tlsprobe

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// shortTimeout is how long tests let a step run that should time out: far
// longer than anything on loopback takes, short enough for CI.
const shortTimeout = 500 * time.Millisecond

// listen returns a loopback listener on network's address, skipping the
// test when the host has no such loopback (no IPv6).
func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("no loopback listener on %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln
}

func TestConnect(t *testing.T) {
	ln4 := listen(t, "127.0.0.1:0")
	refusing, err := probetest.StartRefusingPort()
	if err != nil {
		t.Fatal(err)
	}
	blackhole, err := probetest.StartBlackholePort(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer blackhole.Close()
	listening := ln4.Addr().(*net.TCPAddr).AddrPort()
	mapped := netip.AddrPortFrom(netip.AddrFrom16(listening.Addr().As16()), listening.Port())

	tests := []struct {
		name        string
		addr        netip.AddrPort
		timeout     time.Duration
		wantFailure string
		wantFamily  string
		wantAddress string
	}{
		{"ok", listening, ConnectTimeout, "", "ipv4", "127.0.0.1"},
		{"ipv4-mapped", mapped, ConnectTimeout, "", "ipv4", "127.0.0.1"},
		{"refused", refusing, ConnectTimeout, failure.ConnectionRefused, "ipv4", "127.0.0.1"},
		{"blackhole", blackhole.Addr(), shortTimeout, failure.GenericTimeout, "ipv4", "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			before := time.Now()
			conn, obs := Connect(ctx, tt.addr)
			if conn != nil {
				defer conn.Close()
			}
			if tt.name == "blackhole" && conn != nil {
				t.Skip("this kernel completed a connect to a full accept queue; no blackhole here")
			}
			if obs.Failure != tt.wantFailure {
				t.Errorf("Failure = %q, want %q", obs.Failure, tt.wantFailure)
			}
			wantOp := ""
			if tt.wantFailure != "" {
				wantOp = failure.OpConnect
			}
			if obs.Operation != wantOp {
				t.Errorf("Operation = %q, want %q", obs.Operation, wantOp)
			}
			if gotConn := conn != nil; gotConn != (tt.wantFailure == "") {
				t.Errorf("conn returned = %v, want %v", gotConn, tt.wantFailure == "")
			}
			checkCommon(t, obs, measurements.StepTCP, tt.wantAddress, int(tt.addr.Port()), before)
			if obs.TCP == nil || obs.TCP.Family != tt.wantFamily {
				t.Errorf("TCP = %+v, want Family %q", obs.TCP, tt.wantFamily)
			}
			if tt.wantFailure == failure.GenericTimeout && obs.Duration < tt.timeout/2 {
				t.Errorf("Duration = %v, want about the %v timeout", obs.Duration, tt.timeout)
			}
		})
	}
}

func TestConnectIPv6(t *testing.T) {
	ln := listen(t, "[::1]:0")
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	conn, obs := Connect(context.Background(), addr)
	if conn == nil {
		t.Fatalf("Connect to %v: %s", addr, obs.Failure)
	}
	conn.Close()
	if obs.TCP.Family != FamilyIPv6 || obs.Address != "::1" {
		t.Errorf("Family, Address = %q, %q; want %q, %q", obs.TCP.Family, obs.Address, FamilyIPv6, "::1")
	}
}

func TestConnectCanceled(t *testing.T) {
	blackhole, err := probetest.StartBlackholePort(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer blackhole.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	conn, obs := Connect(ctx, blackhole.Addr())
	if conn != nil {
		conn.Close()
		t.Skip("this kernel completed a connect to a full accept queue; no blackhole here")
	}
	if obs.Failure != failure.Interrupted || obs.Operation != failure.OpConnect {
		t.Errorf("Failure, Operation = %q, %q; want %q, %q", obs.Failure, obs.Operation, failure.Interrupted, failure.OpConnect)
	}
}

// checkCommon checks the fields every observation of this package sets.
func checkCommon(t *testing.T, obs *measurements.Observation, step measurements.Step, address string, port int, before time.Time) {
	t.Helper()
	if obs.Step != step {
		t.Errorf("Step = %q, want %q", obs.Step, step)
	}
	if obs.Address != address || obs.Port != port {
		t.Errorf("Address, Port = %q, %d; want %q, %d", obs.Address, obs.Port, address, port)
	}
	if obs.Transport != "tcp" {
		t.Errorf("Transport = %q, want tcp", obs.Transport)
	}
	if obs.Started.Location() != time.UTC {
		t.Errorf("Started = %v, want UTC", obs.Started)
	}
	if obs.Started.Before(before.Add(-time.Second)) || obs.Started.After(time.Now()) {
		t.Errorf("Started = %v, want between %v and now", obs.Started, before)
	}
	if obs.Duration <= 0 && obs.Failure == "" {
		t.Errorf("Duration = %v, want > 0", obs.Duration)
	}
}
