package dnsprobe

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/miekg/dns"
	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
)

// dohMediaType is the media type of RFC 8484 messages.
const dohMediaType = "application/dns-message"

// LookupDoH asks the DoH server at url for host's records of qtype with
// an RFC 8484 POST and returns its observation: Engine "doh", Resolver
// the URL, Transport "tcp", Control true (DoH is the encrypted control).
// The request goes to the URL's host, which may be an IP literal, and the
// server's certificate is verified against RootCAs (system roots when
// nil) unless HTTPClient is set. A status other than 200, or a body that
// is not a response to the query, is dns_server_misbehaving. The message
// ID is 0, as RFC 8484 recommends, so TransactionID is 0.
func (r *Resolver) LookupDoH(ctx context.Context, url, host string, qtype uint16) *measurements.Observation {
	obs := newObservation(host, measurements.EngineDoH, url, "tcp", qtype)
	obs.Control = true
	query := newQuery(host, qtype)
	query.Id = 0
	started := time.Now()
	resp, raw, err := r.exchangeDoH(ctx, url, query)
	obs.Duration = time.Since(started)
	if err != nil {
		fail(obs, err)
		return obs
	}
	recordFirst(obs, query, resp, raw)
	return obs
}

func (r *Resolver) exchangeDoH(ctx context.Context, url string, query *dns.Msg) (*dns.Msg, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, DoHTimeout)
	defer cancel()
	wire, err := query.Pack()
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(wire))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", dohMediaType)
	req.Header.Set("Accept", dohMediaType)
	resp, err := r.dohClient().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, &failure.Error{Failure: failure.DNSServerMisbehaving, Err: fmt.Errorf("HTTP status %d", resp.StatusCode)}
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, dns.MaxMsgSize+1))
	if err != nil {
		return nil, nil, err
	}
	if len(raw) > dns.MaxMsgSize {
		return nil, nil, &failure.Error{Failure: failure.DNSServerMisbehaving, Err: errors.New("response larger than a DNS message")}
	}
	msg, err := streamResponse(query, raw)
	if err != nil {
		return nil, nil, err
	}
	return msg, raw, nil
}

// dohConnsPerServer bounds the connections the lookups of a Resolver
// open to one DoH server: a run starts dozens of lookups at once, and a
// TLS handshake each cost a clean run most of its time. HTTP/2
// multiplexes the lookups over these; over HTTP/1.1 they take turns, a
// round trip each, well inside DoHTimeout.
const dohConnsPerServer = 4

// dohIdleTimeout closes a shared DoH connection left idle that long: one a
// lookup dialled but another connection served, which CloseIdleConnections
// at the end of a run can miss while its handshake is still going.
const dohIdleTimeout = 30 * time.Second

// maxDoHHeaderBytes caps the status line and headers of a DoH response. A
// DoH server's headers are a few hundred bytes; 16 KB leaves room for any
// CDN's cookies and keeps a hostile server's megabytes out of memory.
const maxDoHHeaderBytes = 16 << 10

// dohClient is HTTPClient, or the client the Resolver's DoH lookups
// share: one connection per DoH server, made by the first lookup and
// reused (HTTP/2) by the others, as a browser does, rather than a TLS
// handshake per lookup. It stays open until CloseIdleConnections.
func (r *Resolver) dohClient() *http.Client {
	if r.HTTPClient != nil {
		return r.HTTPClient
	}
	r.dohMu.Lock()
	defer r.dohMu.Unlock()
	if r.doh == nil {
		r.doh = &http.Client{
			Transport: r.dohTransport(),
			// A redirect is reported as the server's answer (non-200),
			// not followed somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return r.doh
}

// CloseIdleConnections closes the DoH connections the Resolver's lookups
// left open for the next ones (not those of HTTPClient).
func (r *Resolver) CloseIdleConnections() {
	r.dohMu.Lock()
	defer r.dohMu.Unlock()
	if r.doh != nil {
		r.doh.CloseIdleConnections()
	}
}

// dohTransport is the transport of a DoH lookup without HTTPClient: no
// proxy (a proxy would change the path measured), RootCAs for trust.
func (r *Resolver) dohTransport() *http.Transport {
	return &http.Transport{
		Proxy:             nil,
		DialContext:       (&net.Dialer{}).DialContext,
		TLSClientConfig:   &tls.Config{RootCAs: r.RootCAs, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
		MaxConnsPerHost:   dohConnsPerServer,
		IdleConnTimeout:   dohIdleTimeout,
		// net/http's default allows 10 MB of status line and headers,
		// which a hostile server fills.
		MaxResponseHeaderBytes: maxDoHHeaderBytes,
	}
}
