package probetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stallWait is how long a test waits for a stalled handshake before
// concluding it stalls: far longer than a loopback handshake takes.
const stallWait = 500 * time.Millisecond

func startTestTLS(t *testing.T, mode TLSMode, alpn []string) (*TLSServer, *CA) {
	t.Helper()
	ca, err := LoadTestCA()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Leaf("courier.push.apple.com")
	if err != nil {
		t.Fatal(err)
	}
	s, err := StartTLS("127.0.0.1:0", mode, cert, alpn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, ca
}

func TestTLSValid(t *testing.T) {
	s, ca := startTestTLS(t, TLSValid, []string{"apns-security-v3", "h2"})
	tests := []struct {
		name       string
		serverName string
		clientALPN []string
		wantALPN   string
		wantVerify bool
	}{
		{"target name", "courier.push.apple.com", []string{"apns-security-v3"}, "apns-security-v3", true},
		{"server preference", "courier.push.apple.com", []string{"h2", "apns-security-v3"}, "apns-security-v3", true},
		{"no common protocol", "courier.push.apple.com", []string{"http/1.1"}, "", true},
		{"no alpn", "courier.push.apple.com", nil, "", true},
		// The same certificate is served for any name: the client rejects it.
		{"control name", "www.example.org", []string{"apns-security-v3"}, "apns-security-v3", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			d := tls.Dialer{Config: &tls.Config{
				ServerName:         tt.serverName,
				NextProtos:         tt.clientALPN,
				InsecureSkipVerify: true,
			}}
			conn, err := d.DialContext(ctx, "tcp", s.Addr().String())
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer conn.Close()
			tc := conn.(*tls.Conn)
			state := tc.ConnectionState()
			if state.NegotiatedProtocol != tt.wantALPN {
				t.Errorf("ALPN = %q, want %q", state.NegotiatedProtocol, tt.wantALPN)
			}
			_, err = state.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: tt.serverName})
			if gotVerify := err == nil; gotVerify != tt.wantVerify {
				t.Errorf("verified = %v (%v), want %v", gotVerify, err, tt.wantVerify)
			}
			tc.SetReadDeadline(time.Now().Add(5 * time.Second))
			line := make([]byte, len(greeting))
			if _, err := io.ReadFull(tc, line); err != nil || string(line) != greeting {
				t.Errorf("read %q, %v; want %q", line, err, greeting)
			}
			if _, err := tc.Write([]byte("discarded\n")); err != nil {
				t.Errorf("write: %v", err)
			}
		})
	}
}

func TestTLSResetAfterClientHello(t *testing.T) {
	s, _ := startTestTLS(t, TLSResetAfterClientHello, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{ServerName: "courier.push.apple.com", InsecureSkipVerify: true}}
	conn, err := d.DialContext(ctx, "tcp", s.Addr().String())
	if err == nil {
		conn.Close()
		t.Fatal("handshake succeeded, want a reset")
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("handshake: %v, want ECONNRESET", err)
	}
}

func TestTLSStall(t *testing.T) {
	s, _ := startTestTLS(t, TLSStall, nil)
	ctx, cancel := context.WithTimeout(context.Background(), stallWait)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{ServerName: "courier.push.apple.com", InsecureSkipVerify: true}}
	conn, err := d.DialContext(ctx, "tcp", s.Addr().String())
	if err == nil {
		conn.Close()
		t.Fatal("handshake succeeded, want a stall")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("handshake: %v, want the context deadline", err)
	}
}

// TestTLSStallCloses checks Close releases a stalled connection: the
// client sees its connection end instead of hanging.
func TestTLSStallCloses(t *testing.T) {
	s, _ := startTestTLS(t, TLSStall, nil)
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(fakeClientHello(100)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return with a stalled connection open")
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); err == nil {
		t.Errorf("read %d bytes after Close, want the connection closed", n)
	}
}

func TestStartTLSErrors(t *testing.T) {
	tests := []struct {
		name    string
		mode    TLSMode
		wantErr string
	}{
		{"valid without certificate", TLSValid, "needs a certificate"},
		{"unknown mode", TLSMode(99), "unknown TLS server mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := StartTLS("127.0.0.1:0", tt.mode, tls.Certificate{}, nil)
			if err == nil {
				s.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("StartTLS: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestReadRecord(t *testing.T) {
	hello := fakeClientHello(40)
	tests := []struct {
		name    string
		in      []byte
		want    []byte
		wantErr bool
	}{
		{"one record", hello, hello, false},
		{"record then more", append(bytes.Clone(hello), 1, 2, 3), hello, false},
		{"short header", hello[:3], nil, true},
		{"short body", hello[:len(hello)-1], nil, true},
		{"not handshake", append([]byte{23}, hello[1:]...), nil, true},
		{"too long", []byte{22, 3, 1, 0xff, 0xff}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readRecord(bytes.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("readRecord: error %v, want error %v", err, tt.wantErr)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("readRecord = %x, want %x", got, tt.want)
			}
		})
	}
}

func FuzzReadRecord(f *testing.F) {
	f.Add(fakeClientHello(40))
	f.Add([]byte{22, 3, 1, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := readRecord(bytes.NewReader(in))
		if err != nil {
			return
		}
		if len(got) < recordHeaderLen || len(got) > recordHeaderLen+maxRecordLen {
			t.Fatalf("record of %d bytes", len(got))
		}
		if !bytes.HasPrefix(in, got) {
			t.Fatalf("record %x is not a prefix of the input", got)
		}
		if n := int(binary.BigEndian.Uint16(got[3:5])); n != len(got)-recordHeaderLen {
			t.Fatalf("record length field %d, body %d bytes", n, len(got)-recordHeaderLen)
		}
	})
}

// fakeClientHello returns a handshake record header followed by n bytes;
// the servers only look at the record layer before misbehaving.
func fakeClientHello(n int) []byte {
	b := []byte{recordTypeHandshake, 3, 1, byte(n >> 8), byte(n)}
	return append(b, make([]byte, n)...)
}
