package dnsprobe

import (
	"context"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// startDoH serves h over TLS on loopback and returns the DoH URL and a
// pool trusting the server's certificate.
func startDoH(t *testing.T, h http.Handler) (string, *x509.CertPool) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	// The untrusted-certificate case makes the server log a failed
	// handshake; that is the expected outcome, not noise worth showing.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return srv.URL + "/dns-query", pool
}

func TestLookupDoH(t *testing.T) {
	url, pool := startDoH(t, probetest.NewDoHHandler(testZone()))
	statusURL, statusPool := startDoH(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	garbageURL, garbagePool := startDoH(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/dns-message")
		w.Write([]byte("not a dns message"))
	}))
	redirectURL, redirectPool := startDoH(t, http.RedirectHandler("https://127.0.0.1:1/", http.StatusTemporaryRedirect))
	tests := []struct {
		name        string
		r           *Resolver
		url, host   string
		qtype       uint16
		ctxTimeout  bool
		wantFailure string
		wantAnswers []string
	}{
		{"cname chain", &Resolver{RootCAs: pool}, url, "courier.push.test", dns.TypeA, false, "", courierChainA},
		{"nxdomain", &Resolver{RootCAs: pool}, url, "nx.test", dns.TypeAAAA, false, failure.DNSNXDomain, nil},
		{"forging is for udp only", &Resolver{RootCAs: pool}, url, "forged.test", dns.TypeA, false, "",
			[]string{"forged.test. 300 A 17.0.0.7"}},
		{"caller's client", &Resolver{HTTPClient: clientTrusting(pool)}, url, "v4only.test", dns.TypeA, false, "",
			[]string{"v4only.test. 300 A 17.0.0.4"}},
		{"untrusted certificate", &Resolver{}, url, "v4only.test", dns.TypeA, false, failure.SSLUnknownAuthority, nil},
		{"http error", &Resolver{RootCAs: statusPool}, statusURL, "v4only.test", dns.TypeA, false, failure.DNSServerMisbehaving, nil},
		{"redirect not followed", &Resolver{RootCAs: redirectPool}, redirectURL, "v4only.test", dns.TypeA, false, failure.DNSServerMisbehaving, nil},
		{"garbage body", &Resolver{RootCAs: garbagePool}, garbageURL, "v4only.test", dns.TypeA, false, failure.DNSServerMisbehaving, nil},
		{"silence", &Resolver{RootCAs: pool}, url, "silent.test", dns.TypeA, true, failure.GenericTimeout, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.ctxTimeout {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, testSilenceTimeout)
				defer cancel()
			}
			o := tt.r.LookupDoH(ctx, tt.url, tt.host, tt.qtype)
			checkCommon(t, o, tt.host, measurements.EngineDoH, tt.url, "tcp", dns.TypeToString[tt.qtype])
			if !o.Control {
				t.Error("Control = false, want true for DoH")
			}
			if o.Failure != tt.wantFailure {
				t.Errorf("Failure = %q, want %q", o.Failure, tt.wantFailure)
			}
			if got := answerStrings(o.DNS.Answers); !slices.Equal(got, tt.wantAnswers) {
				t.Errorf("answers:\n got  %q\n want %q", got, tt.wantAnswers)
			}
			if o.DNS.TransactionID != 0 {
				t.Errorf("TransactionID = %d, want 0", o.DNS.TransactionID)
			}
			if (o.DNS.Rcode != "") != (len(o.DNS.RawResponse) > 0) {
				t.Errorf("rcode %q with %d raw bytes", o.DNS.Rcode, len(o.DNS.RawResponse))
			}
		})
	}
}

func clientTrusting(pool *x509.CertPool) *http.Client {
	r := &Resolver{RootCAs: pool}
	return &http.Client{Transport: r.dohTransport()}
}

// TestDoHLookupsShareAConnection checks that a Resolver's DoH lookups
// share connections to the server, not a TLS handshake each, and that
// CloseIdleConnections closes them.
func TestDoHLookupsShareAConnection(t *testing.T) {
	var mu sync.Mutex
	conns := map[http.ConnState]int{}
	srv := httptest.NewUnstartedServer(probetest.NewDoHHandler(testZone()))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		conns[st]++
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	r := &Resolver{RootCAs: pool}
	var wg sync.WaitGroup
	for _, host := range []string{"v4only.test", "courier.push.test", "nx.test", "v4only.test"} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			wg.Go(func() {
				if o := r.LookupDoH(context.Background(), srv.URL+"/dns-query", host, qt); o.DNS.Rcode == "" {
					t.Errorf("%s %d: no response (%s)", host, qt, o.Failure)
				}
			})
		}
	}
	wg.Wait()
	mu.Lock()
	opened := conns[http.StateNew]
	mu.Unlock()
	if opened < 1 || opened > dohConnsPerServer {
		t.Errorf("8 lookups opened %d connections, want them shared over at most %d", opened, dohConnsPerServer)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		// A connection whose handshake ends after the lookups did goes
		// idle only then.
		r.CloseIdleConnections()
		mu.Lock()
		closed := conns[http.StateClosed]
		mu.Unlock()
		if closed == opened || time.Now().After(deadline) {
			if closed != opened {
				t.Errorf("after CloseIdleConnections %d of %d connections are closed", closed, opened)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}
