package failure

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/quic-go/quic-go"
)

func TestClassifyDistinct(t *testing.T) {
	opErr := func(op string, err error) error {
		return &net.OpError{Op: op, Net: "udp", Err: &os.SyscallError{Syscall: op, Err: err}}
	}
	icmp := func(v6 bool, typ, code uint8, errno syscall.Errno) error {
		return opErr("read", &ICMPError{IPv6: v6, Type: typ, Code: code, Err: errno})
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"local firewall EPERM", opErr("write", syscall.EPERM), LocalFirewall},
		{"prohibit route EACCES", opErr("connect", syscall.EACCES), LocalFirewall},
		{"local firewall text", errors.New("write udp: operation not permitted"), LocalFirewall},
		{"icmp admin prohibited", icmp(false, 3, 13, syscall.EHOSTUNREACH), AdminProhibited},
		{"icmp host prohibited", icmp(false, 3, 10, syscall.EHOSTUNREACH), AdminProhibited},
		{"icmp net prohibited", icmp(false, 3, 9, syscall.ENETUNREACH), AdminProhibited},
		{"icmpv6 admin prohibited", icmp(true, 1, 1, syscall.EACCES), AdminProhibited},
		{"local reject with its own icmp", opErr("write", &ICMPError{Type: 3, Code: 13, Err: syscall.EPERM}), LocalFirewall},
		{"icmpv6 admin prohibited reads EACCES", icmp(true, 1, 1, syscall.EACCES), AdminProhibited},
		{"icmp port unreachable", icmp(false, 3, 3, syscall.ECONNREFUSED), ConnectionRefused},
		{"icmp host unreachable", icmp(false, 3, 1, syscall.EHOSTUNREACH), HostUnreachable},
		{"quic stateless reset", fmt.Errorf("dial: %w", &quic.StatelessResetError{}), QUICStatelessReset},
		{"http to https text", errors.New(`Get "https://x/dns-query": http: server gave HTTP response to HTTPS client`), HTTPResponseToTLS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestClassifyHandshake(t *testing.T) {
	notTLS := errors.New("tls: first record does not look like a TLS handshake")
	tests := []struct {
		name  string
		err   error
		first []byte
		want  string
	}{
		{"http answer", notTLS, []byte("HTTP/1.1 302 Found\r\n"), HTTPResponseToTLS},
		{"other plaintext", notTLS, []byte("<html>"), SSLFailedHandshake},
		{"alert", &net.OpError{Op: "remote error", Err: errors.New("tls: handshake failure")}, []byte{21, 3, 3, 0, 2, 2, 40}, SSLFailedHandshake},
		{"nil", nil, nil, ""},
	}
	for _, tt := range tests {
		if got := ClassifyHandshake(tt.err, tt.first); got != tt.want {
			t.Errorf("%s: ClassifyHandshake = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestTLSAlert(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"utls remote alert", fmt.Errorf("handshake: %w", &net.OpError{Op: "remote error", Err: errors.New("tls: unrecognized name")}), "unrecognized_name"},
		{"quic crypto error", &quic.TransportError{Remote: true, ErrorCode: 0x100 + 40}, "handshake_failure"},
		{"local quic crypto error", &quic.TransportError{ErrorCode: 0x100 + 40}, ""},
		{"reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, ""},
	}
	for _, tt := range tests {
		if got := TLSAlert(tt.err); got != tt.want {
			t.Errorf("%s: TLSAlert = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestLooksLikeTLS(t *testing.T) {
	for _, tt := range []struct {
		b    []byte
		want bool
	}{
		{[]byte{22, 3, 1, 0, 5}, true},
		{[]byte{21, 3, 3}, true},
		{[]byte("HTTP/1.1"), false},
		{[]byte{22}, false},
		{nil, false},
	} {
		if got := LooksLikeTLS(tt.b); got != tt.want {
			t.Errorf("LooksLikeTLS(%q) = %v, want %v", tt.b, got, tt.want)
		}
	}
}
