package dnsprobe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// testListenWindow keeps tests fast while leaving room for the forged
// response's genuine twin, DefaultForgeDelay behind it.
const testListenWindow = 300 * time.Millisecond

// testSilenceTimeout is the context deadline of lookups that must time
// out: short, since the server is known to be silent.
const testSilenceTimeout = 200 * time.Millisecond

func testZone() probetest.Zone {
	addr := netip.MustParseAddr
	return probetest.Zone{
		"courier.push.test":              {CNAME: "courier.push.test.edgekey.test", TTL: 60},
		"courier.push.test.edgekey.test": {CNAME: "e1.akadns.test", TTL: 30},
		"e1.akadns.test":                 {Addrs: []netip.Addr{addr("17.57.146.20"), addr("17.57.146.21"), addr("2620:149:a44::1")}, TTL: 20},
		"v4only.test":                    {Addrs: []netip.Addr{addr("17.0.0.4")}},
		"nx.test":                        {Behavior: probetest.DNSNXDomain},
		"refused.test":                   {Behavior: probetest.DNSRefused},
		"servfail.test":                  {Behavior: probetest.DNSServFail},
		"truncated.test":                 {Addrs: []netip.Addr{addr("17.0.0.5")}, Behavior: probetest.DNSTruncate},
		"silent.test":                    {Addrs: []netip.Addr{addr("17.0.0.6")}, Behavior: probetest.DNSSilent},
		"forged.test": {Addrs: []netip.Addr{addr("17.0.0.7")},
			Behavior: probetest.DNSForgeFirst, Forged: []netip.Addr{addr("203.0.113.7")}},
		"wrongid.test": {Addrs: []netip.Addr{addr("17.0.0.8")},
			Behavior: probetest.DNSWrongID, Forged: []netip.Addr{addr("203.0.113.8")}},
	}
}

func startServer(t *testing.T) *probetest.DNSServer {
	t.Helper()
	s, err := probetest.StartDNS("127.0.0.1:0", testZone())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// answerStrings renders answers as "NAME TTL TYPE DATA".
func answerStrings(as []measurements.DNSAnswer) []string {
	var out []string
	for _, a := range as {
		out = append(out, fmt.Sprintf("%s %d %s %s", a.Name, a.TTL, a.Type, a.Data))
	}
	return out
}

var courierChainA = []string{
	"courier.push.test. 60 CNAME courier.push.test.edgekey.test.",
	"courier.push.test.edgekey.test. 30 CNAME e1.akadns.test.",
	"e1.akadns.test. 20 A 17.57.146.20",
	"e1.akadns.test. 20 A 17.57.146.21",
}

// checkCommon checks what every DNS observation carries.
func checkCommon(t *testing.T, o *measurements.Observation, host, engine, resolver, transport, qtype string) {
	t.Helper()
	if o.Step != measurements.StepDNS || o.Host != host || o.Transport != transport || o.DNS == nil {
		t.Fatalf("observation step %q host %q transport %q details %v, want dns %q %q", o.Step, o.Host, o.Transport, o.DNS, host, transport)
	}
	if o.DNS.Engine != engine || o.DNS.Resolver != resolver || o.DNS.QueryType != qtype {
		t.Errorf("engine %q resolver %q type %q, want %q %q %q", o.DNS.Engine, o.DNS.Resolver, o.DNS.QueryType, engine, resolver, qtype)
	}
	if o.Started.IsZero() || o.Started.Location() != time.UTC {
		t.Errorf("Started = %v, want a UTC time", o.Started)
	}
	if o.Duration <= 0 {
		t.Errorf("Duration = %v, want > 0", o.Duration)
	}
	if (o.Failure == "") != (o.Operation == "") {
		t.Errorf("Failure %q with Operation %q", o.Failure, o.Operation)
	}
	if o.Failure != "" && o.Operation != failure.OpResolve {
		t.Errorf("Operation = %q, want %q", o.Operation, failure.OpResolve)
	}
}

func TestLookupPlain(t *testing.T) {
	s := startServer(t)
	r := &Resolver{ListenWindow: testListenWindow}
	tests := []struct {
		name        string
		host        string
		qtype       uint16
		wantFailure string
		wantRcode   string
		wantAnswers []string
		wantCNAMEs  []string
	}{
		{"cname chain A", "courier.push.test", dns.TypeA, "", "NOERROR", courierChainA,
			[]string{"courier.push.test.edgekey.test.", "e1.akadns.test."}},
		{"cname chain AAAA", "courier.push.test", dns.TypeAAAA, "", "NOERROR", []string{
			"courier.push.test. 60 CNAME courier.push.test.edgekey.test.",
			"courier.push.test.edgekey.test. 30 CNAME e1.akadns.test.",
			"e1.akadns.test. 20 AAAA 2620:149:a44::1",
		}, []string{"courier.push.test.edgekey.test.", "e1.akadns.test."}},
		{"default ttl", "v4only.test.", dns.TypeA, "", "NOERROR", []string{"v4only.test. 300 A 17.0.0.4"}, nil},
		{"nxdomain", "nx.test", dns.TypeA, failure.DNSNXDomain, "NXDOMAIN", nil, nil},
		{"unknown name", "absent.test", dns.TypeAAAA, failure.DNSNXDomain, "NXDOMAIN", nil, nil},
		{"refused", "refused.test", dns.TypeA, failure.DNSRefused, "REFUSED", nil, nil},
		{"servfail", "servfail.test", dns.TypeA, failure.DNSServfail, "SERVFAIL", nil, nil},
		{"no address of the type", "v4only.test", dns.TypeAAAA, failure.DNSNoAnswer, "NOERROR", nil, nil},
		{"wrong id ignored", "wrongid.test", dns.TypeA, "", "NOERROR", []string{"wrongid.test. 300 A 17.0.0.8"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each lookup listens for testListenWindow
			obs := r.LookupPlain(context.Background(), s.Addr(), tt.host, tt.qtype)
			if len(obs) != 1 {
				t.Fatalf("got %d observations, want 1", len(obs))
			}
			o := obs[0]
			checkCommon(t, o, tt.host, measurements.EngineUDP, s.Addr(), "udp", dns.TypeToString[tt.qtype])
			if o.Failure != tt.wantFailure {
				t.Errorf("Failure = %q, want %q", o.Failure, tt.wantFailure)
			}
			d := o.DNS
			if d.Rcode != tt.wantRcode {
				t.Errorf("Rcode = %q, want %q", d.Rcode, tt.wantRcode)
			}
			if got := answerStrings(d.Answers); !slices.Equal(got, tt.wantAnswers) {
				t.Errorf("answers:\n got  %q\n want %q", got, tt.wantAnswers)
			}
			if !slices.Equal(d.CNAMEs, tt.wantCNAMEs) {
				t.Errorf("CNAMEs = %q, want %q", d.CNAMEs, tt.wantCNAMEs)
			}
			if len(d.Late) != 0 {
				t.Errorf("Late = %+v, want none", d.Late)
			}
			raw := new(dns.Msg)
			if err := raw.Unpack(d.RawResponse); err != nil {
				t.Fatalf("RawResponse does not unpack: %v", err)
			}
			if raw.Id != d.TransactionID || raw.Rcode != dns.StringToRcode[tt.wantRcode] {
				t.Errorf("RawResponse id %d rcode %d, want id %d rcode %s", raw.Id, raw.Rcode, d.TransactionID, tt.wantRcode)
			}
		})
	}
}

func TestLookupPlainInjection(t *testing.T) {
	s := startServer(t)
	r := &Resolver{ListenWindow: testListenWindow}
	obs := r.LookupPlain(context.Background(), s.Addr(), "forged.test", dns.TypeA)
	if len(obs) != 1 {
		t.Fatalf("got %d observations, want 1", len(obs))
	}
	o := obs[0]
	checkCommon(t, o, "forged.test", measurements.EngineUDP, s.Addr(), "udp", "A")
	if got, want := answerStrings(o.DNS.Answers), []string{"forged.test. 300 A 203.0.113.7"}; o.Failure != "" || !slices.Equal(got, want) {
		t.Errorf("first response: failure %q answers %q, want success %q", o.Failure, got, want)
	}
	if len(o.DNS.Late) != 1 {
		t.Fatalf("Late has %d responses, want 1: %+v", len(o.DNS.Late), o.DNS.Late)
	}
	late := o.DNS.Late[0]
	if got, want := answerStrings(late.Answers), []string{"forged.test. 300 A 17.0.0.7"}; late.Rcode != "NOERROR" || !slices.Equal(got, want) {
		t.Errorf("late response: rcode %q answers %q, want NOERROR %q", late.Rcode, got, want)
	}
	if late.Delay < probetest.DefaultForgeDelay || late.Delay > testListenWindow+o.Duration {
		t.Errorf("late Delay = %v, want between %v and the window", late.Delay, probetest.DefaultForgeDelay)
	}
	if m := new(dns.Msg); m.Unpack(late.Raw) != nil || m.Id != o.DNS.TransactionID {
		t.Errorf("late Raw does not hold a response with ID %d", o.DNS.TransactionID)
	}
	// The lookup's duration is the first response's, not the window's.
	if o.Duration >= late.Delay {
		t.Errorf("Duration = %v, want the forged response's latency (< the late one's %v)", o.Duration, late.Delay)
	}
	if got := Addresses(obs); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("203.0.113.7")}) {
		t.Errorf("Addresses = %v, want the first response's only", got)
	}
}

func TestLookupPlainTruncated(t *testing.T) {
	s := startServer(t)
	r := &Resolver{ListenWindow: -1}
	obs := r.LookupPlain(context.Background(), s.Addr(), "truncated.test", dns.TypeA)
	if len(obs) != 2 {
		t.Fatalf("got %d observations, want udp then tcp", len(obs))
	}
	u, tc := obs[0], obs[1]
	checkCommon(t, u, "truncated.test", measurements.EngineUDP, s.Addr(), "udp", "A")
	checkCommon(t, tc, "truncated.test", measurements.EngineTCP, s.Addr(), "tcp", "A")
	if !u.DNS.Truncated || u.Failure != "" || len(u.DNS.Answers) != 0 {
		t.Errorf("udp: truncated %v failure %q answers %v, want a truncated empty non-failure", u.DNS.Truncated, u.Failure, u.DNS.Answers)
	}
	if got, want := answerStrings(tc.DNS.Answers), []string{"truncated.test. 300 A 17.0.0.5"}; tc.Failure != "" || tc.DNS.Truncated || !slices.Equal(got, want) {
		t.Errorf("tcp: failure %q truncated %v answers %q, want %q", tc.Failure, tc.DNS.Truncated, got, want)
	}
	if len(tc.DNS.RawResponse) == 0 {
		t.Error("tcp: no RawResponse")
	}
	queries := s.Queries()
	if len(queries) != 2 || queries[0].Transport != "udp" || queries[1].Transport != "tcp" {
		t.Errorf("server saw %v, want one udp then one tcp query", queries)
	}
}

func TestLookupPlainNoResponse(t *testing.T) {
	s := startServer(t)
	// A UDP port with nothing behind it: the kernel answers with ICMP
	// port unreachable, which a connected socket reports.
	closed, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.LocalAddr().String()
	closed.Close()

	r := &Resolver{} // default listening window: must not delay a timeout
	tests := []struct {
		name        string
		server      string
		host        string
		ctx         func() (context.Context, context.CancelFunc)
		wantFailure string
		maxDuration time.Duration
	}{
		{"silence times out at the context deadline", s.Addr(), "silent.test", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), testSilenceTimeout)
		}, failure.GenericTimeout, testSilenceTimeout + 500*time.Millisecond},
		{"cancelled", s.Addr(), "silent.test", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		}, failure.Interrupted, 550 * time.Millisecond},
		{"port unreachable", closedAddr, "v4only.test", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), testSilenceTimeout)
		}, failure.ConnectionRefused, testSilenceTimeout + 500*time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			obs := r.LookupPlain(ctx, tt.server, tt.host, dns.TypeA)
			elapsed := time.Since(start)
			if len(obs) != 1 {
				t.Fatalf("got %d observations, want 1", len(obs))
			}
			o := obs[0]
			checkCommon(t, o, tt.host, measurements.EngineUDP, tt.server, "udp", "A")
			if o.Failure != tt.wantFailure {
				t.Errorf("Failure = %q, want %q", o.Failure, tt.wantFailure)
			}
			if o.DNS.Rcode != "" || o.DNS.RawResponse != nil {
				t.Errorf("rcode %q raw %d bytes, want none", o.DNS.Rcode, len(o.DNS.RawResponse))
			}
			if elapsed > tt.maxDuration {
				t.Errorf("returned after %v, want within %v", elapsed, tt.maxDuration)
			}
		})
	}
}

func TestLookupPlainIPv6Loopback(t *testing.T) {
	s, err := probetest.StartDNS("[::1]:0", testZone())
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer s.Close()
	r := &Resolver{ListenWindow: -1}
	obs := r.LookupPlain(context.Background(), s.Addr(), "courier.push.test", dns.TypeAAAA)
	if len(obs) != 1 {
		t.Fatalf("got %d observations, want 1", len(obs))
	}
	checkCommon(t, obs[0], "courier.push.test", measurements.EngineUDP, s.Addr(), "udp", "AAAA")
	if got := Addresses(obs); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("2620:149:a44::1")}) {
		t.Errorf("failure %q, Addresses = %v, want [2620:149:a44::1]", obs[0].Failure, got)
	}
}
