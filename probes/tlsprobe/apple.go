package tlsprobe

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/reachprobe/reachprobe/appleca"
)

// AppleTrust is what Apple's targets are verified against besides the
// system roots: Apple's roots, and the intermediates Apple's servers chain
// through. The intermediates are offered to chain building, so that a
// server that leaves its intermediate out still verifies: Go, unlike a
// browser, fetches no missing intermediate. The zero value trusts nothing.
type AppleTrust struct {
	roots         *x509.CertPool
	intermediates []*x509.Certificate
}

// embeddedApple is built once: the pool is only read afterwards.
var embeddedApple = sync.OnceValue(func() *AppleTrust {
	t := &AppleTrust{roots: x509.NewCertPool(), intermediates: appleca.Intermediates()}
	for _, c := range appleca.Roots() {
		t.roots.AddCert(c)
	}
	return t
})

// EmbeddedApple returns Apple's published roots and intermediates (package
// appleca). Callers share it; it is never modified.
func EmbeddedApple() *AppleTrust { return embeddedApple() }

// LoadAppleTrust reads the Apple authorities to use instead of the
// embedded ones, for test networks (--apple-ca-file): every certificate of
// the PEM file that issued itself is a root, every other one an
// intermediate. An error names the file and says what is wrong with it.
func LoadAppleTrust(file string) (*AppleTrust, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading Apple's roots: %w", err)
	}
	certs, err := parseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("Apple roots file %s: %w", file, err)
	}
	t := &AppleTrust{roots: x509.NewCertPool()}
	roots := 0
	for _, c := range certs {
		if bytes.Equal(c.RawSubject, c.RawIssuer) {
			t.roots.AddCert(c)
			roots++
			continue
		}
		t.intermediates = append(t.intermediates, c)
	}
	if roots == 0 {
		return nil, fmt.Errorf("Apple roots file %s: %w", file, errNoRoot)
	}
	return t, nil
}

// errNoRoot: a file of Apple's authorities must hold at least one root.
var errNoRoot = errors.New("no root certificate (one that issued itself)")
