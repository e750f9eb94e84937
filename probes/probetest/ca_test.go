package probetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCommittedCAs(t *testing.T) {
	tests := []struct {
		name   string
		load   func() (*CA, error)
		wantCN string
	}{
		{"trusted", LoadTestCA, "reachprobe test CA"},
		{"untrusted", LoadUntrustedCA, "reachprobe untrusted CA"},
	}
	wantNotBefore := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	wantNotAfter := time.Date(2120, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca, err := tt.load()
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			cert := ca.Certificate()
			if got := cert.Subject.CommonName; got != tt.wantCN {
				t.Errorf("CN = %q, want %q", got, tt.wantCN)
			}
			if !cert.NotBefore.Equal(wantNotBefore) || !cert.NotAfter.Equal(wantNotAfter) {
				t.Errorf("validity = %v .. %v, want %v .. %v", cert.NotBefore, cert.NotAfter, wantNotBefore, wantNotAfter)
			}
			pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
			if !ok || pub.Curve != elliptic.P256() {
				t.Errorf("public key = %T, want ECDSA P-256", cert.PublicKey)
			}
			if !cert.IsCA {
				t.Error("IsCA = false, want true")
			}
		})
	}
}

func TestLeafVerifies(t *testing.T) {
	ca, err := LoadTestCA()
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := LoadUntrustedCA()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf("courier.push.apple.com", "127.0.0.1", "::1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := leaf.Leaf.DNSNames, []string{"courier.push.apple.com"}; !slices.Equal(got, want) {
		t.Errorf("DNSNames = %q, want %q", got, want)
	}
	if got := leaf.Leaf.IPAddresses; len(got) != 2 || !got[0].Equal(net.IPv4(127, 0, 0, 1)) || !got[1].Equal(net.IPv6loopback) {
		t.Errorf("IPAddresses = %v, want [127.0.0.1 ::1]", got)
	}
	tests := []struct {
		name  string
		roots *x509.CertPool
		host  string
		// wantErr reports whether err is the expected outcome.
		wantErr func(err error) bool
	}{
		{"dns name", ca.Pool(), "courier.push.apple.com", isNil},
		{"ipv4 literal", ca.Pool(), "127.0.0.1", isNil},
		{"ipv6 literal", ca.Pool(), "::1", isNil},
		{"other name", ca.Pool(), "example.org", isErrorAs[x509.HostnameError]},
		{"untrusted roots", untrusted.Pool(), "courier.push.apple.com", isErrorAs[x509.UnknownAuthorityError]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: tt.roots, DNSName: tt.host})
			if !tt.wantErr(err) {
				t.Errorf("Verify(%q): unexpected result %v", tt.host, err)
			}
		})
	}
}

func isNil(err error) bool { return err == nil }

func isErrorAs[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

func TestNewCA(t *testing.T) {
	ca, err := NewCA("fresh CA")
	if err != nil {
		t.Fatal(err)
	}
	if got := ca.Certificate().Subject.CommonName; got != "fresh CA" {
		t.Errorf("CN = %q, want %q", got, "fresh CA")
	}
	leaf, err := ca.Leaf("a.test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "a.test"}); err != nil {
		t.Errorf("Verify: %v, want success", err)
	}
	if _, err := ca.Leaf(); err == nil {
		t.Error("Leaf() with no names succeeded, want an error")
	}
	// CertPEM round-trips through LoadCA with a key file.
	dir := t.TempDir()
	certPath := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(certPath, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	_, err = LoadCA(certPath, filepath.Join(root, TestCAKeyFile))
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("LoadCA with another CA's key: %v, want a mismatch error", err)
	}
}

func TestLoadCAErrors(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		cert, key string
		wantErr   string
	}{
		{"missing cert", filepath.Join(dir, "none.pem"), filepath.Join(root, TestCAKeyFile), "reading CA certificate"},
		{"garbage cert", garbage, filepath.Join(root, TestCAKeyFile), "no CERTIFICATE PEM block"},
		{"missing key", filepath.Join(root, TestCACertFile), filepath.Join(dir, "none.pem"), "reading CA key"},
		{"cert as key", filepath.Join(root, TestCACertFile), filepath.Join(root, TestCACertFile), "not a private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadCA(tt.cert, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LoadCA: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "module github.com/reachprobe/reachprobe") {
		t.Errorf("go.mod at %s is not reachprobe's", root)
	}
}

func TestIntermediate(t *testing.T) {
	root, err := NewCA("test root")
	if err != nil {
		t.Fatal(err)
	}
	mid, err := root.Intermediate("test intermediate")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := mid.Leaf("a.test")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(leaf.Certificate); n != 1 {
		t.Errorf("leaf chain holds %d certificates, want the leaf alone", n)
	}
	withMid := x509.NewCertPool()
	withMid.AddCert(mid.Certificate())
	tests := []struct {
		name          string
		intermediates *x509.CertPool
		wantErr       func(error) bool
	}{
		{"intermediate offered", withMid, isNil},
		{"intermediate missing", nil, isErrorAs[x509.UnknownAuthorityError]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: root.Pool(), Intermediates: tt.intermediates, DNSName: "a.test"})
			if !tt.wantErr(err) {
				t.Errorf("Verify: unexpected result %v", err)
			}
		})
	}
}
