package arrival

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// maxVNVersions caps the versions kept from a Version Negotiation packet:
// the network chooses how many it lists.
const maxVNVersions = 16

// maxConnIDLen is the longest connection ID QUIC's invariants allow
// (RFC 8999 §5.1: a one-byte length); QUIC v1 itself uses at most 20.
const maxConnIDLen = 255

// Errors of ParseVersionNegotiation.
var (
	// ErrNotVN reports a datagram that is not a Version Negotiation
	// packet: a short header, or a version other than 0.
	ErrNotVN = errors.New("arrival: not a QUIC version negotiation packet")
	// ErrBadVN reports a Version Negotiation packet cut short or whose
	// version list is not a whole number of versions.
	ErrBadVN = errors.New("arrival: malformed QUIC version negotiation packet")
)

// VersionNegotiation is a parsed QUIC Version Negotiation packet (RFC 9000
// §17.2.1, RFC 8999 §6).
type VersionNegotiation struct {
	DCID, SCID []byte
	// Versions lists at most maxVNVersions of the versions offered.
	Versions []uint32
	// More is the number of versions beyond Versions that were listed.
	More int
}

// ParseVersionNegotiation decodes a datagram as a Version Negotiation
// packet. The result does not share memory with b.
func ParseVersionNegotiation(b []byte) (VersionNegotiation, error) {
	// Long header form bit, a 4-byte version of 0, then the two IDs.
	if len(b) < 7 || b[0]&0x80 == 0 {
		return VersionNegotiation{}, ErrNotVN
	}
	if binary.BigEndian.Uint32(b[1:5]) != 0 {
		return VersionNegotiation{}, ErrNotVN
	}
	rest := b[5:]
	var vn VersionNegotiation
	var ok bool
	if vn.DCID, rest, ok = cutConnID(rest); !ok {
		return VersionNegotiation{}, ErrBadVN
	}
	if vn.SCID, rest, ok = cutConnID(rest); !ok {
		return VersionNegotiation{}, ErrBadVN
	}
	if len(rest) == 0 || len(rest)%4 != 0 {
		return VersionNegotiation{}, ErrBadVN
	}
	for ; len(rest) > 0; rest = rest[4:] {
		if len(vn.Versions) == maxVNVersions {
			vn.More++
			continue
		}
		vn.Versions = append(vn.Versions, binary.BigEndian.Uint32(rest))
	}
	return vn, nil
}

// cutConnID splits a length-prefixed connection ID off b.
func cutConnID(b []byte) (id, rest []byte, ok bool) {
	if len(b) < 1 || int(b[0]) > len(b)-1 {
		return nil, nil, false
	}
	n := int(b[0])
	return bytes.Clone(b[1 : 1+n]), b[1+n:], true
}

// VN verdicts: whether a Version Negotiation answers our Initial.
const (
	// VNValid: it echoes our connection IDs and does not list the version
	// we sent. It proves our datagram reached a QUIC endpoint.
	VNValid = "valid"
	// VNWrongIDs: the IDs are not ours swapped (RFC 9000 §17.2.1): a
	// stale or forged packet, ignored.
	VNWrongIDs = "wrong_connection_ids"
	// VNListsSentVersion: it offers the version we sent, which RFC 9000
	// §6.2 says a client must ignore.
	VNListsSentVersion = "lists_sent_version"
)

// Check judges vn as the answer to an Initial sent with the connection IDs
// dcid and scid and version: the server puts our SCID in its DCID and our
// DCID in its SCID.
func (vn VersionNegotiation) Check(dcid, scid []byte, version uint32) string {
	if !bytes.Equal(vn.DCID, scid) || !bytes.Equal(vn.SCID, dcid) {
		return VNWrongIDs
	}
	for _, v := range vn.Versions {
		if v == version {
			return VNListsSentVersion
		}
	}
	return VNValid
}

// AppendVersionNegotiation encodes a Version Negotiation packet answering
// an Initial with the given IDs: the inverse of ParseVersionNegotiation,
// for test responders and fuzz seeds.
func AppendVersionNegotiation(b []byte, clientDCID, clientSCID []byte, versions ...uint32) []byte {
	b = append(b, 0x80|0x40) // long header; the other bits are unused
	b = binary.BigEndian.AppendUint32(b, 0)
	b = append(b, byte(len(clientSCID)))
	b = append(b, clientSCID...)
	b = append(b, byte(len(clientDCID)))
	b = append(b, clientDCID...)
	for _, v := range versions {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}
