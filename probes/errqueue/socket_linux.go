//go:build linux

package errqueue

import (
	"errors"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// oobSize holds one IPv6 extended error: a control-message header, the
// 16-byte sock_extended_err and a 28-byte sockaddr_in6, with room.
const oobSize = 128

// quoteSize is the buffer for the payload the kernel quotes back with an
// error; the probes do not use it, so it is small and truncated.
const quoteSize = 64

// Event is what Read got: an ICMP error from the error queue, or a
// datagram of N bytes copied into the caller's buffer, from From.
type Event struct {
	ICMP *Message
	N    int
	From netip.AddrPort
}

// Enable asks the kernel to queue ICMP errors on the socket behind rc
// (IP_RECVERR, or IPV6_RECVERR when v6), so that Read sees them with the
// offender's address.
func Enable(rc syscall.RawConn, v6 bool) error {
	var sockErr error
	err := rc.Control(func(fd uintptr) { sockErr = EnableFD(int(fd), v6) })
	if err != nil {
		return err
	}
	return sockErr
}

// EnableFD is Enable for a raw file descriptor.
func EnableFD(fd int, v6 bool) error {
	if v6 {
		return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1)
	}
	return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1)
}

// Read waits for the next queued ICMP error or datagram on the socket
// behind rc (made with Enable) and returns it; errors come first. It obeys
// the connection's read deadline (os.ErrDeadlineExceeded). A socket
// error that is not EAGAIN is returned as the errno.
func Read(rc syscall.RawConn, buf []byte) (Event, error) {
	var ev Event
	var opErr error
	err := rc.Read(func(fd uintptr) bool {
		ev, opErr = readOnce(int(fd), buf)
		return !errors.Is(opErr, unix.EAGAIN)
	})
	if err != nil {
		return Event{}, err
	}
	return ev, opErr
}

// readOnce reads without blocking: the error queue first, then a
// datagram. A pending socket error (sk_err) surfaces on the datagram read
// when an ICMP error arrived between the two; the error queue is then
// tried once more, since the kernel queued the message before setting it.
func readOnce(fd int, buf []byte) (Event, error) {
	for try := 0; try < 2; try++ {
		m, ok, err := ReadQueue(fd)
		if err != nil {
			return Event{}, err
		}
		if ok {
			return Event{ICMP: &m}, nil
		}
		n, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err == nil {
			return Event{N: n, From: addrPort(from)}, nil
		}
		if errors.Is(err, unix.EAGAIN) || try == 1 {
			return Event{}, err
		}
	}
	return Event{}, unix.EAGAIN
}

// ReadQueue reads one message from fd's error queue without blocking. It
// returns ok false when the queue is empty. Entries that are not ICMP
// errors (local errors) are returned too, with IsICMP false.
func ReadQueue(fd int) (m Message, ok bool, err error) {
	quote := make([]byte, quoteSize)
	oob := make([]byte, oobSize)
	_, oobn, _, _, err := unix.Recvmsg(fd, quote, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
	if errors.Is(err, unix.EAGAIN) {
		return Message{}, false, nil
	}
	if err != nil {
		return Message{}, false, err
	}
	m, err = Parse(oob[:oobn])
	if err != nil {
		return Message{}, false, err
	}
	return m, true, nil
}

// addrPort converts a socket address to an AddrPort (invalid for others).
func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}
