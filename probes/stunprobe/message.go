package stunprobe

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/netip"
)

// MagicCookie is the fixed value of every RFC 5389 header; a message
// without it is from RFC 3489 or is not STUN at all.
const MagicCookie uint32 = 0x2112A442

// HeaderSize is the size of a STUN message header.
const HeaderSize = 20

// MethodBinding is the only method reachprobe uses.
const MethodBinding uint16 = 0x001

// Attribute types this package reads or writes (RFC 5389 section 18.2).
const (
	AttrMappedAddress    uint16 = 0x0001
	AttrErrorCode        uint16 = 0x0009
	AttrXORMappedAddress uint16 = 0x0020
	AttrSoftware         uint16 = 0x8022
	AttrFingerprint      uint16 = 0x8028
)

// fingerprintXOR is XORed into the CRC-32 of FINGERPRINT (RFC 5389
// section 15.5), so that a CRC of other protocols is not mistaken for it.
const fingerprintXOR uint32 = 0x5354554e

// Address families of MAPPED-ADDRESS and XOR-MAPPED-ADDRESS.
const (
	familyIPv4 = 0x01
	familyIPv6 = 0x02
)

// Errors of ParseMessage and of the attribute accessors.
var (
	// ErrTruncated: fewer bytes than the header or its length announce.
	ErrTruncated = errors.New("stun: message truncated")
	// ErrNotSTUN: the two leading bits of the message type are not zero.
	ErrNotSTUN = errors.New("stun: not a STUN message")
	// ErrBadLength: the length field is not a multiple of 4 or is shorter
	// than the bytes received.
	ErrBadLength = errors.New("stun: bad message length")
	// ErrBadCookie: the magic cookie is missing (an RFC 3489 message or
	// another protocol).
	ErrBadCookie = errors.New("stun: bad magic cookie")
	// ErrBadAttribute: an attribute runs past the end of the message or
	// its value is malformed.
	ErrBadAttribute = errors.New("stun: bad attribute")
	// ErrBadFingerprint: FINGERPRINT is not last, has the wrong size or
	// does not match the message.
	ErrBadFingerprint = errors.New("stun: bad fingerprint")
	// ErrNoAttribute: the message lacks the attribute asked for.
	ErrNoAttribute = errors.New("stun: attribute not present")
	// ErrBadAddress: an address attribute has an unknown family or the
	// wrong size for its family.
	ErrBadAddress = errors.New("stun: bad address attribute")
)

// Class is the class of a message: request, indication or response.
type Class uint8

// Message classes (RFC 5389 section 6).
const (
	ClassRequest    Class = 0
	ClassIndication Class = 1
	ClassSuccess    Class = 2
	ClassError      Class = 3
)

// String returns the class as STUNDetails.Class records it.
func (c Class) String() string {
	switch c {
	case ClassRequest:
		return "request"
	case ClassIndication:
		return "indication"
	case ClassSuccess:
		return "success"
	case ClassError:
		return "error"
	}
	return "invalid"
}

// MessageType combines a method and a class into the 14-bit message type,
// whose class bits sit at positions 4 and 8 between the method's bits.
func MessageType(method uint16, c Class) uint16 {
	return method&0x000f | (method&0x0070)<<1 | (method&0x0f80)<<2 |
		uint16(c&1)<<4 | uint16(c&2)<<7
}

// Attribute is one type-length-value attribute; Value excludes padding.
type Attribute struct {
	Type  uint16
	Value []byte
}

// Message is one STUN message.
type Message struct {
	Type          uint16 // method and class, see MessageType
	TransactionID [12]byte
	Attributes    []Attribute
}

// Class returns the class bits of the message type.
func (m Message) Class() Class {
	return Class((m.Type>>4)&1 | (m.Type>>7)&2)
}

// Method returns the method bits of the message type.
func (m Message) Method() uint16 {
	return m.Type&0x000f | (m.Type>>1)&0x0070 | (m.Type>>2)&0x0f80
}

// Get returns the value of the first attribute of type t.
func (m Message) Get(t uint16) ([]byte, bool) {
	for _, a := range m.Attributes {
		if a.Type == t {
			return a.Value, true
		}
	}
	return nil, false
}

// NewBindingRequest returns a Binding request with a random transaction ID
// and a FINGERPRINT attribute, and its wire form.
func NewBindingRequest() (Message, []byte) {
	m := Message{Type: MessageType(MethodBinding, ClassRequest)}
	rand.Read(m.TransactionID[:]) // never fails (crypto/rand panics instead)
	b := appendFingerprint(m.Marshal())
	m.Attributes = append(m.Attributes, Attribute{Type: AttrFingerprint, Value: b[len(b)-4:]})
	return m, b
}

// Marshal returns the wire form of m, each attribute padded with zeros to
// a multiple of 4 bytes. A FINGERPRINT attribute is written as given.
func (m Message) Marshal() []byte {
	size := HeaderSize
	for _, a := range m.Attributes {
		size += 4 + padded(len(a.Value))
	}
	b := make([]byte, HeaderSize, size)
	binary.BigEndian.PutUint16(b[0:], m.Type)
	binary.BigEndian.PutUint16(b[2:], uint16(size-HeaderSize))
	binary.BigEndian.PutUint32(b[4:], MagicCookie)
	copy(b[8:], m.TransactionID[:])
	for _, a := range m.Attributes {
		b = binary.BigEndian.AppendUint16(b, a.Type)
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.Value)))
		b = append(b, a.Value...)
		b = append(b, make([]byte, padded(len(a.Value))-len(a.Value))...)
	}
	return b
}

// appendFingerprint appends a FINGERPRINT attribute to the marshalled
// message b, updating the length field it covers.
func appendFingerprint(b []byte) []byte {
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)-HeaderSize+8))
	crc := crc32.ChecksumIEEE(b) ^ fingerprintXOR
	b = binary.BigEndian.AppendUint16(b, AttrFingerprint)
	b = binary.BigEndian.AppendUint16(b, 4)
	return binary.BigEndian.AppendUint32(b, crc)
}

// ParseMessage decodes one STUN message from b, which must hold exactly
// one message (a UDP datagram). It checks the header, the attributes'
// framing and, when present, FINGERPRINT. The Message does not share
// memory with b.
func ParseMessage(b []byte) (Message, error) {
	var m Message
	if len(b) < HeaderSize {
		return m, ErrTruncated
	}
	if b[0]&0xc0 != 0 {
		return m, ErrNotSTUN
	}
	length := int(binary.BigEndian.Uint16(b[2:]))
	switch {
	case length%4 != 0:
		return m, ErrBadLength
	case HeaderSize+length > len(b):
		return m, ErrTruncated
	case HeaderSize+length < len(b):
		return m, ErrBadLength
	}
	if binary.BigEndian.Uint32(b[4:]) != MagicCookie {
		return m, ErrBadCookie
	}
	b = append([]byte(nil), b...)
	m.Type = binary.BigEndian.Uint16(b[0:])
	copy(m.TransactionID[:], b[8:HeaderSize])
	for off := HeaderSize; off < len(b); {
		// The body is a multiple of 4, so 4 bytes of attribute header
		// are always there.
		t := binary.BigEndian.Uint16(b[off:])
		n := int(binary.BigEndian.Uint16(b[off+2:]))
		end := off + 4 + padded(n)
		if end > len(b) {
			return Message{}, ErrBadAttribute
		}
		v := b[off+4 : off+4+n : off+4+n]
		if t == AttrFingerprint {
			if n != 4 || end != len(b) {
				return Message{}, ErrBadFingerprint
			}
			if binary.BigEndian.Uint32(v) != crc32.ChecksumIEEE(b[:off])^fingerprintXOR {
				return Message{}, ErrBadFingerprint
			}
		}
		m.Attributes = append(m.Attributes, Attribute{Type: t, Value: v})
		off = end
	}
	return m, nil
}

// padded rounds n up to a multiple of 4.
func padded(n int) int { return (n + 3) &^ 3 }

// XORMappedAddress decodes the XOR-MAPPED-ADDRESS attribute: the address
// and port the server saw the request come from.
func (m Message) XORMappedAddress() (netip.AddrPort, error) {
	v, ok := m.Get(AttrXORMappedAddress)
	if !ok {
		return netip.AddrPort{}, ErrNoAttribute
	}
	var key [16]byte
	binary.BigEndian.PutUint32(key[:], MagicCookie)
	copy(key[4:], m.TransactionID[:])
	return decodeAddress(v, key)
}

// MappedAddress decodes the MAPPED-ADDRESS attribute, which RFC 3489
// servers send instead of XOR-MAPPED-ADDRESS.
func (m Message) MappedAddress() (netip.AddrPort, error) {
	v, ok := m.Get(AttrMappedAddress)
	if !ok {
		return netip.AddrPort{}, ErrNoAttribute
	}
	return decodeAddress(v, [16]byte{})
}

// decodeAddress decodes a (XOR-)MAPPED-ADDRESS value, XORing the port
// with key's first two bytes and the address with key's leading bytes
// (all zero for MAPPED-ADDRESS).
func decodeAddress(v []byte, key [16]byte) (netip.AddrPort, error) {
	if len(v) < 4 {
		return netip.AddrPort{}, ErrBadAddress
	}
	port := binary.BigEndian.Uint16(v[2:]) ^ binary.BigEndian.Uint16(key[:])
	var raw [16]byte
	size := 0
	switch v[1] {
	case familyIPv4:
		size = 4
	case familyIPv6:
		size = 16
	}
	if size == 0 || len(v) != 4+size {
		return netip.AddrPort{}, ErrBadAddress
	}
	for i := range size {
		raw[i] = v[4+i] ^ key[i]
	}
	var addr netip.Addr
	if size == 4 {
		addr = netip.AddrFrom4([4]byte(raw[:4]))
	} else {
		addr = netip.AddrFrom16(raw)
	}
	return netip.AddrPortFrom(addr, port), nil
}

// ErrorCode decodes the ERROR-CODE attribute of an error response: the
// code (300 to 699) and the reason phrase.
func (m Message) ErrorCode() (int, string, error) {
	v, ok := m.Get(AttrErrorCode)
	if !ok {
		return 0, "", ErrNoAttribute
	}
	if len(v) < 4 {
		return 0, "", ErrBadAttribute
	}
	class, number := int(v[2]&0x07), int(v[3])
	if class < 3 || class > 6 || number > 99 {
		return 0, "", ErrBadAttribute
	}
	return class*100 + number, string(v[4:]), nil
}
