package tlsprobe

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/probes/failure"
)

// TLS extension types (IANA).
const (
	extServerName          = 0
	extALPN                = 16
	extCompressCertificate = 27
)

// helloSummary is what a test needs from a ClientHello.
type helloSummary struct {
	cipherSuites []uint16
	extensions   []uint16 // in order
	serverName   string   // "" when there is no SNI extension
	alpn         []string
}

// captureClientHello runs Handshake with cfg against a raw listener that
// reads the ClientHello record and hangs up, and returns what it read.
func captureClientHello(t *testing.T, cfg Config) []byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		defer close(got)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		header := make([]byte, 5)
		if _, err := io.ReadFull(c, header); err != nil {
			return
		}
		record := make([]byte, 5+int(binary.BigEndian.Uint16(header[3:5])))
		copy(record, header)
		if _, err := io.ReadFull(c, record[5:]); err != nil {
			return
		}
		got <- record
	}()
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	conn, obs := Connect(context.Background(), addr)
	if conn == nil {
		t.Fatalf("connect: %s", obs.Failure)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	obs = Handshake(ctx, conn, addr, cfg)
	if obs.Failure != failure.EOF && obs.Failure != failure.ConnectionReset {
		t.Errorf("handshake with a server that hangs up: %q, want %q or %q", obs.Failure, failure.EOF, failure.ConnectionReset)
	}
	record, ok := <-got
	if !ok {
		t.Fatal("the server read no ClientHello record")
	}
	return record
}

func TestClientHelloOnTheWire(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		wantSNI  string
		wantALPN []string
	}{
		{"catalog name and alpn", Config{ServerName: courier, ALPN: []string{apns}}, courier, []string{apns}},
		{"two protocols", Config{ServerName: "api.push.apple.com", ALPN: []string{"apns-pack-v1", apns}}, "api.push.apple.com", []string{"apns-pack-v1", apns}},
		{"fingerprint's alpn", Config{ServerName: courier}, courier, []string{"h2", "http/1.1"}},
		{"ip literal sends no sni", Config{ServerName: "127.0.0.1", ALPN: []string{apns}}, "", []string{apns}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			record := captureClientHello(t, tt.cfg)
			hello, err := parseClientHello(record)
			if err != nil {
				t.Fatalf("parsing the captured ClientHello: %v", err)
			}
			if hello.serverName != tt.wantSNI {
				t.Errorf("SNI = %q, want %q", hello.serverName, tt.wantSNI)
			}
			if !slices.Equal(hello.alpn, tt.wantALPN) {
				t.Errorf("ALPN = %q, want %q", hello.alpn, tt.wantALPN)
			}
			// The Apple fingerprint: a GREASE cipher suite first, and
			// certificate compression (which Go's own client never offers).
			if len(hello.cipherSuites) == 0 || !isGREASE(hello.cipherSuites[0]) {
				t.Errorf("first cipher suite %#x, want GREASE", hello.cipherSuites)
			}
			if !slices.Contains(hello.extensions, extCompressCertificate) {
				t.Errorf("extensions %v lack compress_certificate", hello.extensions)
			}
		})
	}
}

// isGREASE reports whether v is a GREASE value (RFC 8701): 0x?A?A.
func isGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

var errShort = errors.New("truncated ClientHello")

// reader reads big-endian fields from a byte slice.
type reader struct {
	b   []byte
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.err = errShort
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() int  { b := r.bytes(1); return int(at(b, 0)) }
func (r *reader) u16() int { b := r.bytes(2); return int(at(b, 0))<<8 | int(at(b, 1)) }
func (r *reader) u24() int {
	b := r.bytes(3)
	return int(at(b, 0))<<16 | int(at(b, 1))<<8 | int(at(b, 2))
}

func at(b []byte, i int) byte {
	if i < len(b) {
		return b[i]
	}
	return 0
}

// parseClientHello parses a TLS record holding a ClientHello (RFC 8446
// section 4.1.2), enough to read its cipher suites, SNI and ALPN.
func parseClientHello(record []byte) (helloSummary, error) {
	var h helloSummary
	r := &reader{b: record}
	if r.u8() != 22 {
		return h, errors.New("not a handshake record")
	}
	r.bytes(2) // legacy record version
	r = &reader{b: r.bytes(r.u16())}
	if r.u8() != 1 {
		return h, errors.New("not a ClientHello")
	}
	r = &reader{b: r.bytes(r.u24())}
	r.bytes(2 + 32) // legacy version, random
	r.bytes(r.u8()) // session ID
	suites := &reader{b: r.bytes(r.u16())}
	for len(suites.b) >= 2 {
		h.cipherSuites = append(h.cipherSuites, uint16(suites.u16()))
	}
	r.bytes(r.u8()) // compression methods
	exts := &reader{b: r.bytes(r.u16())}
	for len(exts.b) > 0 && exts.err == nil {
		typ := uint16(exts.u16())
		data := &reader{b: exts.bytes(exts.u16())}
		h.extensions = append(h.extensions, typ)
		switch typ {
		case extServerName:
			list := &reader{b: data.bytes(data.u16())}
			if list.u8() == 0 { // host_name
				h.serverName = string(list.bytes(list.u16()))
			}
			if list.err != nil {
				return h, list.err
			}
		case extALPN:
			list := &reader{b: data.bytes(data.u16())}
			for len(list.b) > 0 && list.err == nil {
				h.alpn = append(h.alpn, string(list.bytes(list.u8())))
			}
			if list.err != nil {
				return h, list.err
			}
		}
		if data.err != nil {
			return h, data.err
		}
	}
	if r.err != nil || exts.err != nil {
		return h, errShort
	}
	return h, nil
}
