//go:build lab

package lab

import (
	"crypto/tls"

	"github.com/reachprobe/reachprobe/probes/probetest"
)

// PortalConfig configures RolePortal.
type PortalConfig struct {
	Listen string // "ip:port"
}

// startPortal starts the captive portal's server: it reads the client's
// first TLS record and answers with probetest.PortalResponse, a redirect
// to the login page, as portals that take over TCP 443 before login do.
func startPortal(c PortalConfig) (func(), error) {
	s, err := probetest.StartTLS(c.Listen, probetest.TLSHTTPRedirect, tls.Certificate{}, nil)
	if err != nil {
		return nil, err
	}
	return s.Close, nil
}
