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
	client := r.HTTPClient
	if client == nil {
		t := r.dohTransport()
		defer t.CloseIdleConnections()
		client = &http.Client{
			Transport: t,
			// A redirect is reported as the server's answer (non-200),
			// not followed somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	resp, err := client.Do(req)
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

// maxDoHHeaderBytes caps the status line and headers of a DoH response. A
// DoH server's headers are a few hundred bytes; 16 KB leaves room for any
// CDN's cookies and keeps a hostile server's megabytes out of memory.
const maxDoHHeaderBytes = 16 << 10

// dohTransport is the transport of a DoH lookup without HTTPClient: no
// proxy (a proxy would change the path measured), RootCAs for trust.
func (r *Resolver) dohTransport() *http.Transport {
	return &http.Transport{
		Proxy:             nil,
		DialContext:       (&net.Dialer{}).DialContext,
		TLSClientConfig:   &tls.Config{RootCAs: r.RootCAs, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
		// net/http's default allows 10 MB of status line and headers,
		// which a hostile server fills.
		MaxResponseHeaderBytes: maxDoHHeaderBytes,
	}
}
