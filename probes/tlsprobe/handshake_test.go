package tlsprobe

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	utls "github.com/refraction-networking/utls"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

const (
	courier = "courier.push.apple.com"
	apns    = "apns-security-v3"
)

// testCAs loads the committed trusted and untrusted CAs.
func testCAs(t *testing.T) (trusted, untrusted *probetest.CA) {
	t.Helper()
	trusted, err := probetest.LoadTestCA()
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err = probetest.LoadUntrustedCA()
	if err != nil {
		t.Fatal(err)
	}
	return trusted, untrusted
}

func startServer(t *testing.T, mode probetest.TLSMode, cert tls.Certificate, alpn []string) netip.AddrPort {
	t.Helper()
	s, err := probetest.StartTLS("127.0.0.1:0", mode, cert, alpn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s.Addr()
}

func leaf(t *testing.T, ca *probetest.CA, names ...string) tls.Certificate {
	t.Helper()
	cert, err := ca.Leaf(names...)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestHandshake(t *testing.T) {
	trusted, untrusted := testCAs(t)
	goodCert := leaf(t, trusted, courier)
	mitmCert := leaf(t, untrusted, courier)
	ipCert := leaf(t, trusted, "127.0.0.1")

	good := startServer(t, probetest.TLSValid, goodCert, []string{apns, "h2"})
	mitm := startServer(t, probetest.TLSValid, mitmCert, []string{apns})
	byIP := startServer(t, probetest.TLSValid, ipCert, nil)
	reset := startServer(t, probetest.TLSResetAfterClientHello, tls.Certificate{}, nil)
	stall := startServer(t, probetest.TLSStall, tls.Certificate{}, nil)

	tests := []struct {
		name    string
		addr    netip.AddrPort
		cfg     Config
		timeout time.Duration

		wantFailure   string
		wantOperation string
		wantALPN      []string // offered
		wantProtocol  string   // negotiated
		wantChain     []byte   // leaf DER, nil when no chain is expected
		wantVerified  bool
		wantVerifyErr string // substring of VerifyFailure
	}{
		{
			name: "valid", addr: good, timeout: HandshakeTimeout,
			cfg:      Config{ServerName: courier, ALPN: []string{apns}, RootCAs: trusted.Pool()},
			wantALPN: []string{apns}, wantProtocol: apns,
			wantChain: goodCert.Certificate[0], wantVerified: true,
		},
		{
			name: "fingerprint's own alpn", addr: good, timeout: HandshakeTimeout,
			cfg:      Config{ServerName: courier, RootCAs: trusted.Pool()},
			wantALPN: []string{"h2", "http/1.1"}, wantProtocol: "h2",
			wantChain: goodCert.Certificate[0], wantVerified: true,
		},
		{
			name: "untrusted authority", addr: mitm, timeout: HandshakeTimeout,
			cfg:         Config{ServerName: courier, ALPN: []string{apns}, RootCAs: trusted.Pool()},
			wantFailure: failure.SSLUnknownAuthority, wantOperation: failure.OpTLSHandshake,
			wantALPN: []string{apns}, wantProtocol: apns,
			wantChain: mitmCert.Certificate[0], wantVerifyErr: "unknown authority",
		},
		{
			name: "system roots", addr: good, timeout: HandshakeTimeout,
			cfg:         Config{ServerName: courier, ALPN: []string{apns}},
			wantFailure: failure.SSLUnknownAuthority, wantOperation: failure.OpTLSHandshake,
			wantALPN: []string{apns}, wantProtocol: apns,
			wantChain: goodCert.Certificate[0], wantVerifyErr: "unknown authority",
		},
		{
			name: "wrong name", addr: good, timeout: HandshakeTimeout,
			cfg:         Config{ServerName: "www.example.org", ALPN: []string{apns}, RootCAs: trusted.Pool()},
			wantFailure: failure.SSLInvalidHostname, wantOperation: failure.OpTLSHandshake,
			wantALPN: []string{apns}, wantProtocol: apns,
			wantChain: goodCert.Certificate[0], wantVerifyErr: "not www.example.org",
		},
		{
			name: "no server name verifies the address", addr: byIP, timeout: HandshakeTimeout,
			cfg:       Config{RootCAs: trusted.Pool()},
			wantALPN:  []string{"h2", "http/1.1"},
			wantChain: ipCert.Certificate[0], wantVerified: true,
		},
		{
			name: "reset after client hello", addr: reset, timeout: HandshakeTimeout,
			cfg:         Config{ServerName: courier, ALPN: []string{apns}, RootCAs: trusted.Pool()},
			wantFailure: failure.ConnectionReset, wantOperation: failure.OpTLSHandshake,
			wantALPN: []string{apns},
		},
		{
			name: "stall", addr: stall, timeout: shortTimeout,
			cfg:         Config{ServerName: courier, ALPN: []string{apns}, RootCAs: trusted.Pool()},
			wantFailure: failure.GenericTimeout, wantOperation: failure.OpTLSHandshake,
			wantALPN: []string{apns},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, tcpObs := Connect(context.Background(), tt.addr)
			if conn == nil {
				t.Fatalf("connect: %s", tcpObs.Failure)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			before := time.Now()
			obs := Handshake(ctx, conn, tt.addr, tt.cfg)

			checkCommon(t, obs, measurements.StepTLS, "127.0.0.1", int(tt.addr.Port()), before)
			if obs.Failure != tt.wantFailure || obs.Operation != tt.wantOperation {
				t.Errorf("Failure, Operation = %q, %q; want %q, %q", obs.Failure, obs.Operation, tt.wantFailure, tt.wantOperation)
			}
			d := obs.TLS
			if d == nil {
				t.Fatal("TLS details missing")
			}
			if d.Network != "tcp" || d.ServerName != tt.cfg.ServerName || d.ClientHello != "Safari-16.0" {
				t.Errorf("Network, ServerName, ClientHello = %q, %q, %q; want tcp, %q, Safari-16.0", d.Network, d.ServerName, d.ClientHello, tt.cfg.ServerName)
			}
			if !slices.Equal(d.ALPN, tt.wantALPN) {
				t.Errorf("ALPN = %q, want %q", d.ALPN, tt.wantALPN)
			}
			if d.NegotiatedProtocol != tt.wantProtocol {
				t.Errorf("NegotiatedProtocol = %q, want %q", d.NegotiatedProtocol, tt.wantProtocol)
			}
			if d.Verified != tt.wantVerified {
				t.Errorf("Verified = %v (%s), want %v", d.Verified, d.VerifyFailure, tt.wantVerified)
			}
			if tt.wantVerifyErr == "" && d.VerifyFailure != "" || !strings.Contains(d.VerifyFailure, tt.wantVerifyErr) {
				t.Errorf("VerifyFailure = %q, want it to contain %q", d.VerifyFailure, tt.wantVerifyErr)
			}
			if tt.wantChain == nil {
				if len(d.PeerCertificates) != 0 || d.TLSVersion != "" {
					t.Errorf("chain of %d, version %q recorded for a failed handshake", len(d.PeerCertificates), d.TLSVersion)
				}
				return
			}
			if len(d.PeerCertificates) != 1 || !bytes.Equal(d.PeerCertificates[0], tt.wantChain) {
				t.Errorf("PeerCertificates = %d certificates, want the server's leaf", len(d.PeerCertificates))
			}
			if d.TLSVersion != "TLSv1.3" {
				t.Errorf("TLSVersion = %q, want TLSv1.3", d.TLSVersion)
			}
			if !strings.HasPrefix(d.CipherSuite, "TLS_AES_") && !strings.HasPrefix(d.CipherSuite, "TLS_CHACHA20_") {
				t.Errorf("CipherSuite = %q, want a TLS 1.3 suite", d.CipherSuite)
			}
		})
	}
}

func TestDialHandshake(t *testing.T) {
	trusted, _ := testCAs(t)
	goodCert := leaf(t, trusted, courier)
	good := startServer(t, probetest.TLSValid, goodCert, []string{apns})
	refusing, err := probetest.StartRefusingPort()
	if err != nil {
		t.Fatal(err)
	}
	blackhole, err := probetest.StartBlackholePort(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer blackhole.Close()
	cfg := Config{ServerName: courier, ALPN: []string{apns}, RootCAs: trusted.Pool()}

	tests := []struct {
		name          string
		addr          netip.AddrPort
		cfg           Config
		wantFailure   string
		wantOperation string
	}{
		{"ok", good, cfg, "", ""},
		// The longest ALPN list a catalog accepts (1,024 bytes encoded)
		// must not fail locally, or it would be stored as the network's
		// failure.
		{"longest alpn list", good, Config{ServerName: courier, ALPN: longALPN(), RootCAs: trusted.Pool()}, "", ""},
		{"refused", refusing, cfg, failure.ConnectionRefused, failure.OpConnect},
		{"blackhole", blackhole.Addr(), cfg, failure.GenericTimeout, failure.OpConnect},
		{"bad alpn", good, Config{ServerName: courier, ALPN: []string{""}}, failure.UnknownPrefix, failure.OpTLSHandshake},
		{"unknown fingerprint", good, Config{ServerName: courier, ClientHello: utls.ClientHelloID{Client: "Nokia", Version: "1"}}, failure.UnknownPrefix, failure.OpTLSHandshake},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*shortTimeout)
			defer cancel()
			before := time.Now()
			obs := DialHandshake(ctx, tt.addr, tt.cfg)
			if tt.name == "blackhole" && obs.Operation == failure.OpTLSHandshake {
				t.Skip("this kernel completed a connect to a full accept queue; no blackhole here")
			}
			if !strings.HasPrefix(obs.Failure, tt.wantFailure) || (tt.wantFailure == "") != (obs.Failure == "") || obs.Operation != tt.wantOperation {
				t.Errorf("Failure, Operation = %q, %q; want %q, %q", obs.Failure, obs.Operation, tt.wantFailure, tt.wantOperation)
			}
			if obs.Step != measurements.StepTLS || obs.TLS == nil || obs.TLS.ServerName != courier || obs.TLS.Network != "tcp" {
				t.Errorf("Step %q, TLS %+v; want a tls step for %s", obs.Step, obs.TLS, courier)
			}
			if obs.Address != "127.0.0.1" || obs.Port != int(tt.addr.Port()) {
				t.Errorf("Address, Port = %q, %d; want 127.0.0.1, %d", obs.Address, obs.Port, tt.addr.Port())
			}
			if obs.Started.Before(before.Add(-time.Second)) || obs.Started.Location() != time.UTC {
				t.Errorf("Started = %v, want UTC, at or after %v", obs.Started, before)
			}
			if tt.wantOperation == failure.OpConnect && !slices.Equal(obs.TLS.ALPN, tt.cfg.ALPN) {
				t.Errorf("ALPN = %q, want %q recorded even though the connect failed", obs.TLS.ALPN, tt.cfg.ALPN)
			}
			if tt.wantFailure == "" && !obs.TLS.Verified {
				t.Errorf("Verified = false (%s), want true", obs.TLS.VerifyFailure)
			}
		})
	}
}

// TestDialHandshakeDuration checks the dial's observation covers the
// connect and the handshake, and its handshake part is not shorter than
// the handshake alone would be.
func TestDialHandshakeDuration(t *testing.T) {
	stall := startServer(t, probetest.TLSStall, tls.Certificate{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), shortTimeout)
	defer cancel()
	obs := DialHandshake(ctx, stall, Config{ServerName: courier})
	if obs.Failure != failure.GenericTimeout || obs.Operation != failure.OpTLSHandshake {
		t.Fatalf("Failure, Operation = %q, %q; want %q, %q", obs.Failure, obs.Operation, failure.GenericTimeout, failure.OpTLSHandshake)
	}
	if obs.Duration < shortTimeout*9/10 {
		t.Errorf("Duration = %v, want at least the %v the context allowed", obs.Duration, shortTimeout)
	}
}

func TestVerifyChain(t *testing.T) {
	trusted, _ := testCAs(t)
	good := leaf(t, trusted, courier).Leaf
	expired := selfSigned(t, courier, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	expiredRoots := x509.NewCertPool()
	expiredRoots.AddCert(expired)

	tests := []struct {
		name       string
		certs      []*x509.Certificate
		roots      *x509.CertPool
		host       string
		want       string // failure.Classify of the error
		wantAnchor string
	}{
		{"valid", []*x509.Certificate{good}, trusted.Pool(), courier, "", measurements.AnchorSystem},
		{"valid with unneeded intermediate", []*x509.Certificate{good, trusted.Certificate()}, trusted.Pool(), courier, "", measurements.AnchorSystem},
		{"wrong name", []*x509.Certificate{good}, trusted.Pool(), "example.org", failure.SSLInvalidHostname, measurements.AnchorSystem},
		{"unknown authority and wrong name", []*x509.Certificate{good}, x509.NewCertPool(), "example.org", failure.SSLUnknownAuthority, ""},
		{"expired", []*x509.Certificate{expired}, expiredRoots, courier, failure.SSLInvalidCert, ""},
		{"no certificate", nil, trusted.Pool(), courier, failure.SSLInvalidCert, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			anchor, err := VerifyChain(tt.certs, tt.roots, nil, tt.host, time.Now())
			if got := failure.Classify(err); got != tt.want {
				t.Errorf("verifyChain: %v classified %q, want %q", err, got, tt.want)
			}
			if anchor != tt.wantAnchor {
				t.Errorf("anchor = %q, want %q", anchor, tt.wantAnchor)
			}
		})
	}
}

func selfSigned(t *testing.T, name string, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero", Config{}, ""},
		{"alpn", Config{ServerName: courier, ALPN: []string{apns, "apns-pack-v1"}}, ""},
		{"ios 14", Config{ClientHello: utls.HelloIOS_14, ALPN: []string{apns}}, ""},
		{"empty protocol", Config{ALPN: []string{""}}, "must be 1 to 255 bytes"},
		{"long protocol", Config{ALPN: []string{strings.Repeat("a", 256)}}, "must be 1 to 255 bytes"},
		{"unknown fingerprint", Config{ClientHello: utls.ClientHelloID{Client: "Nokia", Version: "1"}}, "fingerprint Nokia-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate: %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestVersionName(t *testing.T) {
	tests := []struct {
		v    uint16
		want string
	}{
		{tls.VersionTLS10, "TLSv1.0"},
		{tls.VersionTLS11, "TLSv1.1"},
		{tls.VersionTLS12, "TLSv1.2"},
		{tls.VersionTLS13, "TLSv1.3"},
		{0x7f1c, "0x7F1C"},
	}
	for _, tt := range tests {
		if got := VersionName(tt.v); got != tt.want {
			t.Errorf("VersionName(%#x) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestHandshakeBadConfig(t *testing.T) {
	addr := netip.MustParseAddrPort("127.0.0.1:5223")
	tests := []struct {
		name     string
		cfg      Config
		withConn bool
	}{
		{"empty protocol", Config{ServerName: courier, ALPN: []string{""}}, true},
		{"unknown fingerprint", Config{ServerName: courier, ClientHello: utls.ClientHelloID{Client: "Nokia", Version: "1"}}, true},
		{"no connection", Config{ServerName: courier}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var conn net.Conn
			var peer net.Conn
			if tt.withConn {
				conn, peer = net.Pipe()
				defer conn.Close()
				defer peer.Close()
			}
			obs := Handshake(context.Background(), conn, addr, tt.cfg)
			if !strings.HasPrefix(obs.Failure, failure.UnknownPrefix+"tlsprobe: ") || obs.Operation != failure.OpTLSHandshake {
				t.Errorf("Failure, Operation = %q, %q; want %q..., %q", obs.Failure, obs.Operation, failure.UnknownPrefix+"tlsprobe: ", failure.OpTLSHandshake)
			}
			if peer == nil {
				return
			}
			peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if n, err := peer.Read(make([]byte, 1)); err == nil {
				t.Errorf("the peer read %d bytes, want nothing sent", n)
			}
		})
	}
}

// longALPN is an ALPN list just under 1,024 bytes encoded, the catalog's
// cap, ending with apns so that the test servers agree on it.
func longALPN() []string {
	var l []string
	for _, c := range "pqr" {
		l = append(l, strings.Repeat(string(c), 255))
	}
	return append(l, strings.Repeat("s", 236), apns)
}

// TestVerifyFailureIsCapped: a certificate listing long names makes the
// hostname error text long (Go lists up to a few names whole); what is
// stored is capped, with the whole size noted.
func TestVerifyFailureIsCapped(t *testing.T) {
	trusted, _ := testCAs(t)
	var names []string
	label := strings.Repeat("x", 60)
	for i := range 3 {
		names = append(names, fmt.Sprintf("name-%03d.%s.%s.%s.test", i, label, label, label))
	}
	srv := startServer(t, probetest.TLSValid, leaf(t, trusted, names...), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*shortTimeout)
	defer cancel()
	obs := DialHandshake(ctx, srv, Config{ServerName: courier, RootCAs: trusted.Pool()})
	if obs.Failure != failure.SSLInvalidHostname {
		t.Fatalf("Failure = %q, want %q", obs.Failure, failure.SSLInvalidHostname)
	}
	v := obs.TLS.VerifyFailure
	if len(v) > failure.MaxTextBytes+40 || !strings.Contains(v, "…[truncated, ") || !strings.HasPrefix(v, "x509: certificate is valid for name-000.") {
		t.Errorf("VerifyFailure = %d bytes, %.80q...%q; want the start of the error, capped", len(v), v, v[max(len(v)-40, 0):])
	}
}
