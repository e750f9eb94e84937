//go:build lab

package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// IPv4 and UDP wire constants (RFC 791, RFC 768).
const (
	ipv4MinHeader = 20
	udpHeader     = 8
	protoUDP      = 17
	// defaultTTL is the TTL of packets the injector forges: Linux's.
	defaultTTL = 64
	// flagDF is the Don't Fragment bit of the flags and offset field.
	flagDF = 0x4000
	// fragMask covers More Fragments and the fragment offset.
	fragMask = 0x3fff
)

// udpPacket is one IPv4 UDP datagram, as the injector reads and writes
// them.
type udpPacket struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	ID               uint16 // IPv4 identification
	TTL              uint8
	Payload          []byte
}

// Errors of parseUDP4.
var (
	errNotIPv4     = errors.New("not an IPv4 packet")
	errNotUDP      = errors.New("not a UDP packet")
	errFragment    = errors.New("an IPv4 fragment")
	errShortPacket = errors.New("packet shorter than its headers say")
)

// parseUDP4 reads an IPv4 packet carrying a UDP datagram, as a packet
// socket of type SOCK_DGRAM delivers it (no link-layer header). It checks
// the lengths, not the checksums: a packet captured on a veth before it
// left may carry only a partial UDP checksum (checksum offload). The
// payload aliases b.
func parseUDP4(b []byte) (udpPacket, error) {
	var p udpPacket
	if len(b) < ipv4MinHeader || b[0]>>4 != 4 {
		return p, errNotIPv4
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < ipv4MinHeader || total < ihl || total > len(b) {
		return p, errShortPacket
	}
	if b[9] != protoUDP {
		return p, errNotUDP
	}
	if binary.BigEndian.Uint16(b[6:8])&fragMask != 0 {
		return p, errFragment
	}
	udp := b[ihl:total]
	if len(udp) < udpHeader {
		return p, errShortPacket
	}
	ulen := int(binary.BigEndian.Uint16(udp[4:6]))
	if ulen < udpHeader || ulen > len(udp) {
		return p, errShortPacket
	}
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	p.ID = binary.BigEndian.Uint16(b[4:6])
	p.TTL = b[8]
	p.SrcPort = binary.BigEndian.Uint16(udp[0:2])
	p.DstPort = binary.BigEndian.Uint16(udp[2:4])
	p.Payload = udp[udpHeader:ulen]
	return p, nil
}

// marshal builds the packet with a 20-byte IPv4 header (DF set) and full,
// correct IPv4 and UDP checksums, ready for a raw socket with IP_HDRINCL.
func (p udpPacket) marshal() ([]byte, error) {
	if !p.Src.Is4() || !p.Dst.Is4() {
		return nil, fmt.Errorf("udp packet %v -> %v: not IPv4 addresses", p.Src, p.Dst)
	}
	total := ipv4MinHeader + udpHeader + len(p.Payload)
	if total > 0xffff {
		return nil, fmt.Errorf("udp packet of %d bytes is too large", total)
	}
	b := make([]byte, total)
	b[0] = 4<<4 | ipv4MinHeader/4
	binary.BigEndian.PutUint16(b[2:4], uint16(total))
	binary.BigEndian.PutUint16(b[4:6], p.ID)
	binary.BigEndian.PutUint16(b[6:8], flagDF)
	ttl := p.TTL
	if ttl == 0 {
		ttl = defaultTTL
	}
	b[8] = ttl
	b[9] = protoUDP
	src, dst := p.Src.As4(), p.Dst.As4()
	copy(b[12:16], src[:])
	copy(b[16:20], dst[:])
	binary.BigEndian.PutUint16(b[10:12], checksum(0, b[:ipv4MinHeader]))

	udp := b[ipv4MinHeader:]
	binary.BigEndian.PutUint16(udp[0:2], p.SrcPort)
	binary.BigEndian.PutUint16(udp[2:4], p.DstPort)
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp)))
	copy(udp[udpHeader:], p.Payload)
	// The pseudo-header: addresses, protocol and UDP length.
	var pseudo [12]byte
	copy(pseudo[0:4], src[:])
	copy(pseudo[4:8], dst[:])
	pseudo[9] = protoUDP
	binary.BigEndian.PutUint16(pseudo[10:12], uint16(len(udp)))
	sum := checksum(sumWords(0, pseudo[:]), udp)
	if sum == 0 {
		sum = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(udp[6:8], sum)
	return b, nil
}

// sumWords adds b to the running one's-complement sum acc, as 16-bit
// big-endian words (an odd last byte padded with zero).
func sumWords(acc uint32, b []byte) uint32 {
	for len(b) >= 2 {
		acc += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

// checksum finishes the Internet checksum (RFC 1071) of b on top of acc.
func checksum(acc uint32, b []byte) uint16 {
	acc = sumWords(acc, b)
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return ^uint16(acc)
}
