//go:build lab

package lab

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/reachprobe/reachprobe/probes/probetest"
)

// Role names a server the lab runs inside one of its namespaces, in a
// process of its own (the test binary re-executed with "ip netns exec").
type Role string

// The lab's roles.
const (
	// RoleInternet is the fake internet: DNS, DoH, TLS, QUIC and STUN
	// for every name of the plan (InternetConfig).
	RoleInternet Role = "internet"
	// RoleResolver is a lying resolver in the censor's namespace, where
	// the censor redirects the client's DNS (ResolverConfig).
	RoleResolver Role = "resolver"
	// RoleInjector is an on-path DNS injector in the censor's namespace
	// (InjectorConfig).
	RoleInjector Role = "injector"
	// RoleInterceptor is a TLS-intercepting middlebox in the censor's
	// namespace presenting certificates of an untrusted CA
	// (InterceptorConfig).
	RoleInterceptor Role = "interceptor"
	// RolePortal is a captive portal's web server in the censor's
	// namespace, answering every connection with a redirect to its login
	// page, in plaintext, whatever the client sent (PortalConfig).
	RolePortal Role = "portal"
)

// shutdownTimeout bounds the graceful stop of a role's HTTP server; the
// lab's clients are gone by then, so it only guards against a stuck
// connection.
const shutdownTimeout = 2 * time.Second

// dohHeaderTimeout bounds the wait for a DoH request's headers; the probe
// sends them right after its handshake, so this only frees connections a
// client left idle.
const dohHeaderTimeout = 10 * time.Second

// InternetConfig configures RoleInternet.
type InternetConfig struct {
	Zone probetest.Zone
	// CertNames are the names of the test CA's leaf every TLS and QUIC
	// server presents, whatever the server name asked.
	CertNames []string
	TLSPorts  []int
	TLSALPN   []string
	QUICPorts []int
	QUICALPN  []string
	STUNPorts []int
	// VNPrefixes are the addresses whose STUN ports also answer a QUIC
	// Initial of an unknown version with Version Negotiation, as a QUIC
	// relay does (probetest.StartRelayPorts).
	VNPrefixes []string
	// Resolver is the DNS server's "ip:port".
	Resolver string
	// DoHAddr is the DoH server's IP, which its certificate names;
	// DoHListen the "ip:port" it listens on.
	DoHAddr   string
	DoHListen string
}

// ResolverConfig configures RoleResolver.
type ResolverConfig struct {
	Listen string // "ip:port"
	Zone   probetest.Zone
}

// InterceptorConfig configures RoleInterceptor.
type InterceptorConfig struct {
	Listen    string   // "ip:port"
	CertNames []string // names of the untrusted CA's leaf
	ALPN      []string
}

// Serve runs role, configured by the JSON config, until ctx ends; it calls
// ready once every server of the role is listening. A Go error means the
// role could not start.
func Serve(ctx context.Context, role Role, config []byte, ready func()) error {
	var stop func()
	var err error
	switch role {
	case RoleInternet:
		var c InternetConfig
		if err := json.Unmarshal(config, &c); err != nil {
			return fmt.Errorf("lab: %s config: %w", role, err)
		}
		stop, err = startInternet(c)
	case RoleResolver:
		var c ResolverConfig
		if err := json.Unmarshal(config, &c); err != nil {
			return fmt.Errorf("lab: %s config: %w", role, err)
		}
		var s *probetest.DNSServer
		s, err = probetest.StartDNS(c.Listen, c.Zone)
		if err == nil {
			stop = func() { s.Close() }
		}
	case RoleInjector:
		var c InjectorConfig
		if err := json.Unmarshal(config, &c); err != nil {
			return fmt.Errorf("lab: %s config: %w", role, err)
		}
		var inj *Injector
		inj, err = StartInjector(c)
		if err == nil {
			stop = func() { inj.Close() }
		}
	case RoleInterceptor:
		var c InterceptorConfig
		if err := json.Unmarshal(config, &c); err != nil {
			return fmt.Errorf("lab: %s config: %w", role, err)
		}
		stop, err = startInterceptor(c)
	case RolePortal:
		var c PortalConfig
		if err := json.Unmarshal(config, &c); err != nil {
			return fmt.Errorf("lab: %s config: %w", role, err)
		}
		stop, err = startPortal(c)
	default:
		return fmt.Errorf("lab: unknown role %q", role)
	}
	if err != nil {
		return fmt.Errorf("lab: starting %s: %w", role, err)
	}
	ready()
	<-ctx.Done()
	stop()
	return nil
}

// startInternet starts every server of the fake internet and returns the
// function that stops them.
func startInternet(c InternetConfig) (stop func(), err error) {
	var closers []func()
	stop = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	ca, err := probetest.LoadTestCA()
	if err != nil {
		return nil, err
	}
	cert, err := ca.Leaf(c.CertNames...)
	if err != nil {
		return nil, err
	}
	for _, port := range c.TLSPorts {
		s, err := probetest.StartTLS(anyAddr(port), probetest.TLSValid, cert, c.TLSALPN)
		if err != nil {
			return nil, err
		}
		closers = append(closers, s.Close)
	}
	for _, port := range c.QUICPorts {
		s, err := probetest.StartQUIC(anyAddr(port), cert, c.QUICALPN)
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { s.Close() })
	}
	if len(c.STUNPorts) > 0 {
		var vn []netip.Prefix
		for _, p := range c.VNPrefixes {
			pfx, err := netip.ParsePrefix(p)
			if err != nil {
				return nil, fmt.Errorf("lab: VN prefix: %w", err)
			}
			vn = append(vn, pfx)
		}
		s, err := probetest.StartRelayPorts("0.0.0.0", c.STUNPorts, vn)
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { s.Close() })
	}
	dnsServer, err := probetest.StartDNS(c.Resolver, c.Zone)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { dnsServer.Close() })

	dohCert, err := ca.Leaf(c.DoHAddr)
	if err != nil {
		return nil, err
	}
	closeDoH, err := serveDoH(c.DoHListen, dohCert, dnsServer.DoHHandler())
	if err != nil {
		return nil, err
	}
	closers = append(closers, closeDoH)
	return stop, nil
}

// serveDoH serves handler at /dns-query over HTTPS (HTTP/2 or 1.1) on
// addr with cert.
func serveDoH(addr string, cert tls.Certificate, handler http.Handler) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/dns-query", handler)
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}},
		ReadHeaderTimeout: dohHeaderTimeout,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			// The listener failed under us; the probe's DoH lookups
			// will say so.
			return
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

// startInterceptor starts the middlebox's TLS server.
func startInterceptor(c InterceptorConfig) (func(), error) {
	ca, err := probetest.LoadUntrustedCA()
	if err != nil {
		return nil, err
	}
	cert, err := ca.Leaf(c.CertNames...)
	if err != nil {
		return nil, err
	}
	s, err := probetest.StartTLS(c.Listen, probetest.TLSValid, cert, c.ALPN)
	if err != nil {
		return nil, err
	}
	return s.Close, nil
}

func anyAddr(port int) string { return net.JoinHostPort("0.0.0.0", strconv.Itoa(port)) }
