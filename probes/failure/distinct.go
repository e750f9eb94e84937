package failure

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"syscall"

	"github.com/quic-go/quic-go"
)

// Failures beyond OONI's vocabulary, for answers that mean different
// things and that analysis must tell apart.
const (
	// HTTPResponseToTLS: the peer answered a ClientHello with plaintext
	// HTTP ("HTTP/1.1 302 Found"). No TLS server does that: it is a
	// middlebox, a block page or a captive portal. The first bytes are
	// kept as evidence (TLSDetails.ServerBytes).
	HTTPResponseToTLS = "http_response_to_tls"
	// LocalFirewall: this machine refused to send (EPERM from its own
	// packet filter, EACCES from a prohibit route or a security module).
	// It is the volunteer's own policy, never the network's.
	LocalFirewall = "local_firewall_error"
	// AdminProhibited: an ICMP "administratively prohibited" (IPv4
	// destination unreachable codes 9, 10 and 13; IPv6 codes 1, 5 and 6)
	// answered: a firewall's explicit reject, on the path or at the host.
	AdminProhibited = "administratively_prohibited"
	// QUICStatelessReset: the peer answered with a QUIC stateless reset
	// (RFC 9000 §10.3): an endpoint that has no state for the connection.
	QUICStatelessReset = "quic_stateless_reset"
)

// MaxEvidenceBytes caps the bytes of a peer's answer kept as evidence:
// enough for a block page's status line and headers, never a whole page.
const MaxEvidenceBytes = 512

// ClassifyHandshake classifies the failure of a TLS handshake over TCP,
// given the first bytes the peer sent (nil if none): plaintext HTTP
// instead of a TLS record is HTTPResponseToTLS whatever error the TLS
// stack made of it; anything else is Classify(err).
func ClassifyHandshake(err error, first []byte) string {
	if err == nil {
		return ""
	}
	if bytes.HasPrefix(first, []byte("HTTP/")) {
		return HTTPResponseToTLS
	}
	return Classify(err)
}

// LooksLikeTLS reports whether b starts like a TLS record: a content type
// from 20 to 24 (change_cipher_spec to heartbeat) and major version 3.
func LooksLikeTLS(b []byte) bool {
	return len(b) >= 2 && b[0] >= 20 && b[0] <= 24 && b[1] == 3
}

// TLSAlert returns the name of the TLS alert the peer sent that err
// carries, in the style of RFC 8446's names ("handshake_failure",
// "unrecognized_name"), or "" when err is not a peer's alert.
func TLSAlert(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" && op.Err != nil {
		return alertName(op.Err.Error())
	}
	var te *quic.TransportError
	if errors.As(err, &te) && te.Remote && te.ErrorCode.IsCryptoError() {
		return alertName(tls.AlertError(uint8(te.ErrorCode - 0x100)).Error())
	}
	return ""
}

// alertName turns a TLS stack's alert text ("tls: handshake failure")
// into a name ("handshake_failure").
func alertName(s string) string {
	s = strings.TrimPrefix(strings.TrimSpace(s), "tls: ")
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, s)
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// ICMPError is a network error that came with the ICMP message that
// caused it, read from the socket's error queue (IP_RECVERR).
type ICMPError struct {
	IPv6 bool
	Type uint8
	Code uint8
	// FromTarget says the ICMP came from the address the probe sent to:
	// the datagram reached that host.
	FromTarget bool
	Err        error // the errno the socket reported
}

func (e *ICMPError) Error() string { return "icmp: " + e.Err.Error() }

func (e *ICMPError) Unwrap() error { return e.Err }

// AdministrativelyProhibited reports whether the ICMP message is a
// firewall's explicit reject.
func (e *ICMPError) AdministrativelyProhibited() bool {
	if e.IPv6 {
		// Destination unreachable: administratively prohibited, source
		// address failed ingress/egress policy, reject route.
		return e.Type == 1 && (e.Code == 1 || e.Code == 5 || e.Code == 6)
	}
	// Destination unreachable: network or host administratively
	// prohibited, communication administratively filtered.
	return e.Type == 3 && (e.Code == 9 || e.Code == 10 || e.Code == 13)
}

// classifyDistinct names the failures of this file that Classify finds in
// err, or "".
func classifyDistinct(err error) string {
	var reset *quic.StatelessResetError
	if errors.As(err, &reset) {
		return QUICStatelessReset
	}
	// EPERM comes from this machine's own packet filter refusing to send
	// (no ICMP message maps to it): whatever ICMP the local filter also
	// made, the packet never left.
	if errors.Is(err, syscall.EPERM) {
		return LocalFirewall
	}
	var icmp *ICMPError
	if errors.As(err, &icmp) && icmp.AdministrativelyProhibited() {
		return AdminProhibited
	}
	// EACCES without an ICMP message behind it is a prohibit route or a
	// security module of this machine (an IPv6 administratively
	// prohibited also reads EACCES, and was caught above when read).
	if errors.Is(err, syscall.EACCES) {
		return LocalFirewall
	}
	return ""
}
