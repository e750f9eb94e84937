//go:build linux

package errqueue

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// readTimeout bounds a loopback read; the kernel answers at once, so it
// only keeps a broken test from hanging.
const readTimeout = 5 * time.Second

// closedPort returns a UDP port on addr that no socket holds: it binds
// one, notes the port and closes it.
func closedPort(t *testing.T, network string, addr netip.Addr) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	return netip.AddrPortFrom(addr, ap.Port())
}

// TestLoopbackPortUnreachable: a datagram to a closed loopback port draws
// a real ICMP port unreachable from the kernel, whose offender is the
// loopback address itself.
func TestLoopbackPortUnreachable(t *testing.T) {
	for _, tt := range []struct {
		network string
		addr    string
		v6      bool
	}{
		{"udp4", "127.0.0.1", false},
		{"udp6", "::1", true},
	} {
		t.Run(tt.network, func(t *testing.T) {
			target := closedPort(t, tt.network, netip.MustParseAddr(tt.addr))
			conn, err := net.DialUDP(tt.network, nil, net.UDPAddrFromAddrPort(target))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			rc, err := conn.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			if err := Enable(rc, tt.v6); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write([]byte("reachprobe")); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
			ev, err := Read(rc, make([]byte, 1500))
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if ev.ICMP == nil {
				t.Fatalf("Read = datagram of %d bytes, want an ICMP error", ev.N)
			}
			m := *ev.ICMP
			if !m.PortUnreachable() || m.Errno != syscall.ECONNREFUSED {
				t.Errorf("got %+v, want port unreachable with ECONNREFUSED", m)
			}
			if m.Offender != target.Addr() {
				t.Errorf("offender %v, want %v", m.Offender, target.Addr())
			}
			// The queue is drained: the socket reads on normally.
			_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if ev, err := Read(rc, make([]byte, 1500)); err == nil {
				t.Errorf("second Read = %+v, want a deadline error", ev)
			}
		})
	}
}

// TestReadDatagram: with nothing queued, Read returns a datagram.
func TestReadDatagram(t *testing.T) {
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	conn, err := net.DialUDP("udp4", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc, _ := conn.SyscallConn()
	if err := Enable(rc, false); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WriteToUDP([]byte("hello"), conn.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
	buf := make([]byte, 100)
	ev, err := Read(rc, buf)
	if err != nil || ev.ICMP != nil || string(buf[:ev.N]) != "hello" {
		t.Fatalf("Read = %+v, %v (%q); want the datagram \"hello\"", ev, err, buf[:ev.N])
	}
	if ev.From != srv.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Errorf("From = %v, want %v", ev.From, srv.LocalAddr())
	}
}
