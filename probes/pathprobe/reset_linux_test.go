//go:build linux

package pathprobe

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// resetServer is a loopback TLS front that resets every connection whose
// first bytes name blocked, answers the others with a byte, and resets the
// first residual connections whatever they carry: a residual block.
func resetServer(t *testing.T, blocked string, residual int32) netip.AddrPort {
	t.Helper()
	var n atomic.Int32
	return tcpListener(t, func(c net.Conn) {
		tc := c.(*net.TCPConn)
		defer tc.Close()
		if n.Add(1) <= residual {
			_ = tc.SetLinger(0)
			return
		}
		buf := make([]byte, 2048)
		_ = tc.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, _ := tc.Read(buf)
		if bytes.Contains(buf[:k], []byte(blocked)) {
			_ = tc.SetLinger(0)
			return
		}
		_, _ = tc.Write([]byte{0x16})
	})
}

// TestRunResetResidualLoopback: on loopback the server is at TTL 1. A residual
// block resets the first control connection; RunReset waits it out and
// tries the control again, so the reset of the target name is compared
// with a control that got through.
func TestRunResetResidualLoopback(t *testing.T) {
	ctx := context.Background()
	hello, err := ClientHello(ctx, "blocked.example", []string{"h2"})
	if err != nil {
		t.Fatal(err)
	}
	control, err := ClientHello(ctx, "control.example", []string{"h2"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		blocked  string
		residual int32
		wait     time.Duration
		known    bool
		tries    int
	}{
		{"no residual block", "blocked.example", 0, 50 * time.Millisecond, true, 2},
		{"a residual block waited out", "blocked.example", 1, 50 * time.Millisecond, true, 3},
		{"a residual block not waited out", "blocked.example", 1, -1, false, 3},
		// Nothing resets: both reach the server at TTL 1, and the sweep
		// ends there though MaxTTL is farther.
		{"no reset: the sweep ends at the server", "nothing.example", 0, 50 * time.Millisecond, false, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dst := resetServer(t, tt.blocked, tt.residual)
			rt := RunReset(ctx, ResetConfig{Dst: dst, Hello: hello, ControlHello: control, MaxTTL: 4,
				Budget: NewBudget(20, 20*time.Second, time.Millisecond), ReadTimeout: 500 * time.Millisecond, ResidualWait: tt.wait})
			if rt.Skipped != "" {
				t.Skipf("skipped: %s", rt.Reason)
			}
			if rt.Known != tt.known || len(rt.Tries) != tt.tries {
				t.Fatalf("RunReset = %+v, want known %v after %d tries", rt, tt.known, tt.tries)
			}
			if tt.known && (rt.ResetTTL != 1 || rt.Hop != 0 || rt.ServerTTL != 1) {
				t.Errorf("reset TTL %d hop %d server TTL %d, want 1, 0 and 1 (the server itself on loopback)", rt.ResetTTL, rt.Hop, rt.ServerTTL)
			}
		})
	}
}
