//go:build linux

package stunprobe

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/reachprobe/reachprobe/probes/failure"
)

// maxQueuedErrors bounds the error-queue entries read after a failure:
// one per request sent, at most.
const maxQueuedErrors = MaxAttempts

// recvErr asks the kernel to queue the ICMP errors the socket receives
// (IP_RECVERR, IPV6_RECVERR), so that the message behind a refused read,
// and where it came from, can be read back. It is a net.Dialer Control
// function. Without it a connected UDP socket still reports the errno,
// but only for the errors the kernel deems fatal.
func recvErr(network, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if strings.HasSuffix(network, "6") {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_RECVERR, 1)
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_RECVERR, 1)
	})
	return errors.Join(err, serr)
}

// withICMP returns err wrapped in a failure.ICMPError when the socket's
// error queue holds the ICMP message behind it, err itself otherwise.
func withICMP(conn net.Conn, target netip.Addr, err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return err
	}
	rc, cerr := sc.SyscallConn()
	if cerr != nil {
		return err
	}
	var found *failure.ICMPError
	buf := make([]byte, 512)
	oob := make([]byte, 512)
	for range maxQueuedErrors {
		var oobn int
		var rerr error
		if cerr := rc.Read(func(fd uintptr) bool {
			_, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			return true // the queue is read once; empty is EAGAIN, not a wait
		}); cerr != nil || rerr != nil {
			break
		}
		if e := parseRecvErr(oob[:oobn], target, err); e != nil && found == nil {
			found = e
		}
	}
	if found == nil {
		return err
	}
	return found
}

// parseRecvErr decodes an IP_RECVERR control message: a struct
// sock_extended_err followed by the offender's sockaddr. Only errors of
// ICMP origin are returned.
func parseRecvErr(oob []byte, target netip.Addr, err error) *failure.ICMPError {
	msgs, perr := unix.ParseSocketControlMessage(oob)
	if perr != nil {
		return nil
	}
	for _, m := range msgs {
		v4 := m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR
		v6 := m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR
		if !v4 && !v6 || len(m.Data) < 16 {
			continue
		}
		origin := m.Data[4]
		if origin != unix.SO_EE_ORIGIN_ICMP && origin != unix.SO_EE_ORIGIN_ICMP6 {
			continue
		}
		e := &failure.ICMPError{IPv6: origin == unix.SO_EE_ORIGIN_ICMP6, Type: m.Data[5], Code: m.Data[6], Err: err}
		if from, ok := offender(m.Data[16:]); ok {
			e.FromTarget = from == target.Unmap()
		}
		return e
	}
	return nil
}

// offender decodes the sockaddr_in or sockaddr_in6 the kernel appends
// (SO_EE_OFFENDER).
func offender(sa []byte) (netip.Addr, bool) {
	if len(sa) < 2 {
		return netip.Addr{}, false
	}
	switch binary.NativeEndian.Uint16(sa) {
	case unix.AF_INET:
		if len(sa) >= 8 {
			return netip.AddrFrom4([4]byte(sa[4:8])), true
		}
	case unix.AF_INET6:
		if len(sa) >= 24 {
			return netip.AddrFrom16([16]byte(sa[8:24])).Unmap(), true
		}
	}
	return netip.Addr{}, false
}
