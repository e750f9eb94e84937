package tlsprobe

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	utls "github.com/refraction-networking/utls"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
)

// HandshakeTimeout bounds one TLS handshake once TCP is connected. A
// handshake takes two round trips plus the server's signature; even on a
// congested mobile link with a retransmission or two that is a few
// seconds. A censor that lets TCP through and then drops the ClientHello
// must not cost more than this.
const HandshakeTimeout = 10 * time.Second

// DefaultClientHello is the fingerprint presented when Config.ClientHello
// is zero: uTLS's newest Apple preset, Safari 16.0, which is the TLS stack
// of iOS and macOS of that generation (the one apsd and identityservicesd
// share with Safari). Its preset offers ALPN "h2" and "http/1.1".
var DefaultClientHello = utls.HelloSafari_16_0

// maxALPNLen is the longest protocol name ALPN can carry (RFC 7301: one
// length byte).
const maxALPNLen = 255

// Config says how to shake hands with one target.
type Config struct {
	// ServerName is sent as SNI and is the name the chain is verified for.
	// Empty sends no SNI and verifies the chain for the IP address, as a
	// client connecting to a bare address does. An IP literal sends no SNI
	// either (RFC 6066 forbids it) and is verified as an address.
	ServerName string
	// ALPN replaces the protocols of the fingerprint's ALPN extension.
	// Empty keeps the fingerprint's own list, so the ClientHello stays the
	// device's exact one.
	ALPN []string
	// RootCAs verifies the chain; nil means the system roots. LoadRoots
	// builds a pool of the system roots plus extra files.
	RootCAs *x509.CertPool
	// Apple, set for Apple's targets, verifies the chain against Apple's
	// roots too, with Apple's intermediates offered (EmbeddedApple, or
	// LoadAppleTrust on a test network). nil: RootCAs alone.
	Apple *AppleTrust
	// ClientHello is the uTLS fingerprint to present; zero means
	// DefaultClientHello.
	ClientHello utls.ClientHelloID
}

// Validate reports whether the configuration can make a ClientHello: the
// fingerprint is one uTLS knows, has an ALPN extension when ALPN is set,
// and every ALPN protocol is 1 to 255 bytes. The catalog loader calls it
// so that a bad catalog fails before the run, not as a failed step.
func (c Config) Validate() error {
	_, _, err := c.spec()
	return err
}

// helloID returns the fingerprint to present.
func (c Config) helloID() utls.ClientHelloID {
	if c.ClientHello.Client == "" && c.ClientHello.Version == "" {
		return DefaultClientHello
	}
	return c.ClientHello
}

// spec builds the ClientHello spec of the fingerprint with the configured
// ALPN, and returns the protocols it offers.
func (c Config) spec() (utls.ClientHelloSpec, []string, error) {
	for _, p := range c.ALPN {
		if len(p) == 0 || len(p) > maxALPNLen {
			return utls.ClientHelloSpec{}, nil, fmt.Errorf("tlsprobe: ALPN protocol %q must be 1 to %d bytes", p, maxALPNLen)
		}
	}
	id := c.helloID()
	spec, err := utls.UTLSIdToSpec(id)
	if err != nil {
		return utls.ClientHelloSpec{}, nil, fmt.Errorf("tlsprobe: fingerprint %s: %w", id.Str(), err)
	}
	var offered []string
	found := false
	for _, ext := range spec.Extensions {
		alpn, ok := ext.(*utls.ALPNExtension)
		if !ok {
			continue
		}
		found = true
		if len(c.ALPN) > 0 {
			alpn.AlpnProtocols = slices.Clone(c.ALPN)
		}
		offered = slices.Clone(alpn.AlpnProtocols)
	}
	if len(c.ALPN) > 0 && !found {
		return utls.ClientHelloSpec{}, nil, fmt.Errorf("tlsprobe: fingerprint %s has no ALPN extension to carry %q", id.Str(), c.ALPN)
	}
	return spec, offered, nil
}

// Handshake performs one TLS handshake over conn, an established TCP
// connection to addr, and returns its tls Observation. Started and
// Duration cover the handshake only.
//
// The handshake itself does not verify the server: the chain is recorded
// whatever it is, then verified against cfg.RootCAs (and cfg.Apple) for
// the server name. A chain that does not verify makes the step fail
// (Operation "tls_handshake", Failure ssl_unknown_authority,
// ssl_invalid_hostname or ssl_invalid_certificate, Verified false,
// VerifyFailure the reason) while version, cipher suite, negotiated
// protocol and chain stay recorded. Anchor names the roots the chain
// verified to, the name aside.
//
// conn stays open; the caller closes it. The TLS session is not handed
// back: the step measures the handshake, not what follows. A cancelled or
// expired ctx interrupts the handshake by closing conn.
//
// An invalid cfg (see Config.Validate) is recorded as an unknown_failure
// of the step, "unknown_failure: tlsprobe: ...", without sending anything.
func Handshake(ctx context.Context, conn net.Conn, addr netip.AddrPort, cfg Config) *measurements.Observation {
	addr = unmap(addr)
	obs := newTLSObservation(addr, cfg)
	spec, offered, err := cfg.spec()
	if err == nil && conn == nil {
		err = errors.New("tlsprobe: no connection to shake hands over")
	}
	var uconn *utls.UConn
	var rec *firstBytesConn
	if err == nil {
		obs.TLS.ALPN = offered
		rec = &firstBytesConn{Conn: conn}
		uconn = utls.UClient(rec, &utls.Config{
			ServerName: cfg.ServerName,
			// Verification happens after the handshake, so that a chain
			// that fails it is still recorded.
			InsecureSkipVerify: true,
		}, utls.HelloCustom)
		if err = uconn.ApplyPreset(&spec); err != nil {
			err = fmt.Errorf("tlsprobe: applying fingerprint %s: %w", obs.TLS.ClientHello, err)
		}
	}
	start := time.Now()
	obs.Started = start.UTC()
	if err != nil {
		obs.Failure = configFailure(err)
		obs.Operation = failure.OpTLSHandshake
		return obs
	}

	hctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	defer cancel()
	err = uconn.HandshakeContext(hctx)
	obs.Duration = time.Since(start)
	if err != nil {
		recordFailure(obs, err, rec.bytes())
		return obs
	}

	state := uconn.ConnectionState()
	obs.TLS.TLSVersion = VersionName(state.Version)
	obs.TLS.CipherSuite = utls.CipherSuiteName(state.CipherSuite)
	obs.TLS.NegotiatedProtocol = state.NegotiatedProtocol
	for _, cert := range state.PeerCertificates {
		obs.TLS.PeerCertificates = append(obs.TLS.PeerCertificates, cert.Raw)
	}
	anchor, err := VerifyChain(state.PeerCertificates, cfg.RootCAs, cfg.Apple, VerifyName(cfg.ServerName, addr), time.Now())
	obs.TLS.Anchor = anchor
	if err != nil {
		obs.Failure = failure.Classify(err)
		obs.Operation = failure.OpTLSHandshake
		obs.TLS.VerifyFailure = failure.Text(err.Error())
		return obs
	}
	obs.TLS.Verified = true
	return obs
}

// DialHandshake connects to addr and shakes hands over the new connection,
// which it closes afterwards. It returns one tls Observation whose Started
// and Duration cover the connect and the handshake; if the connect fails,
// the observation carries its failure with Operation "connect". An invalid
// cfg fails the step before connecting.
func DialHandshake(ctx context.Context, addr netip.AddrPort, cfg Config) *measurements.Observation {
	addr = unmap(addr)
	start := time.Now()
	_, offered, err := cfg.spec()
	if err != nil {
		obs := newTLSObservation(addr, cfg)
		obs.Started = start.UTC()
		obs.Failure = configFailure(err)
		obs.Operation = failure.OpTLSHandshake
		return obs
	}
	conn, tcpObs := Connect(ctx, addr)
	if conn == nil {
		obs := newTLSObservation(addr, cfg)
		obs.TLS.ALPN = offered
		obs.Started = tcpObs.Started
		obs.Duration = tcpObs.Duration
		obs.Failure = tcpObs.Failure
		obs.Operation = tcpObs.Operation
		return obs
	}
	defer conn.Close()
	obs := Handshake(ctx, conn, addr, cfg)
	obs.Started = start.UTC()
	obs.Duration = time.Since(start)
	return obs
}

// configFailure is the Failure of a step that a bad Config kept from
// starting. It is always an unknown_failure: classifying the text could
// turn "tls: unknown ClientHelloID" into ssl_failed_handshake, a network
// failure that never happened.
func configFailure(err error) string {
	return failure.UnknownPrefix + failure.Text(err.Error())
}

// newTLSObservation returns the tls Observation of a handshake to addr
// with cfg, before anything happened. Its ALPN is cfg's until the offered
// list is known.
func newTLSObservation(addr netip.AddrPort, cfg Config) *measurements.Observation {
	id := cfg.helloID()
	return &measurements.Observation{
		Step:      measurements.StepTLS,
		Address:   addr.Addr().String(),
		Port:      int(addr.Port()),
		Transport: "tcp",
		TLS: &measurements.TLSDetails{
			Network:     "tcp",
			ServerName:  cfg.ServerName,
			ALPN:        slices.Clone(cfg.ALPN),
			ClientHello: id.Str(),
		},
	}
}
