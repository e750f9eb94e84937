package tlsprobe

import (
	"context"
	"crypto/x509"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/appleca"
	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// testApple is a test network's Apple: a root and an intermediate named
// like Apple's, whose leaves are served without the intermediate.
type testApple struct {
	root, mid *probetest.CA
	// file holds the root and the intermediate, as --apple-ca-file would.
	file string
}

func newTestApple(t *testing.T) testApple {
	t.Helper()
	root, err := probetest.NewCA("Apple Root CA (test)")
	if err != nil {
		t.Fatal(err)
	}
	mid, err := root.Intermediate("Apple Server Authentication CA (test)")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "apple.pem")
	if err := os.WriteFile(file, append(mid.CertPEM(), root.CertPEM()...), 0o644); err != nil {
		t.Fatal(err)
	}
	return testApple{root: root, mid: mid, file: file}
}

func TestLoadAppleTrust(t *testing.T) {
	a := newTestApple(t)
	dir := t.TempDir()
	onlyMid := filepath.Join(dir, "mid.pem")
	if err := os.WriteFile(onlyMid, a.mid.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    string
		wantErr string // "" for success
	}{
		{"root and intermediate", a.file, ""},
		{"no root", onlyMid, "no root certificate"},
		{"no certificate", garbage, "garbage.pem: no certificate found"},
		{"missing file", filepath.Join(dir, "absent.pem"), "absent.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trust, err := LoadAppleTrust(tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadAppleTrust: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadAppleTrust: %v", err)
			}
			if len(trust.intermediates) != 1 || !trust.intermediates[0].Equal(a.mid.Certificate()) {
				t.Errorf("intermediates = %d certificates, want the test intermediate", len(trust.intermediates))
			}
			if _, err := a.mid.Certificate().Verify(x509.VerifyOptions{Roots: trust.roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Errorf("the intermediate does not verify under the loaded roots: %v", err)
			}
		})
	}
}

func TestVerifyChainApple(t *testing.T) {
	a := newTestApple(t)
	trust, err := LoadAppleTrust(a.file)
	if err != nil {
		t.Fatal(err)
	}
	rootOnly := &AppleTrust{roots: a.root.Pool()}
	_, untrusted := testCAs(t)
	leafOf := func(ca *probetest.CA) *x509.Certificate { return leaf(t, ca, courier).Leaf }
	appleLeaf, forged := leafOf(a.mid), leafOf(untrusted)

	tests := []struct {
		name       string
		certs      []*x509.Certificate
		roots      *x509.CertPool
		apple      *AppleTrust
		host       string
		want       string // failure.Classify of the error
		wantAnchor string
	}{
		{"incomplete chain, no Apple roots", []*x509.Certificate{appleLeaf}, x509.NewCertPool(), nil, courier, failure.SSLUnknownAuthority, ""},
		{"incomplete chain, Apple's intermediate offered", []*x509.Certificate{appleLeaf}, x509.NewCertPool(), trust, courier, "", measurements.AnchorApple},
		{"incomplete chain, Apple root without the intermediate", []*x509.Certificate{appleLeaf}, x509.NewCertPool(), rootOnly, courier, failure.SSLUnknownAuthority, ""},
		{"complete chain, Apple root only", []*x509.Certificate{appleLeaf, a.mid.Certificate()}, x509.NewCertPool(), rootOnly, courier, "", measurements.AnchorApple},
		{"Apple's chain, wrong name", []*x509.Certificate{appleLeaf}, x509.NewCertPool(), trust, "example.org", failure.SSLInvalidHostname, measurements.AnchorApple},
		{"system roots first", []*x509.Certificate{appleLeaf}, a.root.Pool(), trust, courier, "", measurements.AnchorSystem},
		{"forged leaf", []*x509.Certificate{forged}, x509.NewCertPool(), trust, courier, failure.SSLUnknownAuthority, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			anchor, err := VerifyChain(tt.certs, tt.roots, tt.apple, tt.host, time.Now())
			if got := failure.Classify(err); got != tt.want {
				t.Errorf("VerifyChain: %v classified %q, want %q", err, got, tt.want)
			}
			if anchor != tt.wantAnchor {
				t.Errorf("anchor = %q, want %q", anchor, tt.wantAnchor)
			}
		})
	}
}

// TestEmbeddedApple checks the embedded roots anchor Apple's real
// intermediates, that every intermediate is offered, and that a chain
// they do not anchor stays unknown.
func TestEmbeddedApple(t *testing.T) {
	apple := EmbeddedApple()
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range appleca.Intermediates() {
		_, err := c.Verify(x509.VerifyOptions{Roots: apple.roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			t.Errorf("%s does not verify under the embedded roots: %v", c.Subject.CommonName, err)
		}
	}
	if n := len(apple.intermediates); n != len(appleca.Intermediates()) {
		t.Errorf("%d intermediates offered, want %d", n, len(appleca.Intermediates()))
	}
	_, untrusted := testCAs(t)
	if anchor, err := VerifyChain([]*x509.Certificate{leaf(t, untrusted, courier).Leaf}, x509.NewCertPool(), apple, courier, time.Now()); anchor != "" || failure.Classify(err) != failure.SSLUnknownAuthority {
		t.Errorf("a forged leaf: anchor %q, %v; want none and an unknown authority", anchor, err)
	}
}

// TestHandshakeIncompleteAppleChain is an honest Apple server on loopback
// that sends its leaf without the intermediate: with the test Apple's
// authorities loaded as --apple-ca-file would load them the chain
// verifies and the anchor is recorded; without them it is an unknown
// authority, with no anchor.
func TestHandshakeIncompleteAppleChain(t *testing.T) {
	a := newTestApple(t)
	trust, err := LoadAppleTrust(a.file)
	if err != nil {
		t.Fatal(err)
	}
	_, untrusted := testCAs(t)
	honest := startServer(t, probetest.TLSValid, leaf(t, a.mid, courier), []string{apns})
	mitm := startServer(t, probetest.TLSValid, leaf(t, untrusted, courier), []string{apns})
	tests := []struct {
		name         string
		server       netip.AddrPort
		apple        *AppleTrust
		wantFailure  string
		wantAnchor   string
		wantVerified bool
	}{
		{"Apple's authorities loaded", honest, trust, "", measurements.AnchorApple, true},
		{"system roots alone", honest, nil, failure.SSLUnknownAuthority, "", false},
		{"interceptor", mitm, trust, failure.SSLUnknownAuthority, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{ServerName: courier, ALPN: []string{apns}, RootCAs: x509.NewCertPool(), Apple: tt.apple}
			obs := DialHandshake(context.Background(), tt.server, cfg)
			if obs.Failure != tt.wantFailure {
				t.Errorf("Failure = %q (%s), want %q", obs.Failure, obs.TLS.VerifyFailure, tt.wantFailure)
			}
			if obs.TLS.Anchor != tt.wantAnchor || obs.TLS.Verified != tt.wantVerified {
				t.Errorf("Anchor, Verified = %q, %v; want %q, %v", obs.TLS.Anchor, obs.TLS.Verified, tt.wantAnchor, tt.wantVerified)
			}
			if len(obs.TLS.PeerCertificates) != 1 {
				t.Errorf("%d certificates recorded, want the leaf alone", len(obs.TLS.PeerCertificates))
			}
		})
	}
}
