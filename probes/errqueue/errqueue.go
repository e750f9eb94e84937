// Package errqueue reads the ICMP errors that Linux queues on a socket
// with IP_RECVERR or IPV6_RECVERR set, and parses them: the ICMP type and
// code, and the address of the host that sent the error (the offender,
// SO_EE_OFFENDER). An ordinary, unprivileged UDP or TCP socket gets them,
// so the probe needs no raw socket to see a port unreachable from a target
// or a time-exceeded from a router.
//
// # Design
//
// Parse works on the control-message bytes of one recvmsg(MSG_ERRQUEUE)
// and is pure; it has a fuzz target, since the kernel copies into those
// bytes what a network host sent (the type, the code, the offender). The
// socket side (Enable, Read) is Linux only; elsewhere it returns
// ErrUnsupported, and callers record the step as skipped.
//
// The package does not decide what an error means for reachability: the
// offender being the target (arrival) or a router (a hop, or a firewall's
// REJECT) is judged by the probes that know the target.
package errqueue

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
)

// ErrUnsupported reports a system without IP_RECVERR (anything but Linux).
var ErrUnsupported = errors.New("errqueue: IP_RECVERR is not supported on this system")

// ErrNotICMPError reports control-message bytes that hold no extended
// socket error from ICMP.
var ErrNotICMPError = errors.New("errqueue: no ICMP error in control message")

// Origins of an extended error (SO_EE_ORIGIN_*): who reported it.
const (
	OriginLocal = 1 // the local stack (e.g. a message too long for the path MTU)
	OriginICMP  = 2 // an ICMPv4 message from the network
	OriginICMP6 = 3 // an ICMPv6 message from the network
)

// Control-message levels and types of the extended errors (from
// <linux/in.h> and <linux/in6.h>; fixed by the kernel ABI).
const (
	levelIP       = 0  // SOL_IP
	levelIPv6     = 41 // SOL_IPV6
	typeIPRecvErr = 11 // IP_RECVERR
	typeV6RecvErr = 25 // IPV6_RECVERR
)

// ICMP types and codes the probes look for.
const (
	ICMPv4DestUnreachable = 3
	ICMPv4TimeExceeded    = 11
	ICMPv4PortUnreachable = 3 // code of ICMPv4DestUnreachable
	ICMPv6DestUnreachable = 1
	ICMPv6TimeExceeded    = 3
	ICMPv6PortUnreachable = 4 // code of ICMPv6DestUnreachable
)

// sockExtendedErrSize is sizeof(struct sock_extended_err): errno (4),
// origin, type, code, pad (1 each), info (4), data (4).
const sockExtendedErrSize = 16

// Message is one ICMP error from a socket's error queue.
type Message struct {
	Errno    syscall.Errno // what the error means to the socket, e.g. ECONNREFUSED
	Origin   uint8         // Origin* constant
	Type     uint8         // ICMP or ICMPv6 type
	Code     uint8         // ICMP or ICMPv6 code
	Info     uint32        // e.g. the MTU of a "fragmentation needed"
	Offender netip.Addr    // the host that sent the ICMP; invalid if the kernel gave none
}

// IsICMP reports whether the error came from the network (not the local
// stack).
func (m Message) IsICMP() bool { return m.Origin == OriginICMP || m.Origin == OriginICMP6 }

// TimeExceeded reports an ICMP time exceeded in transit: a router on the
// path dropped the packet because its TTL (hop limit) ran out.
func (m Message) TimeExceeded() bool {
	return (m.Origin == OriginICMP && m.Type == ICMPv4TimeExceeded) ||
		(m.Origin == OriginICMP6 && m.Type == ICMPv6TimeExceeded)
}

// DestUnreachable reports an ICMP destination unreachable of any code
// (port, host, network, administratively prohibited).
func (m Message) DestUnreachable() bool {
	return (m.Origin == OriginICMP && m.Type == ICMPv4DestUnreachable) ||
		(m.Origin == OriginICMP6 && m.Type == ICMPv6DestUnreachable)
}

// PortUnreachable reports an ICMP port unreachable: a host had no socket
// for the datagram, or a firewall's REJECT pretends so.
func (m Message) PortUnreachable() bool {
	return (m.Origin == OriginICMP && m.Type == ICMPv4DestUnreachable && m.Code == ICMPv4PortUnreachable) ||
		(m.Origin == OriginICMP6 && m.Type == ICMPv6DestUnreachable && m.Code == ICMPv6PortUnreachable)
}

// Parse returns the ICMP error carried by the control messages oob of a
// recvmsg(MSG_ERRQUEUE) on an IPv4 or IPv6 socket. It returns
// ErrNotICMPError when oob holds no IP_RECVERR or IPV6_RECVERR message,
// and an error for a message too short to be one.
func Parse(oob []byte) (Message, error) {
	for len(oob) > 0 {
		level, typ, data, rest, err := nextCmsg(oob)
		if err != nil {
			return Message{}, err
		}
		oob = rest
		if !(level == levelIP && typ == typeIPRecvErr) && !(level == levelIPv6 && typ == typeV6RecvErr) {
			continue
		}
		return parseExtendedErr(data)
	}
	return Message{}, ErrNotICMPError
}

// errShortCmsg reports control-message bytes cut short.
var errShortCmsg = errors.New("errqueue: control message truncated")

// cmsgAlign is the alignment of control messages: the size of a long,
// 8 on the 64-bit systems reachprobe runs on and 4 on 32-bit ones.
const cmsgAlign = 4 << (^uint(0) >> 63)

// cmsgHeaderSize is sizeof(struct cmsghdr): a size_t length and two ints.
const cmsgHeaderSize = cmsgAlign + 8

// nextCmsg splits the first control message off b. It is written here
// (rather than with unix.ParseSocketControlMessage) so that the pure
// parser builds and is fuzzed on every system.
func nextCmsg(b []byte) (level, typ int32, data, rest []byte, err error) {
	if len(b) < cmsgHeaderSize {
		return 0, 0, nil, nil, errShortCmsg
	}
	var length uint64
	if cmsgAlign == 8 {
		length = binary.NativeEndian.Uint64(b)
	} else {
		length = uint64(binary.NativeEndian.Uint32(b))
	}
	level = int32(binary.NativeEndian.Uint32(b[cmsgAlign:]))
	typ = int32(binary.NativeEndian.Uint32(b[cmsgAlign+4:]))
	if length < cmsgHeaderSize || length > uint64(len(b)) {
		return 0, 0, nil, nil, errShortCmsg
	}
	data = b[cmsgHeaderSize:length]
	next := (length + cmsgAlign - 1) &^ (cmsgAlign - 1)
	if next > uint64(len(b)) {
		next = uint64(len(b))
	}
	return level, typ, data, b[next:], nil
}

// parseExtendedErr decodes struct sock_extended_err and the offender
// address that follows it (SO_EE_OFFENDER): a sockaddr_in or sockaddr_in6,
// or AF_UNSPEC when the kernel has none.
func parseExtendedErr(b []byte) (Message, error) {
	if len(b) < sockExtendedErrSize {
		return Message{}, errShortCmsg
	}
	m := Message{
		Errno:  syscall.Errno(binary.NativeEndian.Uint32(b)),
		Origin: b[4],
		Type:   b[5],
		Code:   b[6],
		Info:   binary.NativeEndian.Uint32(b[8:]),
	}
	if !m.IsICMP() {
		return m, nil // a local error: no offender
	}
	sa := b[sockExtendedErrSize:]
	if len(sa) < 2 {
		return m, nil
	}
	switch binary.NativeEndian.Uint16(sa) {
	case afInet:
		// sockaddr_in: family, port, 4-byte address.
		if len(sa) >= 8 {
			m.Offender = netip.AddrFrom4([4]byte(sa[4:8]))
		}
	case afInet6:
		// sockaddr_in6: family, port, flow info, 16-byte address.
		if len(sa) >= 24 {
			m.Offender = netip.AddrFrom16([16]byte(sa[8:24]))
		}
	}
	return m, nil
}

// Address families of the offender (Linux values).
const (
	afInet  = 2
	afInet6 = 10
)

// Marshal encodes m as the control message a Linux kernel delivers for it
// on a socket of the offender's family: the inverse of Parse, for tests
// and fuzz seeds.
func Marshal(m Message) []byte {
	ee := make([]byte, sockExtendedErrSize)
	binary.NativeEndian.PutUint32(ee, uint32(m.Errno))
	ee[4], ee[5], ee[6] = m.Origin, m.Type, m.Code
	binary.NativeEndian.PutUint32(ee[8:], m.Info)
	level, typ := int32(levelIP), int32(typeIPRecvErr)
	var sa []byte
	switch {
	case m.Offender.Is4():
		sa = make([]byte, 16)
		binary.NativeEndian.PutUint16(sa, afInet)
		a := m.Offender.As4()
		copy(sa[4:], a[:])
	case m.Offender.Is6():
		level, typ = levelIPv6, typeV6RecvErr
		sa = make([]byte, 28)
		binary.NativeEndian.PutUint16(sa, afInet6)
		a := m.Offender.As16()
		copy(sa[8:], a[:])
	default:
		sa = make([]byte, 16) // AF_UNSPEC
	}
	data := append(ee, sa...)
	length := cmsgHeaderSize + len(data)
	out := make([]byte, (length+cmsgAlign-1)&^(cmsgAlign-1))
	if cmsgAlign == 8 {
		binary.NativeEndian.PutUint64(out, uint64(length))
	} else {
		binary.NativeEndian.PutUint32(out, uint32(length))
	}
	binary.NativeEndian.PutUint32(out[cmsgAlign:], uint32(level))
	binary.NativeEndian.PutUint32(out[cmsgAlign+4:], uint32(typ))
	copy(out[cmsgHeaderSize:], data)
	return out
}
