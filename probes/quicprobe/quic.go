// Package quicprobe measures one QUIC handshake (RFC 9000, TLS 1.3 over
// UDP) to one address and port, and records what the server presented.
//
// # Design
//
// The handshake runs with certificate verification switched off and the
// chain is verified afterwards against the configured roots, so the chain
// is recorded even when it does not verify: an unexpected chain is the
// evidence of interception. Each handshake uses a fresh UDP socket, so no
// state (tokens, session tickets, a NAT binding) carries over from one
// measurement to the next.
//
// The package does not send HTTP/3 requests, resolve names or decide
// whether a failure is censorship; it records one observation.
package quicprobe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
	"github.com/reachprobe/reachprobe/probes/tlsprobe"
)

// HandshakeTimeout bounds one QUIC handshake, from the first Initial
// packet to the handshake's completion. The client retransmits its Initial
// on its own, backing off exponentially, so 10 s allows several
// retransmissions on a slow or lossy path before silence is called a
// timeout. It is tlsprobe's bound too, so TLS over TCP and over QUIC are
// judged alike. quic.Config.HandshakeIdleTimeout is set to the same value.
const HandshakeTimeout = 10 * time.Second

// DefaultALPN is offered when Config.ALPN is empty: HTTP/3, what a QUIC
// server on UDP 443 (iCloud Private Relay included) expects.
const DefaultALPN = "h3"

// closeTimeout bounds the graceful close after the handshake. Closing
// sends a CONNECTION_CLOSE and returns without waiting for the peer, so it
// is quick; the bound only guards against a stuck connection.
const closeTimeout = time.Second

// Config says what the handshake presents and trusts.
type Config struct {
	// ServerName is sent as SNI and is the name the chain is verified
	// for. Empty sends no SNI and verifies the chain for the IP address;
	// an IP literal sends no SNI either (RFC 6066) and is verified as an
	// address.
	ServerName string
	// ALPN lists the application protocols offered; empty means
	// [DefaultALPN] alone.
	ALPN []string
	// RootCAs verifies the chain; nil means the system roots.
	RootCAs *x509.CertPool
	// Apple, set for Apple's targets, verifies the chain against Apple's
	// roots too (see tlsprobe.Config).
	Apple *tlsprobe.AppleTrust
}

// Handshake performs one QUIC handshake with addr and returns its
// observation; a failure is recorded in it, never returned. The caller
// fills in the catalog fields (Group, Target, Host, Repeat).
func Handshake(ctx context.Context, addr netip.AddrPort, cfg Config) *measurements.Observation {
	alpn := cfg.ALPN
	if len(alpn) == 0 {
		alpn = []string{DefaultALPN}
	}
	details := &measurements.TLSDetails{
		Network:    "udp",
		ServerName: cfg.ServerName,
		ALPN:       append([]string(nil), alpn...),
	}
	obs := &measurements.Observation{
		Step:      measurements.StepQUIC,
		Address:   addr.Addr().String(),
		Port:      int(addr.Port()),
		Transport: "udp",
		Started:   time.Now().UTC(),
		TLS:       details,
	}
	fail := func(op string, err error) *measurements.Observation {
		obs.Duration = time.Since(obs.Started)
		obs.Failure = failure.Classify(err)
		obs.Operation = op
		details.Alert = failure.TLSAlert(err)
		return obs
	}

	ctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	defer cancel()

	udpConn, err := listenFor(addr)
	if err != nil {
		return fail(failure.OpConnect, err)
	}
	defer udpConn.Close()
	// The Transport is built by hand, not through quic.DialAddr, so that
	// the socket is ours to bind by family and to close.
	tr := &quic.Transport{Conn: udpConn}
	defer tr.Close()

	tlsConf := &tls.Config{
		ServerName: cfg.ServerName,
		NextProtos: alpn,
		MinVersion: tls.VersionTLS13,
		// Verification happens after the handshake, in tlsprobe.VerifyChain, so
		// that a chain that fails it is still recorded.
		InsecureSkipVerify: true,
	}
	qconf := &quic.Config{HandshakeIdleTimeout: HandshakeTimeout}
	conn, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(addr), tlsConf, qconf)
	if err != nil {
		return fail(failure.OpQUICHandshake, err)
	}
	obs.Duration = time.Since(obs.Started)
	defer closeConn(conn)

	state := conn.ConnectionState().TLS
	recordState(details, state)
	name := tlsprobe.VerifyName(cfg.ServerName, addr)
	anchor, err := tlsprobe.VerifyChain(state.PeerCertificates, cfg.RootCAs, cfg.Apple, name, time.Now())
	details.Anchor = anchor
	if err != nil {
		details.VerifyFailure = failure.Text(err.Error())
		obs.Failure = failure.Classify(err)
		obs.Operation = failure.OpQUICHandshake
		return obs
	}
	details.Verified = true
	return obs
}

// listenFor opens an unconnected UDP socket of addr's family on an
// ephemeral port. quic-go wants an unconnected socket (it sends with
// sendmsg and an explicit destination).
func listenFor(addr netip.AddrPort) (*net.UDPConn, error) {
	if addr.Addr().Unmap().Is4() {
		return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	}
	return net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified})
}

// closeConn closes a completed connection with application error code 0,
// so the server sees a clean close rather than an idle timeout.
func closeConn(conn *quic.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = conn.CloseWithError(0, "")
	}()
	select {
	case <-done:
	case <-time.After(closeTimeout):
	}
}

// recordState copies the negotiated parameters and the peer's chain.
func recordState(d *measurements.TLSDetails, state tls.ConnectionState) {
	d.NegotiatedProtocol = state.NegotiatedProtocol
	d.TLSVersion = tlsprobe.VersionName(state.Version)
	d.CipherSuite = tls.CipherSuiteName(state.CipherSuite)
	for _, c := range state.PeerCertificates {
		d.PeerCertificates = append(d.PeerCertificates, c.Raw)
	}
}
