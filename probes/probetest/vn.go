package probetest

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// QUIC constants of the relay mode's Version Negotiation (RFC 9000
// §17.2.1, §14.1), written apart from probes/arrival's parser on purpose.
const (
	quicV1             = 0x00000001
	quicMinInitialSize = 1200 // a server answers no smaller datagram
)

// StartRelayPorts is StartSTUNPorts in STUNAnswer mode whose ports also
// answer, for datagrams sent to an address inside one of vnPrefixes, a
// QUIC long-header packet of a version other than 1 with a Version
// Negotiation offering version 1, as a QUIC-speaking relay does (RFC 9000
// §6.1). Other addresses answer STUN alone, as a plain STUN server does.
func StartRelayPorts(ip string, ports []int, vnPrefixes []netip.Prefix) (*STUNServer, error) {
	s, err := StartSTUNPorts(ip, ports, STUNAnswer)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.vnPrefixes = vnPrefixes
	s.mu.Unlock()
	return s, nil
}

// answerVN returns the Version Negotiation answering req, sent to dst,
// or nil.
func (s *STUNServer) answerVN(req []byte, dst net.IP) []byte {
	s.mu.Lock()
	prefixes := s.vnPrefixes
	s.mu.Unlock()
	a, ok := netip.AddrFromSlice(dst)
	if !ok || len(prefixes) == 0 {
		return nil
	}
	in := false
	for _, p := range prefixes {
		in = in || p.Contains(a.Unmap())
	}
	if !in {
		return nil
	}
	return versionNegotiation(req)
}

// versionNegotiation returns the Version Negotiation for a client's long
// header packet req of an unknown version: the client's connection IDs
// swapped, version 1 offered; nil for anything else.
func versionNegotiation(req []byte) []byte {
	if len(req) < quicMinInitialSize || req[0]&0x80 == 0 {
		return nil
	}
	switch binary.BigEndian.Uint32(req[1:5]) {
	case 0, quicV1:
		return nil
	}
	dcid, rest, ok := connID(req[5:])
	if !ok {
		return nil
	}
	scid, _, ok := connID(rest)
	if !ok {
		return nil
	}
	b := []byte{0x80 | 0x40, 0, 0, 0, 0} // long header, the unused bits set; version 0
	b = append(b, byte(len(scid)))
	b = append(b, scid...) // the client's source ID is our destination
	b = append(b, byte(len(dcid)))
	b = append(b, dcid...)
	return binary.BigEndian.AppendUint32(b, quicV1)
}

// connID splits a length-prefixed connection ID of at most 20 bytes (QUIC
// v1's limit, which a server applies to versions it does not know as
// well) off b.
func connID(b []byte) (id, rest []byte, ok bool) {
	if len(b) < 1 || b[0] > 20 || int(b[0]) > len(b)-1 {
		return nil, nil, false
	}
	return b[1 : 1+b[0]], b[1+b[0]:], true
}
