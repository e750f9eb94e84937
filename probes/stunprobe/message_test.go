package stunprobe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// rfc5769IPv4Response is the sample IPv4 Binding success response of
// RFC 5769 section 2.2 (SOFTWARE, XOR-MAPPED-ADDRESS 192.0.2.1:32853,
// MESSAGE-INTEGRITY, FINGERPRINT). Its SOFTWARE value is padded with
// spaces, not zeros.
var rfc5769IPv4Response = []byte{
	0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42,
	0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
	0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20,
	0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
	0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74,
	0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7,
	0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
}

// rfc5769IPv6Response is the sample IPv6 response of RFC 5769 section
// 2.3: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853.
var rfc5769IPv6Response = []byte{
	0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42,
	0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
	0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20,
	0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47,
	0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
	0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84,
	0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41,
	0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
}

var rfc5769ID = [12]byte{0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae}

// xorAddress encodes an XOR-MAPPED-ADDRESS value, the inverse of
// decodeAddress, for building test messages.
func xorAddress(ap netip.AddrPort, id [12]byte) []byte {
	var key [16]byte
	binary.BigEndian.PutUint32(key[:], MagicCookie)
	copy(key[4:], id[:])
	return plainAddress(ap, key)
}

// plainAddress encodes a MAPPED-ADDRESS value XORed with key.
func plainAddress(ap netip.AddrPort, key [16]byte) []byte {
	ip := ap.Addr()
	family := byte(familyIPv4)
	if ip.Is6() {
		family = familyIPv6
	}
	v := []byte{0, family}
	v = binary.BigEndian.AppendUint16(v, ap.Port()^binary.BigEndian.Uint16(key[:]))
	for i, c := range ip.AsSlice() {
		v = append(v, c^key[i])
	}
	return v
}

// errorResponse is a Binding error response 420 with a reason phrase.
func errorResponse() []byte {
	m := Message{
		Type:          MessageType(MethodBinding, ClassError),
		TransactionID: rfc5769ID,
		Attributes:    []Attribute{{Type: AttrErrorCode, Value: append([]byte{0, 0, 4, 20}, "Unknown Attribute"...)}},
	}
	return appendFingerprint(m.Marshal())
}

func TestParseMessageRFC5769(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want netip.AddrPort
	}{
		{"ipv4", rfc5769IPv4Response, netip.MustParseAddrPort("192.0.2.1:32853")},
		{"ipv6", rfc5769IPv6Response, netip.MustParseAddrPort("[2001:db8:1234:5678:11:2233:4455:6677]:32853")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMessage(tt.wire)
			if err != nil {
				t.Fatalf("ParseMessage: %v", err)
			}
			if got := m.Class(); got != ClassSuccess {
				t.Errorf("Class() = %v, want success", got)
			}
			if got := m.Method(); got != MethodBinding {
				t.Errorf("Method() = %#x, want Binding", got)
			}
			if m.TransactionID != rfc5769ID {
				t.Errorf("TransactionID = %x, want %x", m.TransactionID, rfc5769ID)
			}
			got, err := m.XORMappedAddress()
			if err != nil || got != tt.want {
				t.Errorf("XORMappedAddress() = %v, %v, want %v", got, err, tt.want)
			}
			if sw, _ := m.Get(AttrSoftware); string(sw) != "test vector" {
				t.Errorf("SOFTWARE = %q, want %q", sw, "test vector")
			}
			if _, err := m.MappedAddress(); !errors.Is(err, ErrNoAttribute) {
				t.Errorf("MappedAddress() error = %v, want ErrNoAttribute", err)
			}
		})
	}
}

func TestParseMessageDoesNotAlias(t *testing.T) {
	b := append([]byte(nil), rfc5769IPv4Response...)
	m, err := ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	clear(b)
	if got, err := m.XORMappedAddress(); err != nil || got != netip.MustParseAddrPort("192.0.2.1:32853") {
		t.Errorf("after clearing the input, XORMappedAddress() = %v, %v", got, err)
	}
}

func TestBindingRequestRoundTrip(t *testing.T) {
	m, wire := NewBindingRequest()
	if len(wire) != HeaderSize+8 {
		t.Errorf("request is %d bytes, want %d (header and FINGERPRINT)", len(wire), HeaderSize+8)
	}
	if m.Class() != ClassRequest || m.Method() != MethodBinding {
		t.Errorf("class %v method %#x, want request Binding", m.Class(), m.Method())
	}
	got, err := ParseMessage(wire)
	if err != nil {
		t.Fatalf("ParseMessage(own request): %v", err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("ParseMessage(wire) = %+v, want %+v", got, m)
	}
	if re := got.Marshal(); !bytes.Equal(re, wire) {
		t.Errorf("Marshal(ParseMessage(wire)) = %x, want %x", re, wire)
	}
	m2, _ := NewBindingRequest()
	if m2.TransactionID == m.TransactionID {
		t.Errorf("two requests share transaction ID %x", m.TransactionID)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	id := [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	tests := []struct {
		name  string
		attrs []Attribute
	}{
		{"no attributes", nil},
		{"empty value", []Attribute{{Type: AttrSoftware, Value: []byte{}}}},
		{"padding 1 to 3", []Attribute{
			{Type: AttrSoftware, Value: []byte("a")},
			{Type: 0x8023, Value: []byte("ab")},
			{Type: 0x8024, Value: []byte("abc")},
			{Type: 0x8025, Value: []byte("abcd")},
			{Type: 0x8026, Value: []byte("abcde")},
		}},
		{"addresses", []Attribute{
			{Type: AttrMappedAddress, Value: plainAddress(netip.MustParseAddrPort("198.51.100.7:4500"), [16]byte{})},
			{Type: AttrXORMappedAddress, Value: xorAddress(netip.MustParseAddrPort("[2001:db8::9]:16384"), id)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Message{Type: MessageType(MethodBinding, ClassSuccess), TransactionID: id, Attributes: tt.attrs}
			wire := m.Marshal()
			if len(wire)%4 != 0 {
				t.Errorf("Marshal length %d is not a multiple of 4", len(wire))
			}
			got, err := ParseMessage(wire)
			if err != nil {
				t.Fatalf("ParseMessage: %v", err)
			}
			if len(got.Attributes) != len(tt.attrs) {
				t.Fatalf("got %d attributes, want %d", len(got.Attributes), len(tt.attrs))
			}
			for i, a := range got.Attributes {
				if a.Type != tt.attrs[i].Type || !bytes.Equal(a.Value, tt.attrs[i].Value) {
					t.Errorf("attribute %d = %#x %x, want %#x %x", i, a.Type, a.Value, tt.attrs[i].Type, tt.attrs[i].Value)
				}
			}
			if re := got.Marshal(); !bytes.Equal(re, wire) {
				t.Errorf("re-Marshal = %x, want %x", re, wire)
			}
		})
	}
}

func TestMessageType(t *testing.T) {
	tests := []struct {
		name   string
		method uint16
		class  Class
		want   uint16
	}{
		{"binding request", MethodBinding, ClassRequest, 0x0001},
		{"binding indication", MethodBinding, ClassIndication, 0x0011},
		{"binding success", MethodBinding, ClassSuccess, 0x0101},
		{"binding error", MethodBinding, ClassError, 0x0111},
		{"allocate request", 0x003, ClassRequest, 0x0003},
		{"highest method error", 0xfff, ClassError, 0x3fff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MessageType(tt.method, tt.class); got != tt.want {
				t.Errorf("MessageType(%#x, %v) = %#04x, want %#04x", tt.method, tt.class, got, tt.want)
			}
		})
	}
	for method := uint16(0); method <= 0xfff; method++ {
		for c := ClassRequest; c <= ClassError; c++ {
			m := Message{Type: MessageType(method, c)}
			if m.Method() != method || m.Class() != c {
				t.Fatalf("type %#04x decodes to method %#x class %v, want %#x %v", m.Type, m.Method(), m.Class(), method, c)
			}
		}
	}
}

func TestParseMessageErrors(t *testing.T) {
	valid := rfc5769IPv4Response
	with := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), valid...)) }
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"short header", valid[:HeaderSize-1], ErrTruncated},
		{"body shorter than length", valid[:len(valid)-4], ErrTruncated},
		{"leading bits set", with(func(b []byte) []byte { b[0] |= 0x80; return b }), ErrNotSTUN},
		{"length not multiple of 4", with(func(b []byte) []byte { b[3] = 0x3d; return b }), ErrBadLength},
		{"trailing bytes", append(append([]byte(nil), valid...), 0, 0, 0, 0), ErrBadLength},
		{"RFC 3489 cookie", with(func(b []byte) []byte { b[4] = 0; return b }), ErrBadCookie},
		{"attribute past end", func() []byte {
			m := Message{Type: 0x0101}
			b := m.Marshal()
			b = append(b, 0x80, 0x22, 0x00, 0x09, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h')
			b[3] = 12
			return b
		}(), ErrBadAttribute},
		{"fingerprint mismatch", with(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrBadFingerprint},
		{"value changed under fingerprint", with(func(b []byte) []byte { b[HeaderSize+4] = 'T'; return b }), ErrBadFingerprint},
		{"fingerprint not last", func() []byte {
			b := appendFingerprint(Message{Type: 0x0101}.Marshal())
			b = append(b, 0x80, 0x22, 0x00, 0x00)
			b[3] += 4
			return b
		}(), ErrBadFingerprint},
		{"fingerprint wrong size", func() []byte {
			m := Message{Type: 0x0101, Attributes: []Attribute{{Type: AttrFingerprint, Value: []byte{1, 2}}}}
			return m.Marshal()
		}(), ErrBadFingerprint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMessage(tt.wire)
			if !errors.Is(err, tt.want) {
				t.Errorf("ParseMessage() error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAddressAttributes(t *testing.T) {
	id := rfc5769ID
	v4 := netip.MustParseAddrPort("203.0.113.5:3478")
	v6 := netip.MustParseAddrPort("[2001:db8::1]:16393")
	tests := []struct {
		name    string
		attr    Attribute
		xor     bool
		want    netip.AddrPort
		wantErr error
	}{
		{"xor ipv4", Attribute{AttrXORMappedAddress, xorAddress(v4, id)}, true, v4, nil},
		{"xor ipv6", Attribute{AttrXORMappedAddress, xorAddress(v6, id)}, true, v6, nil},
		{"plain ipv4", Attribute{AttrMappedAddress, plainAddress(v4, [16]byte{})}, false, v4, nil},
		{"plain ipv6", Attribute{AttrMappedAddress, plainAddress(v6, [16]byte{})}, false, v6, nil},
		{"unknown family", Attribute{AttrXORMappedAddress, []byte{0, 3, 0, 0, 1, 2, 3, 4}}, true, netip.AddrPort{}, ErrBadAddress},
		{"ipv4 too long", Attribute{AttrMappedAddress, []byte{0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}}, false, netip.AddrPort{}, ErrBadAddress},
		{"ipv6 too short", Attribute{AttrXORMappedAddress, xorAddress(v6, id)[:12]}, true, netip.AddrPort{}, ErrBadAddress},
		{"header only", Attribute{AttrMappedAddress, []byte{0, 1}}, false, netip.AddrPort{}, ErrBadAddress},
		{"absent", Attribute{AttrSoftware, []byte("x")}, true, netip.AddrPort{}, ErrNoAttribute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Message{Type: 0x0101, TransactionID: id, Attributes: []Attribute{tt.attr}}
			m, err := ParseMessage(m.Marshal())
			if err != nil {
				t.Fatalf("ParseMessage: %v", err)
			}
			decode := m.MappedAddress
			if tt.xor {
				decode = m.XORMappedAddress
			}
			got, err := decode()
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Errorf("got %v, %v, want %v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		name       string
		value      []byte
		wantCode   int
		wantReason string
		wantErr    error
	}{
		{"420", append([]byte{0, 0, 4, 20}, "Unknown Attribute"...), 420, "Unknown Attribute", nil},
		{"300 no reason", []byte{0, 0, 3, 0}, 300, "", nil},
		{"class 2", []byte{0, 0, 2, 0}, 0, "", ErrBadAttribute},
		{"number 100", []byte{0, 0, 4, 100}, 0, "", ErrBadAttribute},
		{"short", []byte{0, 0, 4}, 0, "", ErrBadAttribute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Message{Type: 0x0111, Attributes: []Attribute{{AttrErrorCode, tt.value}}}
			code, reason, err := m.ErrorCode()
			if code != tt.wantCode || reason != tt.wantReason || !errors.Is(err, tt.wantErr) {
				t.Errorf("ErrorCode() = %d, %q, %v, want %d, %q, %v", code, reason, err, tt.wantCode, tt.wantReason, tt.wantErr)
			}
		})
	}
	if _, _, err := (Message{}).ErrorCode(); !errors.Is(err, ErrNoAttribute) {
		t.Errorf("ErrorCode() of a message without it: error = %v, want ErrNoAttribute", err)
	}
	m, err := ParseMessage(errorResponse())
	if err != nil {
		t.Fatalf("ParseMessage(errorResponse): %v", err)
	}
	if code, _, _ := m.ErrorCode(); m.Class() != ClassError || code != 420 {
		t.Errorf("error response: class %v code %d, want error 420", m.Class(), code)
	}
}

func FuzzParseMessage(f *testing.F) {
	_, request := NewBindingRequest()
	f.Add(rfc5769IPv4Response)
	f.Add(rfc5769IPv6Response)
	f.Add(errorResponse())
	f.Add(request)
	f.Add(rfc5769IPv4Response[:HeaderSize+6])
	f.Add(rfc5769IPv4Response[:HeaderSize-3])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		// Accessors must not panic on anything that parsed.
		_, _ = m.XORMappedAddress()
		_, _ = m.MappedAddress()
		_, _, _ = m.ErrorCode()
		_ = m.Class().String()
		re := m.Marshal()
		if len(re) != len(b) || !bytes.Equal(re[:HeaderSize], b[:HeaderSize]) {
			t.Fatalf("Marshal(ParseMessage(%x)) = %x: length or header differs", b, re)
		}
		if _, ok := m.Get(AttrFingerprint); ok {
			return // padding may differ, so the CRC need not hold for re
		}
		m2, err := ParseMessage(re)
		if err != nil {
			t.Fatalf("ParseMessage(Marshal(m)) error %v for input %x", err, b)
		}
		if !reflect.DeepEqual(m2, m) {
			t.Fatalf("ParseMessage(Marshal(m)) = %+v, want %+v", m2, m)
		}
	})
}
