// Package dnsprobe is reachprobe's DNS step: it resolves a name with the
// system resolver, with plain DNS to each configured nameserver and with
// DNS over HTTPS, the encrypted control, and records every lookup as a
// measurements.Observation.
//
// # Design
//
// A lookup returns its observations, failure included: a failed lookup is
// data (Failure and Operation "resolve", classified by probes/failure),
// never a Go error, and one engine's failure does not stop the others.
//
// Plain DNS sends one query over UDP with a random ID and EDNS0, records
// the first response (the one a stub resolver would use) and keeps
// listening on the same socket for ListenWindow: an on-path injector
// races the real resolver, so two responses to one query are its
// signature, and the later ones go into DNSDetails.Late: the first few
// whole, a flood after them only counted, so that what an injector sends
// cannot grow a lookup's memory or its row in the database. The query is not
// retransmitted, so a second response can only be a duplicate answer. A
// truncated first response is followed by the same query over TCP, in a
// second observation.
//
// Answer and CNAME names are kept as DNS gives them, fully qualified with
// the trailing dot ("courier.push.apple.com."). The system engine hides
// records, TTLs and CNAMEs: its answers are named after the query name as
// given, with TTL 0.
//
// This package does not judge answers (bogons, consistency with the
// control, injection): analysis does.
package dnsprobe

import (
	"crypto/x509"
	"net"
	"net/http"
	"sync"
	"time"
)

// Timeouts of a lookup.
const (
	// LookupTimeout bounds a system or plain lookup until its first
	// response. It is glibc's default per-attempt timeout: a resolver that
	// has not answered by then has failed for the applications using it.
	LookupTimeout = 5 * time.Second
	// DefaultListenWindow is how long plain DNS keeps listening after the
	// first UDP response for further responses to the same query. An
	// injector answers within milliseconds and the real resolver within a
	// round trip or a recursion, so one second catches the genuine
	// response behind a forged one without slowing a run much.
	DefaultListenWindow = time.Second
	// DoHTimeout bounds one DoH lookup: a TCP and a TLS handshake and an
	// HTTP exchange, so twice a plain lookup.
	DoHTimeout = 10 * time.Second
)

// ednsBufferSize is the EDNS0 UDP buffer size advertised, the DNS Flag Day
// 2020 value: large enough for address answers, small enough not to
// fragment.
const ednsBufferSize = 1232

// Resolver looks names up with several engines. The zero value is useful:
// it uses the system resolver and the system roots and has no plain
// nameservers.
type Resolver struct {
	// Nameservers are the "host:port" addresses LookupAll queries with
	// plain DNS (see ReadResolvConf); empty means no plain lookups.
	Nameservers []string
	// System is the resolver of the system engine; nil means
	// net.DefaultResolver.
	System *net.Resolver
	// HTTPClient makes DoH requests; nil means a client the Resolver's
	// lookups share (see CloseIdleConnections), which verifies servers
	// against RootCAs and uses no proxy. When set, RootCAs is not used.
	HTTPClient *http.Client
	// RootCAs verify DoH servers when HTTPClient is nil; nil means the
	// system roots.
	RootCAs *x509.CertPool
	// ListenWindow is how long plain DNS keeps listening after the first
	// response; 0 means DefaultListenWindow, a negative value not at all.
	ListenWindow time.Duration

	dohMu sync.Mutex
	doh   *http.Client // the shared DoH client, made on first use
}

func (r *Resolver) listenWindow() time.Duration {
	switch {
	case r.ListenWindow == 0:
		return DefaultListenWindow
	case r.ListenWindow < 0:
		return 0
	}
	return r.ListenWindow
}

func (r *Resolver) system() *net.Resolver {
	if r.System != nil {
		return r.System
	}
	return net.DefaultResolver
}
