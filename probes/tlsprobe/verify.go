package tlsprobe

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"time"

	utls "github.com/refraction-networking/utls"
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
// system roots) and then the leaf against name. The chain is checked
// before the name, unlike crypto/tls: an interceptor's certificate for some
// other name is then reported as ssl_unknown_authority, which says who
// signed it, rather than as ssl_invalid_hostname. QUIC handshakes are
// verified the same way.
func VerifyChain(certs []*x509.Certificate, roots *x509.CertPool, name string, now time.Time) error {
	if len(certs) == 0 {
		return errors.New("x509: server sent no certificate")
	}
	intermediates := x509.NewCertPool()
	for _, c := range certs[1:] {
		intermediates.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: intermediates, CurrentTime: now}
	if _, err := certs[0].Verify(opts); err != nil {
		return err
	}
	return certs[0].VerifyHostname(name)
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
