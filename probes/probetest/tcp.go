//go:build unix

package probetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// blackholeFillTimeout bounds the connect that fills the blackhole's
// accept queue. On loopback it completes in microseconds; if it does not
// complete at all, the kernel is already dropping SYNs to the port, which
// is the state wanted, so waiting longer would only slow tests down.
const blackholeFillTimeout = time.Second

// StartRefusingPort returns an address on 127.0.0.1 where nothing listens,
// so a connect to it is refused (the kernel answers the SYN with a RST).
//
// It binds a listener to learn a free port and closes it. Between that
// close and the caller's connect another process could bind the same port;
// the window is small and ephemeral ports are handed out in rotation, so
// tests accept the race rather than needing root for a firewall rule.
func StartRefusingPort() (netip.AddrPort, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("finding a free port: %w", err)
	}
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	if err := ln.Close(); err != nil {
		return netip.AddrPort{}, fmt.Errorf("closing the listener of a free port: %w", err)
	}
	return netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port()), nil
}

// BlackholePort is a TCP address on 127.0.0.1 whose SYNs go unanswered, as
// if a censor dropped them, made without root or a firewall.
//
// # Design
//
// A socket listens with a backlog of 0 and never accepts. One connection
// fills its accept queue; Linux then drops every further SYN to the port
// (with net.ipv4.tcp_abort_on_overflow=0, the default) instead of
// answering, so a client's connect times out. The kernel may log "Possible
// SYN flooding" once for the port: the filler's handshake goes through a
// SYN cookie because a backlog of 0 leaves no room in the SYN queue. Other
// kernels may queue more than Linux does; tests check a short connect times
// out and skip when it does not.
type BlackholePort struct {
	addr   netip.AddrPort
	fd     int
	filler net.Conn // nil when the filler's own SYN was dropped

	closeOnce sync.Once
	closeErr  error
}

// StartBlackholePort creates a BlackholePort. ctx bounds the filling
// connect. Close releases the socket and the filler connection.
func StartBlackholePort(ctx context.Context) (*BlackholePort, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, syscall.IPPROTO_TCP)
	if err != nil {
		return nil, fmt.Errorf("blackhole socket: %w", err)
	}
	syscall.CloseOnExec(fd)
	b := &BlackholePort{fd: fd}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		b.Close()
		return nil, fmt.Errorf("blackhole bind: %w", err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		b.Close()
		return nil, fmt.Errorf("blackhole listen: %w", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("blackhole getsockname: %w", err)
	}
	sa4, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		b.Close()
		return nil, fmt.Errorf("blackhole getsockname: unexpected address %T", sa)
	}
	b.addr = netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(sa4.Port))

	fillCtx, cancel := context.WithTimeout(ctx, blackholeFillTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(fillCtx, "tcp", b.addr.String())
	switch {
	case err == nil:
		b.filler = conn
	case ctx.Err() != nil:
		b.Close()
		return nil, fmt.Errorf("filling the blackhole's accept queue: %w", ctx.Err())
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err):
		// The filler's SYN was dropped already (no SYN cookies): the port
		// is a blackhole without it.
	default:
		b.Close()
		return nil, fmt.Errorf("filling the blackhole's accept queue: %w", err)
	}
	return b, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Addr returns the address whose SYNs are dropped.
func (b *BlackholePort) Addr() netip.AddrPort { return b.addr }

// Close releases the listening socket and the filler connection. It is
// safe to call more than once.
func (b *BlackholePort) Close() error {
	b.closeOnce.Do(func() {
		if b.filler != nil {
			b.filler.Close()
		}
		b.closeErr = syscall.Close(b.fd)
	})
	return b.closeErr
}
