package quicprobe

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// testTimeout bounds a handshake that should succeed or fail on its own.
const testTimeout = 10 * time.Second

// testPKI is a trusted CA and an untrusted one playing a middlebox.
type testPKI struct {
	trusted, untrusted *probetest.CA
}

func newPKI(t *testing.T) testPKI {
	t.Helper()
	trusted, err := probetest.NewCA("quicprobe test CA")
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := probetest.NewCA("quicprobe untrusted CA")
	if err != nil {
		t.Fatal(err)
	}
	return testPKI{trusted: trusted, untrusted: untrusted}
}

func startServer(t *testing.T, addr string, cert tls.Certificate, alpn []string) *probetest.QUICServer {
	t.Helper()
	srv, err := probetest.StartQUIC(addr, cert, alpn)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func TestHandshake(t *testing.T) {
	pki := newPKI(t)
	tests := []struct {
		name            string
		listen          string
		certName        string // DNS name or IP literal of the server's leaf
		untrustedIssuer bool   // the leaf comes from a CA the probe does not trust
		serverALPN      []string
		serverName      string
		alpn            []string
		wantFail        string
		wantProto       string
		verified        bool
		wantChain       bool
	}{
		{name: "trusted, h3 by default", listen: "127.0.0.1:0", certName: "relay.test", serverName: "relay.test",
			wantProto: "h3", verified: true, wantChain: true},
		{name: "trusted over ipv6", listen: "[::1]:0", certName: "relay.test", serverName: "relay.test",
			wantProto: "h3", verified: true, wantChain: true},
		{name: "other alpn", listen: "127.0.0.1:0", certName: "relay.test", serverALPN: []string{"h3-29", "custom"},
			serverName: "relay.test", alpn: []string{"custom"}, wantProto: "custom", verified: true, wantChain: true},
		{name: "longest alpn list a catalog accepts", listen: "127.0.0.1:0", certName: "relay.test", serverName: "relay.test",
			serverALPN: []string{"h3"}, alpn: longALPN(), wantProto: "h3", verified: true, wantChain: true},
		{name: "no server name, certificate for the ip", listen: "127.0.0.1:0", certName: "127.0.0.1",
			wantProto: "h3", verified: true, wantChain: true},
		{name: "untrusted issuer", listen: "127.0.0.1:0", certName: "relay.test", untrustedIssuer: true,
			serverName: "relay.test", wantFail: failure.SSLUnknownAuthority, wantProto: "h3", wantChain: true},
		{name: "untrusted issuer, other name", listen: "127.0.0.1:0", certName: "intercept.test", untrustedIssuer: true,
			serverName: "relay.test", wantFail: failure.SSLUnknownAuthority, wantProto: "h3", wantChain: true},
		{name: "wrong name", listen: "127.0.0.1:0", certName: "relay.test", serverName: "other.test",
			wantFail: failure.SSLInvalidHostname, wantProto: "h3", wantChain: true},
		{name: "no server name, certificate for a name", listen: "127.0.0.1:0", certName: "relay.test",
			wantFail: failure.SSLInvalidHostname, wantProto: "h3", wantChain: true},
		{name: "no common alpn", listen: "127.0.0.1:0", certName: "relay.test", serverALPN: []string{"custom"},
			serverName: "relay.test", wantFail: failure.SSLFailedHandshake},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issuer := pki.trusted
			if tt.untrustedIssuer {
				issuer = pki.untrusted
			}
			cert, err := issuer.Leaf(tt.certName)
			if err != nil {
				t.Fatal(err)
			}
			srv := startServer(t, tt.listen, cert, tt.serverALPN)
			cfg := Config{ServerName: tt.serverName, ALPN: tt.alpn, RootCAs: pki.trusted.Pool()}
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			obs := Handshake(ctx, srv.Addr(), cfg)

			if obs.Step != measurements.StepQUIC || obs.Transport != "udp" {
				t.Errorf("Step, Transport = %q, %q, want quic, udp", obs.Step, obs.Transport)
			}
			if obs.Address != srv.Addr().Addr().String() || obs.Port != int(srv.Addr().Port()) {
				t.Errorf("Address, Port = %s, %d, want %s", obs.Address, obs.Port, srv.Addr())
			}
			if obs.Failure != tt.wantFail {
				t.Errorf("Failure = %q, want %q", obs.Failure, tt.wantFail)
			}
			wantOp := ""
			if tt.wantFail != "" {
				wantOp = failure.OpQUICHandshake
			}
			if obs.Operation != wantOp {
				t.Errorf("Operation = %q, want %q", obs.Operation, wantOp)
			}
			d := obs.TLS
			if d == nil {
				t.Fatal("TLS details missing")
			}
			wantALPN := cfg.ALPN
			if len(wantALPN) == 0 {
				wantALPN = []string{DefaultALPN}
			}
			if d.Network != "udp" || d.ServerName != cfg.ServerName || strings.Join(d.ALPN, ",") != strings.Join(wantALPN, ",") {
				t.Errorf("Network, ServerName, ALPN = %q, %q, %q, want udp, %q, %q", d.Network, d.ServerName, d.ALPN, cfg.ServerName, wantALPN)
			}
			if d.NegotiatedProtocol != tt.wantProto {
				t.Errorf("NegotiatedProtocol = %q, want %q", d.NegotiatedProtocol, tt.wantProto)
			}
			if d.Verified != tt.verified {
				t.Errorf("Verified = %v, want %v (VerifyFailure %q)", d.Verified, tt.verified, d.VerifyFailure)
			}
			if (d.VerifyFailure != "") != (!tt.verified && tt.wantChain) {
				t.Errorf("VerifyFailure = %q, want it set only when a recorded chain did not verify", d.VerifyFailure)
			}
			if strings.Contains(d.VerifyFailure, "127.0.0.1") {
				t.Errorf("VerifyFailure %q carries an IP address", d.VerifyFailure)
			}
			if !tt.wantChain {
				if len(d.PeerCertificates) != 0 || d.TLSVersion != "" {
					t.Errorf("PeerCertificates %d, TLSVersion %q, want nothing after a failed handshake", len(d.PeerCertificates), d.TLSVersion)
				}
				return
			}
			if len(d.PeerCertificates) != 1 || !bytes.Equal(d.PeerCertificates[0], cert.Certificate[0]) {
				t.Errorf("PeerCertificates = %d certificates, want the server's leaf", len(d.PeerCertificates))
			}
			if d.TLSVersion != "TLSv1.3" || !strings.HasPrefix(d.CipherSuite, "TLS_") {
				t.Errorf("TLSVersion, CipherSuite = %q, %q, want TLSv1.3 and an IANA suite name", d.TLSVersion, d.CipherSuite)
			}
			if obs.Duration <= 0 || obs.Started.Location() != time.UTC {
				t.Errorf("Started, Duration = %v, %v, want UTC and positive", obs.Started, obs.Duration)
			}
		})
	}
}

// TestHandshakeNothingListening: no QUIC server on the port. Linux does
// not report ICMP errors on the unconnected socket quic-go uses, so this is
// usually a timeout; a refusal is acceptable too. Either way it must end
// with the caller's short deadline, not HandshakeTimeout.
func TestHandshakeNothingListening(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()

	const short = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), short)
	defer cancel()
	start := time.Now()
	obs := Handshake(ctx, addr, Config{ServerName: "relay.test", RootCAs: x509.NewCertPool()})
	elapsed := time.Since(start)
	if obs.Failure != failure.GenericTimeout && obs.Failure != failure.ConnectionRefused {
		t.Errorf("Failure = %q, want %q or %q", obs.Failure, failure.GenericTimeout, failure.ConnectionRefused)
	}
	if obs.Operation != failure.OpQUICHandshake {
		t.Errorf("Operation = %q, want %q", obs.Operation, failure.OpQUICHandshake)
	}
	if elapsed > short+2*time.Second {
		t.Errorf("took %v with a %v context", elapsed, short)
	}
	if len(obs.TLS.PeerCertificates) != 0 || obs.TLS.Verified {
		t.Errorf("details = %+v, want no chain and not verified", obs.TLS)
	}
}

func TestHandshakeCancelled(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close() // holds the port and never answers
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	obs := Handshake(ctx, c.LocalAddr().(*net.UDPAddr).AddrPort(), Config{ServerName: "relay.test"})
	if obs.Failure != failure.Interrupted || obs.Operation != failure.OpQUICHandshake {
		t.Errorf("Failure, Operation = %q, %q, want %q, %q", obs.Failure, obs.Operation, failure.Interrupted, failure.OpQUICHandshake)
	}
}

// TestHandshakeObservationHasNoLocalAddress: the only address in the
// stored observation is the target's.
func TestHandshakeObservationHasNoLocalAddress(t *testing.T) {
	pki := newPKI(t)
	cert, err := pki.trusted.Leaf("relay.test")
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, "127.0.0.2:0", cert, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	obs := Handshake(ctx, srv.Addr(), Config{ServerName: "relay.test", RootCAs: pki.trusted.Pool()})
	if obs.Failure != "" {
		t.Fatalf("Failure = %q", obs.Failure)
	}
	b, err := json.Marshal(obs)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "127.0.0.1") {
		t.Errorf("observation carries the local address: %s", b)
	}
}

// TestHandshakeClosesGracefully: the server sees the client close the
// connection, not an idle timeout.
func TestHandshakeClosesGracefully(t *testing.T) {
	pki := newPKI(t)
	cert, err := pki.trusted.Leaf("relay.test")
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	// ConnContext sees every connection, including one the client closes
	// before the server's Accept would have returned it.
	conns := make(chan context.Context, 1)
	tr := &quic.Transport{Conn: udp, ConnContext: func(ctx context.Context, _ *quic.ClientInfo) (context.Context, error) {
		conns <- ctx
		return ctx, nil
	}}
	defer tr.Close()
	ln, err := tr.Listen(&tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{DefaultALPN},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	closed := make(chan error, 1)
	go func() {
		select {
		case connCtx := <-conns:
			<-connCtx.Done()
			closed <- context.Cause(connCtx)
		case <-ctx.Done():
		}
	}()
	addr := ln.Addr().(*net.UDPAddr).AddrPort()
	obs := Handshake(ctx, addr, Config{ServerName: "relay.test", RootCAs: pki.trusted.Pool()})
	if obs.Failure != "" {
		t.Fatalf("Failure = %q", obs.Failure)
	}
	select {
	case err := <-closed:
		if !isClientClose(err) {
			t.Errorf("server saw the connection end with %v, want the client's close", err)
		}
	case <-ctx.Done():
		t.Fatal("server never saw the connection close")
	}
}

// isClientClose reports whether err is the client's close with code 0.
// The client closes as soon as its handshake completes, possibly before
// the server has confirmed it; RFC 9000 section 10.2.3 then has the
// close travel in a Handshake packet too, as a transport close with
// APPLICATION_ERROR, which the server may read first.
func isClientClose(err error) bool {
	if appErr, ok := errors.AsType[*quic.ApplicationError](err); ok {
		return appErr.Remote && appErr.ErrorCode == 0
	}
	if trErr, ok := errors.AsType[*quic.TransportError](err); ok {
		return trErr.Remote && trErr.ErrorCode == quic.ApplicationErrorErrorCode
	}
	return false
}

// longALPN is an ALPN list just under 1,024 bytes encoded, the catalog's
// cap, ending with h3.
func longALPN() []string {
	var l []string
	for _, c := range "pqr" {
		l = append(l, strings.Repeat(string(c), 255))
	}
	return append(l, strings.Repeat("s", 240), "h3")
}
