package failure

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "some timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: err}}
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"classified", &Error{Failure: DNSRefused}, DNSRefused},
		{"wrapped classified", fmt.Errorf("lookup: %w", &Error{Failure: DNSServfail}), DNSServfail},
		{"canceled", context.Canceled, Interrupted},
		{"deadline", context.DeadlineExceeded, GenericTimeout},
		{"os deadline", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), GenericTimeout},
		{"net timeout", timeoutErr{}, GenericTimeout},
		{"refused", opErr(syscall.ECONNREFUSED), ConnectionRefused},
		{"reset", opErr(syscall.ECONNRESET), ConnectionReset},
		{"broken pipe", opErr(syscall.EPIPE), ConnectionReset},
		{"host unreachable", opErr(syscall.EHOSTUNREACH), HostUnreachable},
		{"network unreachable", opErr(syscall.ENETUNREACH), NetworkUnreachable},
		{"etimedout", opErr(syscall.ETIMEDOUT), GenericTimeout},
		{"eof", io.EOF, EOF},
		{"unexpected eof", fmt.Errorf("tls: %w", io.ErrUnexpectedEOF), EOF},
		{"dns not found", &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}, DNSNXDomain},
		{"dns timeout", &net.DNSError{Err: "timeout", Name: "x", IsTimeout: true}, GenericTimeout},
		{"dns misbehaving", &net.DNSError{Err: "server misbehaving", Name: "x"}, DNSServerMisbehaving},
		{"x509 hostname", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "x"}, SSLInvalidHostname},
		{"x509 authority", x509.UnknownAuthorityError{}, SSLUnknownAuthority},
		{"x509 invalid", x509.CertificateInvalidError{Reason: x509.Expired}, SSLInvalidCert},
		{"tls alert text", errors.New("remote error: tls: handshake failure"), SSLFailedHandshake},
		{"quic idle text", errors.New("timeout: no recent network activity"), GenericTimeout},
		{"quic version text", errors.New("no compatible QUIC version found"), QUICIncompatible},
		{"refused text", errors.New("read udp 10.0.0.1:5->17.1.2.3:3478: connection refused"), ConnectionRefused},
		{"unknown scrubbed", errors.New("weird thing from 192.0.2.7:443 and [2001:db8::1]:5223"),
			"unknown_failure: weird thing from [scrubbed]:443 and [scrubbed]:5223"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestScrub(t *testing.T) {
	tests := []struct{ in, want string }{
		{"dial tcp 203.0.113.9:5223: i/o timeout", "dial tcp [scrubbed]:5223: i/o timeout"},
		{"from fe80::1%eth0 to ::1", "from [scrubbed] to [scrubbed]"},
		{"2001:db8:0:0:0:0:0:1 ok", "[scrubbed] ok"},
		{"no address here: just text", "no address here: just text"},
		{"a :: b", "a :: b"},
	}
	for _, tt := range tests {
		if got := Scrub(tt.in); got != tt.want {
			t.Errorf("Scrub(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
