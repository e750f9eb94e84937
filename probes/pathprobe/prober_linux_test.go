//go:build linux

package pathprobe

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// loopWait is a probe's reply wait on loopback, where the kernel answers
// at once; it only keeps a broken test from hanging.
const loopWait = 5 * time.Second

// loopSilence is the wait that ends a silent ClientHello try on
// loopback, where an answer would come at once.
const loopSilence = 500 * time.Millisecond

func closedUDP(t *testing.T, network, addr string) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), 0)))
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// tcpListener accepts and holds connections until the test ends; serve,
// if set, handles each.
func tcpListener(t *testing.T, serve func(net.Conn)) netip.AddrPort {
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
			if serve != nil {
				go serve(c)
			} else {
				t.Cleanup(func() { c.Close() })
			}
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func TestProbersLoopback(t *testing.T) {
	open := tcpListener(t, nil)
	closedTCP := func() netip.AddrPort {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).AddrPort()
	}()
	tests := []struct {
		name string
		flow Flow
		want Reply
	}{
		{"udp to a closed port: ICMP from the destination", Flow{Network: "udp", Dst: closedUDP(t, "udp4", "127.0.0.1")}, ReplyDestination},
		{"udp6 to a closed port", Flow{Network: "udp", Dst: closedUDP(t, "udp6", "::1")}, ReplyDestination},
		{"SYN to a listener: SYN-ACK", Flow{Network: "tcp", Dst: open}, ReplyDestination},
		{"SYN to a closed port: reset", Flow{Network: "tcp", Dst: closedTCP}, ReplyReset},
		{"SYN to a closed IPv6 port: reset", Flow{Network: "tcp", Dst: closedTCP6(t)}, ReplyReset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*loopWait)
			defer cancel()
			p, err := newProber(ctx, tt.flow)
			if err != nil {
				t.Fatal(err)
			}
			defer p.close()
			// Twice: the TCP flow must rebind its local port, the UDP
			// flow reuse its socket.
			for i := 0; i < 2; i++ {
				h, err := p.probe(ctx, 1, loopWait)
				if err != nil {
					t.Fatalf("probe %d: %v", i, err)
				}
				if h.Reply != tt.want {
					t.Fatalf("probe %d: %+v, want reply %s", i, h, tt.want)
				}
				if tt.want == ReplyDestination && h.From != tt.flow.Dst.Addr() {
					t.Errorf("probe %d: from %v, want %v", i, h.From, tt.flow.Dst.Addr())
				}
			}
			if tp, ok := p.(*tcpProber); ok && tp.lport == 0 {
				t.Error("the TCP flow's local port was not kept")
			}
		})
	}
}

// TestRunLoopback: on loopback both flows reach the destination at the
// first TTL, so there is no stop to place, and Run says so.
func TestRunLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*loopWait)
	defer cancel()
	tr := Run(ctx, Config{
		Test:         Flow{Network: "udp", Dst: closedUDP(t, "udp4", "127.0.0.1")},
		Control:      Flow{Network: "tcp", Dst: tcpListener(t, nil)},
		ReplyTimeout: loopWait,
	})
	if tr.Skipped != "" || tr.Failure != "" {
		t.Fatalf("trace skipped %q, failed %q", tr.Skipped, tr.Failure)
	}
	if tr.Stop.Known || !strings.Contains(tr.Stop.Reason, "reached the destination") {
		t.Errorf("stop %+v, want unknown: the test flow reached the destination", tr.Stop)
	}
	if tr.Probes != 2*DefaultRounds || len(tr.Hops) != tr.Probes {
		t.Errorf("%d probes, %d hops; want %d of each (one TTL, two flows, %d rounds)", tr.Probes, len(tr.Hops), 2*DefaultRounds, DefaultRounds)
	}
	if tr.Stop.DestinationHop != 1 {
		t.Errorf("destination hop %d, want 1", tr.Stop.DestinationHop)
	}
}

// TestRunResetLoopback: a server that resets connections whose first
// bytes carry a name is found at TTL 1 (hop 0: nothing in between), and
// the control ClientHello is not reset.
func TestRunResetLoopback(t *testing.T) {
	const blocked = "blocked.example"
	dst := tcpListener(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		n, _ := c.Read(buf)
		if bytes.Contains(buf[:n], []byte(blocked)) {
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
			return
		}
		_, _ = c.Read(buf) // hold the connection, silent, until the client goes
		c.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*loopWait)
	defer cancel()
	hello, err := ClientHello(ctx, blocked, []string{"h2"})
	if err != nil {
		t.Fatal(err)
	}
	control, err := ClientHello(ctx, "control.example", []string{"h2"})
	if err != nil {
		t.Fatal(err)
	}
	rt := RunReset(ctx, ResetConfig{Dst: dst, Hello: hello, ControlHello: control, MaxTTL: 3, ReadTimeout: loopSilence})
	if !rt.Known || rt.ResetTTL != 1 || rt.Hop != 0 {
		t.Fatalf("reset trace %+v, want known at TTL 1, hop 0", rt)
	}
	if len(rt.Tries) < 2 || rt.Tries[0].Role != RoleControl || rt.Tries[0].Outcome != OutcomeSilence {
		t.Errorf("tries %+v, want the control first and silent", rt.Tries)
	}
	// This server never answers the control: after the reset the control
	// alone is tried up to MaxTTL for the server's hop, which stays
	// unknown.
	if len(rt.Tries) != 4 || rt.ServerTTL != 0 || rt.Tries[2].Role != RoleControl || rt.Tries[3].TTL != 3 {
		t.Errorf("tries %+v (server TTL %d), want the control alone at TTLs 2 and 3 after the reset, the server's hop unknown", rt.Tries, rt.ServerTTL)
	}
}

func TestClientHello(t *testing.T) {
	b, err := ClientHello(context.Background(), "courier.push.apple.com", []string{"apns-security-v3"})
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0x16 || b[5] != 0x01 || int(b[3])<<8|int(b[4]) != len(b)-5 {
		t.Errorf("not one handshake record holding a ClientHello: %x", b[:6])
	}
	if !bytes.Contains(b, []byte("courier.push.apple.com")) || !bytes.Contains(b, []byte("apns-security-v3")) {
		t.Error("the server name or the ALPN is not in clear")
	}
}

// closedTCP6 returns a TCP port on ::1 that nothing listens on.
func closedTCP6(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// TestRunBudgetSpent: a trace that runs out of its budget says so, and
// sends no probe beyond it.
func TestRunBudgetSpent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*loopWait)
	defer cancel()
	b := NewBudget(3, time.Minute, 0)
	tr := Run(ctx, Config{
		Test:         Flow{Network: "udp", Dst: closedUDP(t, "udp4", "127.0.0.1")},
		Control:      Flow{Network: "tcp", Dst: tcpListener(t, nil)},
		Budget:       b,
		ReplyTimeout: loopWait,
	})
	if !tr.BudgetSpent || tr.Failure != "" {
		t.Errorf("BudgetSpent %v, Failure %q; want a spent budget and no failure", tr.BudgetSpent, tr.Failure)
	}
	if tr.Probes != 3 || b.Sent() != 3 {
		t.Errorf("%d probes recorded, %d sent; want 3", tr.Probes, b.Sent())
	}
}

// TestTCPProbeLocalFailure: a SYN probe whose local port is taken by a
// listener fails as an error, never as the network's silence.
func TestTCPProbeLocalFailure(t *testing.T) {
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := &tcpProber{dst: tcpListener(t, nil), lport: ln.Addr().(*net.TCPAddr).Port}
	h, err := p.probe(context.Background(), 1, loopWait)
	if err == nil {
		t.Fatalf("probe from a taken port = %+v, want an error", h)
	}
}
