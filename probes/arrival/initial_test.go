package arrival

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"encoding/hex"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInitialKeysRFC9001 checks the key derivation against RFC 9001
// Appendix A.1.
func TestInitialKeysRFC9001(t *testing.T) {
	key, iv, hp := initialKeys(unhex(t, "8394c8f03e515708"))
	for _, c := range []struct{ name, got, want string }{
		{"key", hex.EncodeToString(key), "1f369613dd76d5467730efcbe3b1a22d"},
		{"iv", hex.EncodeToString(iv), "fa044b2f42a3fd3b46fb255c"},
		{"hp", hex.EncodeToString(hp), "9f50449e04a0e810283a1e9933adedd2"},
	} {
		if c.got != c.want {
			t.Errorf("client %s = %s, want %s", c.name, c.got, c.want)
		}
	}
}

// TestProtectInitialRFC9001 checks packet and header protection against
// RFC 9001 Appendix A.2: packet number 2, a payload of 1162 bytes whose
// first 16 bytes are the example's (the sample, hence the header mask,
// depends on those alone).
func TestProtectInitialRFC9001(t *testing.T) {
	payload := make([]byte, 1162)
	copy(payload, unhex(t, "060040f1010000ed0303ebf8fa56f129"))
	got, err := protectInitial(unhex(t, "8394c8f03e515708"), nil, 2, payload)
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11d242b123dc9b")
	if len(got) != 1200 || !bytes.Equal(got[:len(want)], want) {
		t.Errorf("protected packet (%d bytes) starts %x, want %x (1200 bytes)", len(got), got[:len(want)], want)
	}
}

func TestReservedInitial(t *testing.T) {
	in := NewReservedInitial()
	if len(in.Wire) != DatagramSize {
		t.Fatalf("size %d, want %d", len(in.Wire), DatagramSize)
	}
	if !IsReservedVersion(in.Version) || binary.BigEndian.Uint32(in.Wire[1:]) != in.Version {
		t.Errorf("version %#x on the wire %x: not reserved or not written", in.Version, in.Wire[1:5])
	}
	if in.Wire[0]&0xc0 != 0xc0 {
		t.Errorf("first byte %#x: not a long header with the fixed bit", in.Wire[0])
	}
	if !bytes.Equal(in.Wire[6:6+connIDLen], in.DCID) || !bytes.Equal(in.Wire[7+connIDLen:7+2*connIDLen], in.SCID) {
		t.Errorf("connection IDs not where the invariants put them")
	}
	for _, v := range []uint32{0x1a2a3a4a, 0x0a0a0a0a, 0xfafafafa} {
		if !IsReservedVersion(v) {
			t.Errorf("IsReservedVersion(%#x) = false", v)
		}
	}
	for _, v := range []uint32{1, 0x6b3343cf, 0xff00001d, 0x0a0a0a0b} {
		if IsReservedVersion(v) {
			t.Errorf("IsReservedVersion(%#x) = true", v)
		}
	}
}

// TestV1InitialDecrypts removes the protection again with the keys of the
// Initial's DCID and checks that the plaintext is a CRYPTO frame holding a
// ClientHello, padded.
func TestV1InitialDecrypts(t *testing.T) {
	in, err := NewV1Initial("17.1.2.3", []string{"h3"})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Wire) != DatagramSize {
		t.Fatalf("size %d, want %d", len(in.Wire), DatagramSize)
	}
	key, iv, hp := initialKeys(in.DCID)
	pkt := append([]byte(nil), in.Wire...)
	pnOffset := 1 + 4 + 1 + len(in.DCID) + 1 + len(in.SCID) + 1 + 2
	hpBlock, _ := aes.NewCipher(hp)
	mask := make([]byte, 16)
	hpBlock.Encrypt(mask, pkt[pnOffset+4:pnOffset+20])
	pkt[0] ^= mask[0] & 0x0f
	for i := 0; i < 4; i++ {
		pkt[pnOffset+i] ^= mask[1+i]
	}
	if pkt[0] != 0xc3 || binary.BigEndian.Uint32(pkt[pnOffset:]) != 0 {
		t.Fatalf("unprotected first byte %#x, packet number %x; want 0xc3, 0", pkt[0], pkt[pnOffset:pnOffset+4])
	}
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	plain, err := aead.Open(nil, iv, pkt[pnOffset+4:], pkt[:pnOffset+4]) // pn 0: the nonce is the IV
	if err != nil {
		t.Fatalf("decrypting: %v", err)
	}
	if plain[0] != 0x06 || plain[1] != 0x00 {
		t.Fatalf("plaintext starts %x, want a CRYPTO frame at offset 0", plain[:4])
	}
	n := int(binary.BigEndian.Uint16(plain[2:]) & 0x3fff)
	hello := plain[4 : 4+n]
	if hello[0] != 1 || !bytes.Contains(hello, []byte("17.1.2.3")) || !bytes.Contains(hello, []byte{2, 'h', '3'}) {
		t.Errorf("ClientHello lacks its type, server name or ALPN: %x", hello[:16])
	}
	if !bytes.Contains(hello, in.SCID) {
		t.Error("ClientHello lacks initial_source_connection_id")
	}
	if !bytes.Equal(plain[4+n:], make([]byte, len(plain)-4-n)) {
		t.Error("the rest of the payload is not PADDING")
	}
}
