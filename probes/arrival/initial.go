package arrival

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/hkdf"
)

// DatagramSize is the size of every datagram kind: the smallest a QUIC
// client Initial may be (RFC 9000 §14.1), and the size a server needs
// before it answers an unknown version (§6.1). Sending every kind at one
// size keeps size or MTU filtering from looking like payload filtering.
const DatagramSize = 1200

// QUICv1 is QUIC version 1 (RFC 9000).
const QUICv1 uint32 = 0x00000001

// connIDLen is the length of the connection IDs our Initials carry: 8, as
// common clients (quic-go, Chrome) use.
const connIDLen = 8

// initialSaltV1 is QUIC v1's initial salt (RFC 9001 §5.2).
var initialSaltV1 = []byte{
	0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
	0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
}

// Initial is a client Initial datagram and the IDs it carries, so that a
// Version Negotiation can be checked against them.
type Initial struct {
	Version    uint32
	DCID, SCID []byte
	Wire       []byte // DatagramSize bytes
}

// IsReservedVersion reports whether v has the form 0x?a?a?a?a, reserved
// by RFC 9000 §15 to exercise version negotiation: no server supports it.
func IsReservedVersion(v uint32) bool { return v&0x0f0f0f0f == 0x0a0a0a0a }

// NewReservedInitial returns a long-header Initial with a random reserved
// version and random connection IDs, padded to DatagramSize. A server
// cannot decrypt it and does not try: a QUIC server answers it with
// Version Negotiation (RFC 9000 §5.2.2, §6.1), if it answers at all.
func NewReservedInitial() Initial {
	var r [4]byte
	rand.Read(r[:])
	version := binary.BigEndian.Uint32(r[:])&0xf0f0f0f0 | 0x0a0a0a0a
	in := Initial{Version: version, DCID: randomBytes(connIDLen), SCID: randomBytes(connIDLen)}
	b := make([]byte, 0, DatagramSize)
	b = append(b, 0xc0|0x03) // long header, fixed bit, Initial, 4-byte packet number
	b = binary.BigEndian.AppendUint32(b, version)
	b = appendConnID(b, in.DCID)
	b = appendConnID(b, in.SCID)
	b = append(b, 0) // no token
	// The Length field covers the rest, which is opaque here: random
	// bytes, as a protected payload would look.
	rest := DatagramSize - len(b) - 2
	b = binary.BigEndian.AppendUint16(b, 0x4000|uint16(rest))
	b = append(b, randomBytes(rest)...)
	in.Wire = b
	return in
}

// NewV1Initial returns a QUIC v1 client Initial, protected with the
// Initial keys of RFC 9001 §5.2, whose CRYPTO frame carries a TLS 1.3
// ClientHello offering alpn with serverName in the SNI extension (an IP
// literal is sent as it is, as FaceTime's relay client does), padded to
// DatagramSize. A v1 server can decrypt it and answers with its own
// Initial (or a Retry); the handshake is never continued.
func NewV1Initial(serverName string, alpn []string) (Initial, error) {
	in := Initial{Version: QUICv1, DCID: randomBytes(connIDLen), SCID: randomBytes(connIDLen)}
	hello, err := clientHello(serverName, alpn, in.SCID)
	if err != nil {
		return Initial{}, err
	}
	// CRYPTO frame: type, offset 0, length, data.
	payload := []byte{0x06, 0x00}
	payload = appendVarint(payload, uint64(len(hello)))
	payload = append(payload, hello...)
	header := v1Header(in.DCID, in.SCID, 0)
	overhead := len(header) + 2 + 4 + 16 // header, Length, packet number, AEAD tag
	if len(payload)+overhead > DatagramSize {
		return Initial{}, fmt.Errorf("arrival: ClientHello of %d bytes does not fit one Initial", len(hello))
	}
	payload = append(payload, make([]byte, DatagramSize-overhead-len(payload))...) // PADDING frames
	in.Wire, err = protectInitial(in.DCID, in.SCID, 0, payload)
	if err != nil {
		return Initial{}, err
	}
	return in, nil
}

// v1Header is a v1 Initial's header up to the Length field (no token).
func v1Header(dcid, scid []byte, firstByte byte) []byte {
	b := []byte{firstByte}
	b = binary.BigEndian.AppendUint32(b, QUICv1)
	b = appendConnID(b, dcid)
	b = appendConnID(b, scid)
	return append(b, 0) // token length
}

// protectInitial builds and protects a v1 client Initial carrying payload
// (frames) with packet number pn, encoded on 4 bytes (RFC 9001 §5).
func protectInitial(dcid, scid []byte, pn uint32, payload []byte) ([]byte, error) {
	key, iv, hp := initialKeys(dcid)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	hdr := v1Header(dcid, scid, 0xc0|0x03) // Initial, 4-byte packet number
	length := 4 + len(payload) + aead.Overhead()
	if length >= 1<<14 {
		return nil, errors.New("arrival: Initial payload too long")
	}
	hdr = binary.BigEndian.AppendUint16(hdr, 0x4000|uint16(length))
	pnOffset := len(hdr)
	hdr = binary.BigEndian.AppendUint32(hdr, pn)

	nonce := make([]byte, len(iv))
	copy(nonce, iv)
	for i := 0; i < 4; i++ {
		nonce[len(nonce)-1-i] ^= byte(pn >> (8 * i))
	}
	packet := aead.Seal(hdr, nonce, payload, hdr)

	// Header protection: a mask from a sample of the ciphertext taken 4
	// bytes after the start of the packet number.
	hpBlock, err := aes.NewCipher(hp)
	if err != nil {
		return nil, err
	}
	mask := make([]byte, aes.BlockSize)
	hpBlock.Encrypt(mask, packet[pnOffset+4:pnOffset+4+aes.BlockSize])
	packet[0] ^= mask[0] & 0x0f
	for i := 0; i < 4; i++ {
		packet[pnOffset+i] ^= mask[1+i]
	}
	return packet, nil
}

// initialKeys derives the client's Initial key, IV and header-protection
// key from the client's destination connection ID (RFC 9001 §5.2).
func initialKeys(dcid []byte) (key, iv, hp []byte) {
	initial := hkdf.Extract(sha256.New, dcid, initialSaltV1)
	client := expandLabel(initial, "client in", 32)
	return expandLabel(client, "quic key", 16), expandLabel(client, "quic iv", 12), expandLabel(client, "quic hp", 16)
}

// expandLabel is TLS 1.3's HKDF-Expand-Label with an empty context.
func expandLabel(secret []byte, label string, n int) []byte {
	full := "tls13 " + label
	info := binary.BigEndian.AppendUint16(nil, uint16(n))
	info = append(info, byte(len(full)))
	info = append(info, full...)
	info = append(info, 0)
	out := make([]byte, n)
	r := hkdf.Expand(sha256.New, secret, info)
	if _, err := r.Read(out); err != nil {
		panic(err) // n is far below HKDF's limit
	}
	return out
}

func appendConnID(b, id []byte) []byte {
	b = append(b, byte(len(id)))
	return append(b, id...)
}

// appendVarint appends v in QUIC's variable-length encoding (RFC 9000
// §16); v must be below 2^62.
func appendVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return binary.BigEndian.AppendUint16(b, 0x4000|uint16(v))
	case v < 1<<30:
		return binary.BigEndian.AppendUint32(b, 0x80000000|uint32(v))
	}
	return binary.BigEndian.AppendUint64(b, 0xc000000000000000|v)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics instead)
	return b
}
