package errqueue

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"
)

func TestParseRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		// what the classifiers must say
		timeExceeded, portUnreachable bool
	}{
		{"v4 time exceeded", Message{Errno: syscall.EHOSTUNREACH, Origin: OriginICMP, Type: 11, Code: 0, Offender: netip.MustParseAddr("10.0.0.1")}, true, false},
		{"v4 port unreachable", Message{Errno: syscall.ECONNREFUSED, Origin: OriginICMP, Type: 3, Code: 3, Offender: netip.MustParseAddr("17.1.2.3")}, false, true},
		{"v4 admin prohibited", Message{Errno: syscall.EHOSTUNREACH, Origin: OriginICMP, Type: 3, Code: 13, Offender: netip.MustParseAddr("192.0.2.1")}, false, false},
		{"v6 time exceeded", Message{Errno: syscall.EHOSTUNREACH, Origin: OriginICMP6, Type: 3, Offender: netip.MustParseAddr("2001:db8::1")}, true, false},
		{"v6 port unreachable", Message{Errno: syscall.ECONNREFUSED, Origin: OriginICMP6, Type: 1, Code: 4, Offender: netip.MustParseAddr("2620:149:a44::1")}, false, true},
		{"v4 frag needed", Message{Errno: syscall.EMSGSIZE, Origin: OriginICMP, Type: 3, Code: 4, Info: 1400, Offender: netip.MustParseAddr("10.9.9.9")}, false, false},
		{"local error has no offender", Message{Errno: syscall.EMSGSIZE, Origin: OriginLocal, Info: 1500}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(Marshal(tt.m))
			if err != nil {
				t.Fatalf("Parse(Marshal(%+v)) error %v", tt.m, err)
			}
			if got != tt.m {
				t.Errorf("Parse(Marshal(m)) = %+v, want %+v", got, tt.m)
			}
			if got.TimeExceeded() != tt.timeExceeded || got.PortUnreachable() != tt.portUnreachable {
				t.Errorf("TimeExceeded, PortUnreachable = %v, %v; want %v, %v",
					got.TimeExceeded(), got.PortUnreachable(), tt.timeExceeded, tt.portUnreachable)
			}
		})
	}
}

func TestParseSkipsOtherMessages(t *testing.T) {
	// A control message of another kind (level SOL_SOCKET, SCM_TIMESTAMP)
	// before the error must be skipped.
	other := Marshal(Message{Origin: OriginICMP, Type: 11, Offender: netip.MustParseAddr("10.0.0.1")})
	other[cmsgAlign] = 1 // level SOL_SOCKET
	want := Message{Errno: syscall.ECONNREFUSED, Origin: OriginICMP, Type: 3, Code: 3, Offender: netip.MustParseAddr("10.0.0.2")}
	got, err := Parse(append(other, Marshal(want)...))
	if err != nil || got != want {
		t.Fatalf("Parse = %+v, %v; want %+v", got, err, want)
	}
	if _, err := Parse(other); !errors.Is(err, ErrNotICMPError) {
		t.Errorf("Parse(no error message) error = %v, want ErrNotICMPError", err)
	}
}

func TestParseTruncated(t *testing.T) {
	full := Marshal(Message{Errno: syscall.ECONNREFUSED, Origin: OriginICMP, Type: 3, Code: 3, Offender: netip.MustParseAddr("10.0.0.2")})
	for n := 1; n < cmsgHeaderSize+sockExtendedErrSize; n++ {
		if _, err := Parse(full[:n]); err == nil {
			t.Errorf("Parse(%d of %d bytes) succeeded", n, len(full))
		}
	}
	// The error itself but a cut offender: parsed, with no offender.
	b := append([]byte(nil), full[:cmsgHeaderSize+sockExtendedErrSize+4]...)
	if m, err := Parse(fixLen(b)); err != nil || m.Offender.IsValid() {
		t.Errorf("Parse(cut offender) = %+v, %v; want no offender and no error", m, err)
	}
}

// fixLen rewrites the cmsg_len of a single control message to len(b).
func fixLen(b []byte) []byte {
	out := append([]byte(nil), b...)
	for i := 0; i < cmsgAlign; i++ {
		out[i] = 0
	}
	if cmsgAlign == 8 {
		binary.NativeEndian.PutUint64(out, uint64(len(b)))
	} else {
		binary.NativeEndian.PutUint32(out, uint32(len(b)))
	}
	return out
}

func FuzzParse(f *testing.F) {
	f.Add(Marshal(Message{Errno: syscall.ECONNREFUSED, Origin: OriginICMP, Type: 3, Code: 3, Offender: netip.MustParseAddr("10.0.0.2")}))
	f.Add(Marshal(Message{Errno: syscall.EHOSTUNREACH, Origin: OriginICMP6, Type: 3, Offender: netip.MustParseAddr("2001:db8::1")}))
	f.Add(Marshal(Message{Errno: syscall.EMSGSIZE, Origin: OriginLocal}))
	f.Add([]byte{})
	f.Add(make([]byte, cmsgHeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		// Classifiers must not panic and must agree with each other.
		if m.PortUnreachable() && !m.DestUnreachable() {
			t.Fatalf("%+v: port unreachable but not destination unreachable", m)
		}
		if m.TimeExceeded() && m.DestUnreachable() {
			t.Fatalf("%+v: both time exceeded and unreachable", m)
		}
		if !m.IsICMP() && m.Offender.IsValid() {
			t.Fatalf("%+v: offender on a local error", m)
		}
		// What parsed re-encodes to something that parses the same.
		if m2, err := Parse(Marshal(m)); err != nil || m2 != m {
			t.Fatalf("Parse(Marshal(%+v)) = %+v, %v", m, m2, err)
		}
	})
}
