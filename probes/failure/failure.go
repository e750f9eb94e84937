// Package failure maps the errors of network operations to OONI's failure
// vocabulary (ooni/spec df-007) and the operation that failed.
//
// # Design
//
// Errors are classified once, at the network boundary, by the probe step
// that made the call: it passes the error and the operation it was doing to
// Classify and stores the strings. String matching on error text lives here
// and nowhere else. Text that falls through to "unknown_failure" has every IP
// address scrubbed, so a stored failure never carries the probe's address.
//
// This package does not decide whether a failure is censorship; that is
// analysis's job.
package failure

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/reachprobe/reachprobe/measurements"
)

// Failure strings of OONI's vocabulary.
const (
	GenericTimeout       = "generic_timeout_error"
	ConnectionRefused    = "connection_refused"
	ConnectionReset      = "connection_reset"
	EOF                  = "eof_error"
	HostUnreachable      = "host_unreachable"
	NetworkUnreachable   = "network_unreachable"
	DNSNXDomain          = "dns_nxdomain_error"
	DNSBogon             = "dns_bogon_error"
	DNSRefused           = "dns_refused_error"
	DNSServfail          = "dns_servfail_error"
	DNSNoAnswer          = "dns_no_answer"
	DNSServerMisbehaving = "dns_server_misbehaving"
	SSLInvalidHostname   = "ssl_invalid_hostname"
	SSLUnknownAuthority  = "ssl_unknown_authority"
	SSLInvalidCert       = "ssl_invalid_certificate"
	SSLFailedHandshake   = "ssl_failed_handshake"
	QUICIncompatible     = "quic_incompatible_version"
	Interrupted          = "interrupted"
	// UnknownPrefix starts every failure the classifier could not name.
	UnknownPrefix = "unknown_failure: "
)

// Operations that can fail.
const (
	OpResolve       = "resolve"
	OpConnect       = "connect"
	OpTLSHandshake  = "tls_handshake"
	OpQUICHandshake = "quic_handshake"
	OpRead          = "read"
	OpWrite         = "write"
)

// Error is an error already classified, for steps that detect a failure
// themselves (an NXDOMAIN rcode, a STUN timeout) rather than receive one.
type Error struct {
	Failure string // a vocabulary string
	Err     error  // the underlying error, if any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Failure + ": " + e.Err.Error()
	}
	return e.Failure
}

func (e *Error) Unwrap() error { return e.Err }

// Classify returns the vocabulary string for err, "" for nil.
func Classify(err error) string {
	if err == nil {
		return ""
	}
	var classified *Error
	if errors.As(err, &classified) {
		return classified.Failure
	}
	// Cancellation by the user comes first: a step cut short by Ctrl-C
	// says nothing about the network.
	if errors.Is(err, context.Canceled) {
		return Interrupted
	}
	if f := classifyDistinct(err); f != "" {
		return f
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return GenericTimeout
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return GenericTimeout
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ConnectionRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return ConnectionReset
	case errors.Is(err, syscall.EHOSTUNREACH):
		return HostUnreachable
	case errors.Is(err, syscall.ENETUNREACH):
		return NetworkUnreachable
	case errors.Is(err, syscall.ETIMEDOUT):
		return GenericTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return EOF
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		switch {
		case dnsErr.IsNotFound:
			return DNSNXDomain
		case dnsErr.IsTimeout:
			return GenericTimeout
		}
	}
	var hostErr x509.HostnameError
	if errors.As(err, &hostErr) {
		return SSLInvalidHostname
	}
	var authErr x509.UnknownAuthorityError
	if errors.As(err, &authErr) {
		return SSLUnknownAuthority
	}
	var certErr x509.CertificateInvalidError
	if errors.As(err, &certErr) {
		return SSLInvalidCert
	}
	return classifyText(err.Error())
}

// maxClassifyBytes is how much of an error's text classifyText reads.
const maxClassifyBytes = 4096

// classifyText is the last resort: errors that reach us only as text, from
// libraries that do not wrap the syscall error (TLS alerts, QUIC, the Go
// resolver's messages).
func classifyText(s string) string {
	// The phrases sit at the start of the errors that carry them; a
	// hostile server's megabytes after that are not worth lowercasing.
	l := strings.ToLower(s[:min(len(s), maxClassifyBytes)])
	switch {
	case strings.Contains(l, "operation was canceled"):
		return Interrupted
	case strings.Contains(l, "i/o timeout"), strings.Contains(l, "timeout: no recent network activity"),
		strings.Contains(l, "handshake did not complete in time"), strings.Contains(l, "deadline exceeded"):
		return GenericTimeout
	case strings.Contains(l, "connection refused"):
		return ConnectionRefused
	case strings.Contains(l, "connection reset"), strings.Contains(l, "broken pipe"):
		return ConnectionReset
	case strings.Contains(l, "operation not permitted"), strings.Contains(l, "permission denied"):
		return LocalFirewall
	case strings.Contains(l, "server gave http response to https client"):
		return HTTPResponseToTLS
	case strings.Contains(l, "stateless reset"):
		return QUICStatelessReset
	case strings.Contains(l, "no route to host"):
		return HostUnreachable
	case strings.Contains(l, "network is unreachable"):
		return NetworkUnreachable
	case strings.Contains(l, "no such host"):
		return DNSNXDomain
	case strings.Contains(l, "server misbehaving"):
		return DNSServerMisbehaving
	case strings.Contains(l, "no answer"):
		return DNSNoAnswer
	case strings.Contains(l, "certificate is valid for"), strings.Contains(l, "certificate is not valid for any names"):
		return SSLInvalidHostname
	case strings.Contains(l, "certificate signed by unknown authority"):
		return SSLUnknownAuthority
	case strings.Contains(l, "certificate has expired"), strings.Contains(l, "certificate is not yet valid"),
		strings.Contains(l, "x509: "):
		return SSLInvalidCert
	case strings.Contains(l, "no compatible quic version"), strings.Contains(l, "version negotiation"):
		return QUICIncompatible
	case strings.Contains(l, "tls: "), strings.Contains(l, "remote error"), strings.Contains(l, "handshake failure"),
		strings.Contains(l, "crypto_error"):
		return SSLFailedHandshake
	case strings.Contains(l, "eof"):
		return EOF
	}
	return UnknownPrefix + Text(s)
}

// Scrub replaces every IPv4 and IPv6 address in s with "[scrubbed]", as
// OONI does for free text.
func Scrub(s string) string { return measurements.Scrub(s) }
