//go:build linux

package pathprobe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/reachprobe/reachprobe/probes/errqueue"
)

// pollStep is the longest a TCP probe blocks in poll(2) before checking
// its context again.
const pollStep = 50 * time.Millisecond

// maxDrain caps the stale errors and datagrams dropped before a probe.
const maxDrain = 64

// prober sends one flow's TTL-limited probes, one at a time: replies
// carry nothing that tells which probe of a constant 5-tuple drew them,
// so a probe waits for its reply (or wait) before the next leaves. An
// error is local (a socket that cannot be made or bound), never the
// network's silence.
type prober interface {
	probe(ctx context.Context, ttl int, wait time.Duration) (Hop, error)
	close()
}

// errNoRecvErr wraps the failure to turn on IP_RECVERR: the trace is then
// skipped, not failed.
type errNoRecvErr struct{ err error }

func (e errNoRecvErr) Error() string { return "IP_RECVERR unavailable: " + e.err.Error() }
func (e errNoRecvErr) Unwrap() error { return e.err }

// newProber opens the sockets of a flow.
func newProber(ctx context.Context, f Flow) (prober, error) {
	switch f.Network {
	case "udp":
		return newUDPProber(ctx, f)
	case "tcp":
		return &tcpProber{dst: f.Dst}, nil
	}
	return nil, errors.New("pathprobe: flow network must be udp or tcp, not " + f.Network)
}

// setTTL sets the TTL (hop limit) of the packets fd sends.
func setTTL(fd int, v6 bool, ttl int) error {
	if v6 {
		return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl)
	}
	return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, ttl)
}

// pinFlowLabel turns automatic flow labels off on an IPv6 socket, so its
// packets carry label 0 whatever socket and retransmission sent them.
func pinFlowLabel(fd int) error {
	return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_AUTOFLOWLABEL, 0)
}

// hopFromICMP records an ICMP error a probe drew.
func hopFromICMP(h Hop, m errqueue.Message, dst netip.Addr) (Hop, bool) {
	if !m.IsICMP() {
		return h, false // a local error: keep waiting
	}
	h.From, h.ICMPType, h.ICMPCode = m.Offender.Unmap(), m.Type, m.Code
	switch {
	case m.TimeExceeded():
		h.Reply = ReplyTimeExceeded
	case m.DestUnreachable() && h.From == dst.Unmap():
		h.Reply = ReplyDestination
	case m.DestUnreachable():
		h.Reply = ReplyUnreachable
	default:
		return h, false // redirects, parameter problems: not an answer
	}
	return h, true
}

// udpProber is a UDP flow: one connected socket, so the 5-tuple is
// constant, whose TTL changes per probe.
type udpProber struct {
	conn    *net.UDPConn
	rc      syscall.RawConn
	v6      bool
	dst     netip.AddrPort
	payload []byte
}

func newUDPProber(ctx context.Context, f Flow) (*udpProber, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", f.Dst.String())
	if err != nil {
		return nil, err
	}
	conn := c.(*net.UDPConn)
	p := &udpProber{conn: conn, v6: !f.Dst.Addr().Unmap().Is4(), dst: f.Dst, payload: f.payload()}
	if p.rc, err = conn.SyscallConn(); err != nil {
		conn.Close()
		return nil, err
	}
	if err := errqueue.Enable(p.rc, p.v6); err != nil {
		conn.Close()
		return nil, errNoRecvErr{err}
	}
	if p.v6 {
		var sockErr error
		if err := p.rc.Control(func(fd uintptr) { sockErr = pinFlowLabel(int(fd)) }); err != nil || sockErr != nil {
			conn.Close()
			return nil, errors.Join(err, sockErr)
		}
	}
	return p, nil
}

func (p *udpProber) close() { p.conn.Close() }

func (p *udpProber) probe(ctx context.Context, ttl int, wait time.Duration) (Hop, error) {
	h := Hop{TTL: ttl, Reply: ReplyNone}
	var sockErr error
	err := p.rc.Control(func(fd uintptr) {
		// A late reply to an earlier probe would be taken for this
		// one's: drop what is queued.
		// The network chooses how much is queued: drain at most
		// maxDrain of each.
		for i := 0; i < maxDrain; i++ {
			if _, ok, err := errqueue.ReadQueue(int(fd)); !ok || err != nil {
				break
			}
		}
		buf := make([]byte, 64)
		for i := 0; i < maxDrain; i++ {
			if _, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT); err != nil && !errors.Is(err, unix.EINTR) {
				break
			}
		}
		sockErr = setTTL(int(fd), p.v6, ttl)
	})
	if err != nil || sockErr != nil {
		return h, errors.Join(err, sockErr)
	}
	deadline := time.Now().Add(wait)
	stop := context.AfterFunc(ctx, func() { _ = p.conn.SetReadDeadline(time.Now()) })
	defer stop()
	_ = p.conn.SetReadDeadline(deadline)
	start := time.Now()
	if _, err := p.conn.Write(p.payload); err != nil && !isICMPErrno(err) {
		return h, err
	}
	buf := make([]byte, 1500)
	for ctx.Err() == nil {
		ev, err := errqueue.Read(p.rc, buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return h, nil
		}
		if isICMPErrno(err) {
			continue // an errno whose message is read from the queue next
		}
		if err != nil {
			return h, err
		}
		if ev.ICMP == nil {
			h.Reply, h.From, h.RTT = ReplyDestination, p.dst.Addr().Unmap(), time.Since(start)
			return h, nil
		}
		if got, ok := hopFromICMP(h, *ev.ICMP, p.dst.Addr()); ok {
			got.RTT = time.Since(start)
			return got, nil
		}
	}
	return h, nil
}

// isICMPErrno reports the errors a socket returns for an ICMP error it
// also queued.
func isICMPErrno(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EPROTO)
}

// tcpProber is a TCP flow: a SYN per probe, each from a new socket bound
// to the same local port, since Go's dialer closes a socket whose connect
// failed and a SYN cannot be sent again with another TTL. Sockets close
// with a reset (SO_LINGER 0), which leaves no TIME_WAIT to block the
// port's reuse.
type tcpProber struct {
	dst   netip.AddrPort
	lport int // chosen by the kernel at the first probe
}

func (p *tcpProber) close() {}

func (p *tcpProber) probe(ctx context.Context, ttl int, wait time.Duration) (Hop, error) {
	h := Hop{TTL: ttl, Reply: ReplyNone}
	v6 := !p.dst.Addr().Unmap().Is4()
	fd, err := p.socket(v6, ttl)
	if err != nil {
		return h, err
	}
	defer func() {
		_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		unix.Close(fd)
	}()
	start := time.Now()
	err = unix.Connect(fd, sockaddr(p.dst))
	if err == nil {
		h.Reply, h.From, h.RTT = ReplyDestination, p.dst.Addr().Unmap(), time.Since(start)
		return h, nil
	}
	if !errors.Is(err, unix.EINPROGRESS) {
		return h, err
	}
	deadline := start.Add(wait)
	for ctx.Err() == nil {
		left := time.Until(deadline)
		if left <= 0 {
			return h, nil
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(fds, int(min(left, pollStep)/time.Millisecond)+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return h, err
		}
		if n == 0 || fds[0].Revents == 0 {
			continue
		}
		if m, ok, _ := errqueue.ReadQueue(fd); ok {
			if got, ok := hopFromICMP(h, m, p.dst.Addr()); ok {
				got.RTT = time.Since(start)
				return got, nil
			}
			continue
		}
		soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		switch {
		case err != nil:
			return h, err
		case soErr == 0 && fds[0].Revents&unix.POLLOUT != 0:
			h.Reply, h.From, h.RTT = ReplyDestination, p.dst.Addr().Unmap(), time.Since(start)
			return h, nil
		case syscall.Errno(soErr) == unix.ECONNREFUSED:
			h.Reply, h.RTT = ReplyReset, time.Since(start)
			return h, nil
		case soErr != 0, fds[0].Revents&unix.POLLHUP != 0:
			// The connect failed on an error whose ICMP was not
			// queued, or the socket is gone: no sender to record.
			return h, nil
		}
	}
	return h, nil
}

// socket makes the non-blocking, TTL-limited socket of one SYN probe.
func (p *tcpProber) socket(v6 bool, ttl int) (int, error) {
	family := unix.AF_INET
	if v6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	fail := func(err error) (int, error) {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail(err)
	}
	if err := setTTL(fd, v6, ttl); err != nil {
		return fail(err)
	}
	if err := errqueue.EnableFD(fd, v6); err != nil {
		return fail(errNoRecvErr{err})
	}
	var local unix.Sockaddr = &unix.SockaddrInet4{Port: p.lport}
	if v6 {
		if err := pinFlowLabel(fd); err != nil {
			return fail(err)
		}
		local = &unix.SockaddrInet6{Port: p.lport}
	}
	if err := unix.Bind(fd, local); err != nil {
		return fail(err)
	}
	if p.lport == 0 {
		sa, err := unix.Getsockname(fd)
		if err != nil {
			return fail(err)
		}
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			p.lport = sa.Port
		case *unix.SockaddrInet6:
			p.lport = sa.Port
		}
	}
	return fd, nil
}

// sockaddr converts an address for unix.Connect.
func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if a := ap.Addr().Unmap(); a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// setConnTTL sets the TTL of a connected TCP socket's next segments.
func setConnTTL(conn *net.TCPConn, v6 bool, ttl int) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var sockErr error
	if err := rc.Control(func(fd uintptr) { sockErr = setTTL(int(fd), v6, ttl) }); err != nil {
		return err
	}
	return sockErr
}

// pinConnFlowLabel is pinFlowLabel for a socket in the making.
func pinConnFlowLabel(rc syscall.RawConn) error {
	var sockErr error
	if err := rc.Control(func(fd uintptr) { sockErr = pinFlowLabel(int(fd)) }); err != nil {
		return err
	}
	return sockErr
}
