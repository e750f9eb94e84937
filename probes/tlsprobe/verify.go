package tlsprobe

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"time"

	utls "github.com/refraction-networking/utls"

	"github.com/reachprobe/reachprobe/measurements"
)

// VerifyName is the name the chain must be valid for: the server name, or
// the address when there is none.
func VerifyName(serverName string, addr netip.AddrPort) string {
	if serverName != "" {
		return serverName
	}
	return addr.Addr().Unmap().WithZone("").String()
}

// VerifyChain verifies certs (leaf first, as sent) against roots (nil: the
// system roots) and, when apple is set (an Apple target), against Apple's
// roots with Apple's intermediates offered too; then it verifies the leaf
// against name. It returns the anchor the chain verified to
// (measurements.AnchorSystem or AnchorApple, "" when none), which holds
// even when the name then does not match.
//
// The chain is checked before the name, unlike crypto/tls: an
// interceptor's certificate for some other name is then reported as
// ssl_unknown_authority, which says who signed it, rather than as
// ssl_invalid_hostname. QUIC handshakes are verified the same way.
func VerifyChain(certs []*x509.Certificate, roots *x509.CertPool, apple *AppleTrust, name string, now time.Time) (anchor string, err error) {
	if len(certs) == 0 {
		return "", errors.New("x509: server sent no certificate")
	}
	intermediates := x509.NewCertPool()
	for _, c := range certs[1:] {
		intermediates.AddCert(c)
	}
	if apple != nil {
		for _, c := range apple.intermediates {
			intermediates.AddCert(c)
		}
	}
	_, err = certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, CurrentTime: now})
	anchor = measurements.AnchorSystem
	if err != nil && apple != nil && apple.roots != nil {
		_, appleErr := certs[0].Verify(x509.VerifyOptions{Roots: apple.roots, Intermediates: intermediates, CurrentTime: now})
		switch {
		case appleErr == nil:
			anchor, err = measurements.AnchorApple, nil
		case isUnknownAuthority(err) && !isUnknownAuthority(appleErr):
			// The chain reaches Apple's root and fails there for another
			// reason (expired, wrong usage): that says more.
			err = appleErr
		}
	}
	if err != nil {
		return "", err
	}
	return anchor, certs[0].VerifyHostname(name)
}

func isUnknownAuthority(err error) bool {
	var ua x509.UnknownAuthorityError
	return errors.As(err, &ua)
}

// VersionName returns OONI's name of a TLS version ("TLSv1.3").
func VersionName(v uint16) string {
	switch v {
	case utls.VersionTLS10:
		return "TLSv1.0"
	case utls.VersionTLS11:
		return "TLSv1.1"
	case utls.VersionTLS12:
		return "TLSv1.2"
	case utls.VersionTLS13:
		return "TLSv1.3"
	}
	return fmt.Sprintf("0x%04X", v)
}
