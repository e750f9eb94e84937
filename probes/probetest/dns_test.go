package probetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testDNSTimeout bounds one exchange with the test server: loopback
// answers in microseconds, so a second means the server did not answer.
const testDNSTimeout = time.Second

func testZone() Zone {
	return Zone{
		"courier.push.test":              {CNAME: "courier.push.test.edgekey.test", TTL: 60},
		"courier.push.test.edgekey.test": {CNAME: "e1.akadns.test.", TTL: 30},
		"e1.akadns.test": {Addrs: []netip.Addr{
			netip.MustParseAddr("17.57.146.20"), netip.MustParseAddr("2620:149:a44::1"),
		}, TTL: 20},
		"*.wild.test":    {Addrs: []netip.Addr{netip.MustParseAddr("17.0.0.9")}},
		"v4only.test":    {Addrs: []netip.Addr{netip.MustParseAddr("17.0.0.4")}},
		"nx.test":        {Behavior: DNSNXDomain},
		"refused.test":   {Behavior: DNSRefused},
		"servfail.test":  {Behavior: DNSServFail},
		"truncated.test": {Addrs: []netip.Addr{netip.MustParseAddr("17.0.0.5")}, Behavior: DNSTruncate},
		"silent.test":    {Addrs: []netip.Addr{netip.MustParseAddr("17.0.0.6")}, Behavior: DNSSilent},
		"forged.test": {
			Addrs:    []netip.Addr{netip.MustParseAddr("17.0.0.7")},
			Behavior: DNSForgeFirst, Forged: []netip.Addr{netip.MustParseAddr("203.0.113.7")},
		},
		"second.test": {
			Addrs:    []netip.Addr{netip.MustParseAddr("17.0.0.10")},
			Behavior: DNSSecondLate, Forged: []netip.Addr{netip.MustParseAddr("203.0.113.10")},
		},
		"wrongid.test": {
			Addrs:    []netip.Addr{netip.MustParseAddr("17.0.0.8")},
			Behavior: DNSWrongID, Forged: []netip.Addr{netip.MustParseAddr("203.0.113.8")},
		},
	}
}

func startTestDNS(t *testing.T, addr string) *DNSServer {
	t.Helper()
	s, err := StartDNS(addr, testZone())
	if err != nil {
		t.Fatalf("StartDNS(%q): %v", addr, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func exchange(t *testing.T, network, addr, name string, qtype uint16) (*dns.Msg, error) {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: testDNSTimeout}
	m := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)
	resp, _, err := c.Exchange(m, addr)
	return resp, err
}

// summary renders a response compactly: rcode, TC flag, answer records.
func summary(m *dns.Msg) string {
	parts := []string{dns.RcodeToString[m.Rcode]}
	if m.Truncated {
		parts = append(parts, "TC")
	}
	for _, rr := range m.Answer {
		parts = append(parts, strings.Join(strings.Fields(rr.String()), " "))
	}
	return strings.Join(parts, " | ")
}

func TestDNSServerAnswers(t *testing.T) {
	s := startTestDNS(t, "127.0.0.1:0")
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q, want 127.0.0.1:PORT", s.Addr())
	}
	tests := []struct {
		name    string
		network string
		qname   string
		qtype   uint16
		want    string
	}{
		{"cname chain A", "udp", "courier.push.test", dns.TypeA,
			"NOERROR | courier.push.test. 60 IN CNAME courier.push.test.edgekey.test. | courier.push.test.edgekey.test. 30 IN CNAME e1.akadns.test. | e1.akadns.test. 20 IN A 17.57.146.20"},
		{"cname chain AAAA over tcp", "tcp", "Courier.Push.Test", dns.TypeAAAA,
			"NOERROR | Courier.Push.Test. 60 IN CNAME courier.push.test.edgekey.test. | courier.push.test.edgekey.test. 30 IN CNAME e1.akadns.test. | e1.akadns.test. 20 IN AAAA 2620:149:a44::1"},
		{"wildcard", "udp", "3-courier.wild.test", dns.TypeA, "NOERROR | 3-courier.wild.test. 300 IN A 17.0.0.9"},
		{"nodata", "udp", "v4only.test", dns.TypeAAAA, "NOERROR"},
		{"unknown name", "udp", "absent.test", dns.TypeA, "NXDOMAIN"},
		{"nxdomain", "tcp", "nx.test", dns.TypeA, "NXDOMAIN"},
		{"refused", "udp", "refused.test", dns.TypeA, "REFUSED"},
		{"servfail", "udp", "servfail.test", dns.TypeA, "SERVFAIL"},
		{"truncated over udp", "udp", "truncated.test", dns.TypeA, "NOERROR | TC"},
		{"truncated over tcp", "tcp", "truncated.test", dns.TypeA, "NOERROR | truncated.test. 300 IN A 17.0.0.5"},
		{"forge over tcp is genuine", "tcp", "forged.test", dns.TypeA, "NOERROR | forged.test. 300 IN A 17.0.0.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &dns.Client{Net: tt.network, Timeout: testDNSTimeout}
			// The truncated case must see the TC bit, not have the
			// client retry for it.
			m := new(dns.Msg).SetQuestion(dns.Fqdn(tt.qname), tt.qtype)
			resp, _, err := c.Exchange(m, s.Addr())
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if got := summary(resp); got != tt.want {
				t.Errorf("response:\n got  %s\n want %s", got, tt.want)
			}
		})
	}
}

func TestDNSServerIPv6Loopback(t *testing.T) {
	s, err := StartDNS("[::1]:0", testZone())
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer s.Close()
	for _, network := range []string{"udp", "tcp"} {
		resp, err := exchange(t, network, s.Addr(), "v4only.test", dns.TypeA)
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		if got, want := summary(resp), "NOERROR | v4only.test. 300 IN A 17.0.0.4"; got != want {
			t.Errorf("%s: got %s, want %s", network, got, want)
		}
	}
}

// readAll collects the UDP datagrams arriving on conn until quiet for
// wait.
func readAll(t *testing.T, conn net.Conn, wait time.Duration) []*dns.Msg {
	t.Helper()
	var out []*dns.Msg
	buf := make([]byte, 65535)
	for {
		conn.SetReadDeadline(time.Now().Add(wait))
		n, err := conn.Read(buf)
		if err != nil {
			return out
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatalf("unpack: %v", err)
		}
		out = append(out, m)
	}
}

func TestDNSServerUDPSequences(t *testing.T) {
	s := startTestDNS(t, "127.0.0.1:0")
	tests := []struct {
		name  string
		qname string
		// want lists each datagram: "ID-ok" or "ID-wrong", then summary.
		want []string
	}{
		{"forge first", "forged.test", []string{
			"ID-ok NOERROR | forged.test. 300 IN A 203.0.113.7",
			"ID-ok NOERROR | forged.test. 300 IN A 17.0.0.7",
		}},
		{"wrong id", "wrongid.test", []string{
			"ID-wrong NOERROR | wrongid.test. 300 IN A 203.0.113.8",
			"ID-ok NOERROR | wrongid.test. 300 IN A 17.0.0.8",
			"ID-wrong NOERROR | wrongid.test. 300 IN A 203.0.113.8",
		}},
		{"second late", "second.test", []string{
			"ID-ok NOERROR | second.test. 300 IN A 17.0.0.10",
			"ID-ok NOERROR | second.test. 300 IN A 203.0.113.10",
		}},
		{"silent", "silent.test", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("udp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			q := new(dns.Msg).SetQuestion(dns.Fqdn(tt.qname), dns.TypeA)
			wire, _ := q.Pack()
			sent := time.Now()
			if _, err := conn.Write(wire); err != nil {
				t.Fatal(err)
			}
			// Quiet for four forge delays: the genuine response
			// comes one delay after the forged one.
			msgs := readAll(t, conn, 4*DefaultForgeDelay)
			var got []string
			for _, m := range msgs {
				id := "ID-ok"
				if m.Id != q.Id {
					id = "ID-wrong"
				}
				got = append(got, id+" "+summary(m))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("datagrams:\n got  %q\n want %q", got, tt.want)
			}
			if tt.name == "forge first" && len(msgs) == 2 {
				if elapsed := time.Since(sent); elapsed < DefaultForgeDelay {
					t.Errorf("genuine response after %v, want at least %v", elapsed, DefaultForgeDelay)
				}
			}
		})
	}
}

// TestDNSServerReplyFromQueriedAddress checks that a server bound to the
// wildcard answers from the address a query was sent to, as a lab with
// many local addresses needs: 127.0.0.2 is local on Linux's loopback.
func TestDNSServerReplyFromQueriedAddress(t *testing.T) {
	if probe, err := net.ListenPacket("udp4", "127.0.0.2:0"); err != nil {
		t.Skipf("127.0.0.2 is not local here: %v", err)
	} else {
		probe.Close()
	}
	s := startTestDNS(t, "0.0.0.0:0")
	_, port, _ := net.SplitHostPort(s.Addr())
	client, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for _, dst := range []string{"127.0.0.2", "127.0.0.1"} {
		t.Run(dst, func(t *testing.T) {
			to, err := net.ResolveUDPAddr("udp4", net.JoinHostPort(dst, port))
			if err != nil {
				t.Fatal(err)
			}
			q := new(dns.Msg).SetQuestion("v4only.test.", dns.TypeA)
			wire, _ := q.Pack()
			if _, err := client.WriteTo(wire, to); err != nil {
				t.Fatal(err)
			}
			client.SetReadDeadline(time.Now().Add(testDNSTimeout))
			buf := make([]byte, 1500)
			_, from, err := client.ReadFrom(buf)
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			if got := from.(*net.UDPAddr).IP.String(); got != dst {
				t.Errorf("reply from %s, want %s", got, dst)
			}
		})
	}
}

func TestDNSServerLogAndSetZone(t *testing.T) {
	s := startTestDNS(t, "127.0.0.1:0")
	if _, err := exchange(t, "udp", s.Addr(), "v4only.test", dns.TypeA); err != nil {
		t.Fatal(err)
	}
	if err := s.SetZone(Zone{"v4only.test": {Behavior: DNSRefused}}); err != nil {
		t.Fatal(err)
	}
	resp, err := exchange(t, "tcp", s.Addr(), "v4only.test", dns.TypeAAAA)
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(resp); got != "REFUSED" {
		t.Errorf("after SetZone: got %s, want REFUSED", got)
	}
	want := []DNSQuery{{"v4only.test.", "A", "udp"}, {"v4only.test.", "AAAA", "tcp"}}
	if got := s.Queries(); !slices.Equal(got, want) {
		t.Errorf("Queries() = %v, want %v", got, want)
	}
}

func TestDNSServerCloseDropsPending(t *testing.T) {
	s, err := StartDNS("127.0.0.1:0", Zone{"slow.test": {
		Addrs: []netip.Addr{netip.MustParseAddr("17.0.0.1")}, Behavior: DNSForgeFirst, ForgeDelay: time.Hour,
	}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wire, _ := new(dns.Msg).SetQuestion("slow.test.", dns.TypeA).Pack()
	conn.Write(wire)
	// The forged response proves the handler is waiting for its delay.
	if msgs := readAll(t, conn, 4*DefaultForgeDelay); len(msgs) != 1 {
		t.Fatalf("got %d responses before Close, want the forged one", len(msgs))
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the pending genuine response")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestZoneValidate(t *testing.T) {
	tests := []struct {
		name string
		zone Zone
		want string // substring of the error, "" for none
	}{
		{"ok", testZone(), ""},
		{"bad name", Zone{"a..b": {}}, "not a domain name"},
		{"same name twice", Zone{"A.test": {}, "a.test.": {}}, "are the same name"},
		{"bad cname", Zone{"a.test": {CNAME: "x..y"}}, "CNAME"},
		{"invalid address", Zone{"a.test": {Addrs: []netip.Addr{{}}}}, "invalid address"},
		{"unknown behaviour", Zone{"a.test": {Behavior: 99}}, "unknown behaviour"},
		{"negative delay", Zone{"a.test": {ForgeDelay: -1}}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.zone.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := StartDNS("127.0.0.1:0", Zone{"a..b": {}}); err == nil {
		t.Error("StartDNS accepted an invalid zone")
	}
}

func TestDoHHandler(t *testing.T) {
	srv := httptest.NewServer(NewDoHHandler(testZone()))
	defer srv.Close()
	query := func(name string, qtype uint16) []byte {
		wire, err := new(dns.Msg).SetQuestion(name, qtype).Pack()
		if err != nil {
			t.Fatal(err)
		}
		return wire
	}
	tests := []struct {
		name       string
		do         func(ctx context.Context) (*http.Response, error)
		wantStatus int
		want       string // summary of the response when 200
	}{
		{"post cname chain", func(ctx context.Context) (*http.Response, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, bytes.NewReader(query("courier.push.test.", dns.TypeA)))
			req.Header.Set("Content-Type", "application/dns-message")
			return http.DefaultClient.Do(req)
		}, 200, "NOERROR | courier.push.test. 60 IN CNAME courier.push.test.edgekey.test. | courier.push.test.edgekey.test. 30 IN CNAME e1.akadns.test. | e1.akadns.test. 20 IN A 17.57.146.20"},
		{"get forged is genuine", func(ctx context.Context) (*http.Response, error) {
			q := base64.RawURLEncoding.EncodeToString(query("forged.test.", dns.TypeA))
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"?dns="+q, nil)
			return http.DefaultClient.Do(req)
		}, 200, "NOERROR | forged.test. 300 IN A 17.0.0.7"},
		{"get truncate is whole", func(ctx context.Context) (*http.Response, error) {
			q := base64.RawURLEncoding.EncodeToString(query("truncated.test.", dns.TypeA))
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"?dns="+q, nil)
			return http.DefaultClient.Do(req)
		}, 200, "NOERROR | truncated.test. 300 IN A 17.0.0.5"},
		{"post nxdomain", func(ctx context.Context) (*http.Response, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, bytes.NewReader(query("nx.test.", dns.TypeAAAA)))
			req.Header.Set("Content-Type", "application/dns-message")
			return http.DefaultClient.Do(req)
		}, 200, "NXDOMAIN"},
		{"post wrong content type", func(ctx context.Context) (*http.Response, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, bytes.NewReader(query("nx.test.", dns.TypeA)))
			req.Header.Set("Content-Type", "text/plain")
			return http.DefaultClient.Do(req)
		}, http.StatusUnsupportedMediaType, ""},
		{"get garbage", func(ctx context.Context) (*http.Response, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"?dns=AAAA", nil)
			return http.DefaultClient.Do(req)
		}, http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testDNSTimeout)
			defer cancel()
			resp, err := tt.do(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus != 200 {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/dns-message" {
				t.Errorf("Content-Type %q", ct)
			}
			m := new(dns.Msg)
			if err := m.Unpack(body); err != nil {
				t.Fatal(err)
			}
			if got := summary(m); got != tt.want {
				t.Errorf("response:\n got  %s\n want %s", got, tt.want)
			}
		})
	}
	t.Run("silent holds until the client gives up", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, bytes.NewReader(query("silent.test.", dns.TypeA)))
		req.Header.Set("Content-Type", "application/dns-message")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("got status %d, want no answer", resp.StatusCode)
		}
	})
}
