//go:build !linux

package errqueue

import (
	"net/netip"
	"syscall"
)

// Event is what Read got: an ICMP error from the error queue, or a
// datagram of N bytes copied into the caller's buffer, from From.
type Event struct {
	ICMP *Message
	N    int
	From netip.AddrPort
}

// Enable returns ErrUnsupported: only Linux queues ICMP errors this way.
func Enable(rc syscall.RawConn, v6 bool) error { return ErrUnsupported }

// EnableFD returns ErrUnsupported.
func EnableFD(fd int, v6 bool) error { return ErrUnsupported }

// Read returns ErrUnsupported.
func Read(rc syscall.RawConn, buf []byte) (Event, error) { return Event{}, ErrUnsupported }

// ReadQueue returns ErrUnsupported.
func ReadQueue(fd int) (Message, bool, error) { return Message{}, false, ErrUnsupported }
