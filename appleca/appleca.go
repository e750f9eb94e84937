// Package appleca holds Apple's certificate authorities, embedded: the
// three public roots (Apple Root CA, G2, G3) and the intermediates Apple's
// service chains pass through (Apple Server Authentication CA under Apple
// Root CA, on the APNs courier and older IDS chains; Apple Server
// Authentication CA 2 under G3, on init.ess.apple.com and newer IDS
// chains).
//
// Apple's services chain to these private roots, which Debian's
// ca-certificates and most systems' stores do not hold: against the system
// roots alone, an honest network shows "unknown authority" for them. The
// probes verify Apple's targets against these roots as well as the system
// roots; analysis checks whether a leaf is signed by one of these keys.
// Both read them here, which is why the package imports nothing of
// reachprobe's.
//
// The files are copies of Apple's published certificates
// (https://www.apple.com/certificateauthority/); a test pins each one's
// SHA-256 fingerprint. It does not decide what is trusted for which name:
// the probes and analysis do.
package appleca

import (
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"fmt"
)

//go:embed roots.pem
var rootsPEM []byte

//go:embed intermediates.pem
var intermediatesPEM []byte

// RootsPEM returns the PEM text of Apple's roots.
func RootsPEM() []byte { return append([]byte(nil), rootsPEM...) }

// IntermediatesPEM returns the PEM text of Apple's intermediates.
func IntermediatesPEM() []byte { return append([]byte(nil), intermediatesPEM...) }

// Roots returns Apple's root certificates, parsed anew on each call so
// that no caller can change another's.
func Roots() []*x509.Certificate { return mustParse("roots.pem", rootsPEM) }

// Intermediates returns Apple's intermediate certificates, parsed anew on
// each call.
func Intermediates() []*x509.Certificate { return mustParse("intermediates.pem", intermediatesPEM) }

// mustParse parses every CERTIFICATE block of the embedded file. The files
// are part of the binary and checked by the package's tests, so a failure
// is a build defect.
func mustParse(name string, data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			panic(fmt.Sprintf("appleca: embedded %s: %v", name, err))
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		panic("appleca: embedded " + name + " holds no certificate")
	}
	return out
}
