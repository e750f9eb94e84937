package analysis

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

func TestIsBogonFor(t *testing.T) {
	apple := &measurements.Target{Networks: prefixes("17.0.0.0/8")}
	lab := &measurements.Target{Networks: prefixes("127.0.0.0/8")}
	tests := []struct {
		name string
		t    *measurements.Target
		addr string
		want bool
	}{
		{"loopback", apple, "127.0.0.1", true},
		{"unspecified", apple, "0.0.0.0", true},
		{"private 10/8", apple, "10.10.34.36", true},
		{"CGNAT", apple, "100.64.1.1", true},
		{"IPv6 unique local", apple, "fd00::1", true},
		{"IPv4-mapped loopback", apple, "::ffff:127.0.0.1", true},
		{"Apple's own", apple, "17.57.146.20", false},
		{"public, not Apple's", apple, "93.46.8.90", false},
		{"loopback inside the target's networks (a lab)", lab, "127.0.0.2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isBogonFor(tt.t, netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("isBogonFor(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestSamePrefix(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"17.57.146.20", "17.57.146.200", true},
		{"17.57.146.20", "17.57.147.20", false},
		{"2620:149:a44::1", "2620:149:a44:ffff::1", true},
		{"2620:149:a44::1", "2620:149:a45::1", false},
		{"17.57.146.20", "::ffff:17.57.146.21", true},
		{"17.57.146.20", "2620:149:a44::1", false},
	}
	for _, tt := range tests {
		if got := samePrefix(netip.MustParseAddr(tt.a), netip.MustParseAddr(tt.b)); got != tt.want {
			t.Errorf("samePrefix(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestConsistent(t *testing.T) {
	target := &measurements.Target{Name: "gsa", Host: "gsa.apple.com", ServerName: "gsa.apple.com", Networks: prefixes("17.0.0.0/8")}
	control := &measurements.Target{Name: "cf", Host: "www.cloudflare.com", ServerName: "www.cloudflare.com"}
	j := &dnsJudge{verifiedAt: map[string]bool{"104.16.124.96|www.cloudflare.com": true}}
	tests := []struct {
		name string
		t    *measurements.Target
		doh  []string
		addr string
		want bool
	}{
		{"inside the expected networks", target, nil, "17.1.2.3", true},
		{"outside, unlike encrypted DNS", target, []string{"17.32.195.40"}, "93.46.8.90", false},
		{"same address as encrypted DNS", control, []string{"104.16.123.96"}, "104.16.123.96", true},
		{"same /24 as encrypted DNS", control, []string{"104.16.123.96"}, "104.16.123.97", true},
		{"another /24, but a handshake there verified", control, []string{"104.16.123.96"}, "104.16.124.96", true},
		{"another /24, nothing verified", control, []string{"104.16.123.96"}, "104.16.125.96", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &dnsSummary{t: tt.t}
			for _, a := range tt.doh {
				s.dohAddrs = append(s.dohAddrs, netip.MustParseAddr(a))
			}
			if got := j.consistent(s, netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("consistent(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestClassifyRcode(t *testing.T) {
	tests := []struct {
		rcode, failure string
		addrs          int
		want           string
	}{
		{"NOERROR", "", 2, dnsAnswer},
		{"NOERROR", failDNSNoAnswer, 0, dnsNoAnswer},
		{"NXDOMAIN", failDNSNXDomain, 0, dnsNXDomain},
		{"", failDNSNXDomain, 0, dnsNXDomain}, // the system resolver hides the rcode
		{"REFUSED", "", 0, dnsRefused},
		{"SERVFAIL", failDNSServfail, 0, dnsServfail},
		{"", failTimeout, 0, dnsTimeout},
		{"", "unknown_failure: boom", 0, dnsOther},
	}
	for _, tt := range tests {
		if got := classifyRcode(tt.rcode, tt.failure, tt.addrs); got != tt.want {
			t.Errorf("classifyRcode(%q, %q, %d) = %q, want %q", tt.rcode, tt.failure, tt.addrs, got, tt.want)
		}
	}
}

func dnsVerdictOf(t *testing.T, rep Report, target string) DNSVerdict {
	t.Helper()
	for _, d := range rep.DNS {
		if d.Target == target {
			return d
		}
	}
	t.Fatalf("no DNS verdict for %s", target)
	return DNSVerdict{}
}

func TestDNSRules(t *testing.T) {
	tests := []struct {
		name    string
		world   *world
		target  string
		verdict string
		method  string
		service string // service verdict to check, with want
		want    string
		network string // network status to check, when set
	}{
		{
			name: "a name encrypted DNS does not find either does not exist (not blocked, not counted)",
			world: &world{resolve: func(l *lookup) {
				if l.t.Group == "call" {
					l.rcode("NXDOMAIN", failDNSNXDomain)
				}
			}},
			target: "facetime-relay", verdict: VerdictFailed, service: "call", want: VerdictInconclusive,
		},
		{
			// Apps cannot resolve anything: the service fails, though the
			// addresses encrypted DNS found work.
			name: "a resolver refusing every name is broken, not blocking, and the service fails",
			world: &world{resolve: func(l *lookup) {
				if l.engine != measurements.EngineDoH {
					l.rcode("REFUSED", failDNSRefused)
				}
			}},
			target: "gsa", verdict: VerdictFailed, service: "identity", want: VerdictFailed,
		},
		{
			// Measured once, the silence is not taken for loss either.
			name: "a resolver silent for every name, control names included, measured once: failed, not blocked",
			world: &world{resolve: func(l *lookup) {
				if l.engine != measurements.EngineDoH {
					l.timeout()
				}
			}},
			target: "gsa", verdict: VerdictFailed, service: "identity", want: VerdictFailed, network: NetworkPartial,
		},
		{
			// The control names resolve: the resolver works, and its
			// silence for identity names alone is about them.
			name: "a resolver silent for one group's names only is not down",
			world: &world{repeats: 2, resolve: func(l *lookup) {
				if l.t.Group == "identity" && l.engine != measurements.EngineDoH {
					l.timeout()
				}
			}},
			target: "gsa", verdict: VerdictBlocked, method: MethodDNSTimeout, service: "identity", want: VerdictBlocked, network: NetworkOK,
		},
		{
			name: "the network's resolver denies but this computer's resolver answers: apps resolve",
			world: &world{resolve: func(l *lookup) {
				if l.t.Group == "identity" && l.engine == measurements.EngineUDP {
					l.rcode("NXDOMAIN", failDNSNXDomain)
				}
			}},
			target: "gsa", verdict: VerdictOK, service: "identity", want: VerdictOK,
		},
		{
			name: "private answers for every name (a captive portal) are not blocking",
			world: &world{resolve: func(l *lookup) {
				if l.engine != measurements.EngineDoH {
					l.answer("10.0.0.1")
				}
			}},
			target: "gsa", verdict: VerdictInconclusive,
		},
		{
			name: "a duplicate response is not injection",
			world: &world{resolve: func(l *lookup) {
				if l.engine == measurements.EngineUDP && l.qtype == "A" {
					l.late(realAddrs[l.t.Host]...)
				}
			}},
			target: "courier-1", verdict: VerdictOK, service: "push", want: VerdictOK,
		},
		{
			name: "two different answers that are both the name's are not injection",
			world: &world{resolve: func(l *lookup) {
				if l.engine == measurements.EngineUDP && l.qtype == "A" && l.t.Name == "courier-1" {
					l.answer("17.57.146.20")
					l.late("17.57.146.21")
				}
			}},
			target: "courier-1", verdict: VerdictOK,
		},
		{
			name: "a forged NXDOMAIN racing the real answer is injection",
			world: &world{resolve: func(l *lookup) {
				if l.engine == measurements.EngineUDP && l.qtype == "A" && l.t.Group == "identity" {
					l.rcode("NXDOMAIN", failDNSNXDomain)
					l.late(realAddrs[l.t.Host]...)
				}
			}},
			target: "gsa", verdict: VerdictBlocked, method: MethodDNSInjection,
		},
		{
			name:   "a window cut once the first answer agreed with encrypted DNS hides nothing",
			world:  &world{resolve: cutWindows(measurements.ListenCutControlAgrees, nil)},
			target: "courier-1", verdict: VerdictOK, service: "push", want: VerdictOK,
		},
		{
			// A first answer without an address lets no late one make an
			// injection: the cut hides nothing.
			name: "a window cut after an answer without an address hides nothing",
			world: &world{resolve: cutWindows(measurements.ListenCutControlAgrees, func(l *lookup) {
				if l.t.Name == "control-tls" && l.qtype == "A" {
					l.answer()
				}
			})},
			target: "control-tls", verdict: VerdictOK,
		},
		{
			name: "an unknown answer heard out to the end of the window is the resolver's",
			world: &world{resolve: func(l *lookup) {
				if l.engine == measurements.EngineUDP && l.t.Name == "control-tls" && l.qtype == "A" {
					l.answer("93.46.8.90")
				}
			}},
			target: "control-tls", verdict: VerdictOK,
		},
		{
			// The probe claims the first answer agreed, but it is nothing
			// encrypted DNS gave: what raced it was not listened for.
			name: "a window cut on an answer not shown to be the name's is no evidence against injection",
			world: &world{resolve: cutWindows(measurements.ListenCutControlAgrees, func(l *lookup) {
				if l.t.Name == "control-tls" && l.qtype == "A" {
					l.answer("93.46.8.90")
				}
			})},
			target: "control-tls", verdict: VerdictInconclusive,
		},
		{
			name: "a window cut after a denial is no evidence against injection",
			world: &world{resolve: cutWindows(measurements.ListenCutHandshakeVerified, func(l *lookup) {
				if l.t.Group == "identity" && l.qtype == "A" {
					l.rcode("NXDOMAIN", failDNSNXDomain)
				}
			})},
			target: "gsa", verdict: VerdictInconclusive,
		},
		{
			name: "SERVFAIL in a single try is not enough",
			world: &world{noConfirm: true, resolve: func(l *lookup) {
				if l.t.Group == "identity" && l.engine != measurements.EngineDoH {
					l.rcode("SERVFAIL", failDNSServfail)
				}
			}},
			target: "gsa", verdict: VerdictInconclusive, service: "identity", want: VerdictInconclusive,
		},
		{
			name: "SERVFAIL in every try of every query is blocking",
			world: &world{repeats: 2, resolve: func(l *lookup) {
				if l.t.Group == "identity" && l.engine != measurements.EngineDoH {
					l.rcode("SERVFAIL", failDNSServfail)
				}
			}},
			target: "gsa", verdict: VerdictBlocked, method: MethodDNSServfail, service: "identity", want: VerdictBlocked,
		},
		{
			name: "silence for a name in every try while the resolver answers others is blocking",
			world: &world{repeats: 3, resolve: func(l *lookup) {
				if l.t.Group == "identity" && l.engine != measurements.EngineDoH {
					l.timeout()
				}
			}},
			target: "gsa", verdict: VerdictBlocked, method: MethodDNSTimeout, service: "identity", want: VerdictBlocked,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Analyze(tt.world.build())
			d := dnsVerdictOf(t, rep, tt.target)
			if d.Verdict != tt.verdict || d.Method != tt.method {
				t.Errorf("DNS verdict = %s %q, want %s %q\nevidence: %s", d.Verdict, d.Method, tt.verdict, tt.method, d.Evidence)
			}
			if tt.service != "" {
				if got := serviceVerdict(rep, tt.service); got != tt.want {
					t.Errorf("service %s = %s, want %s", tt.service, got, tt.want)
				}
			}
			if tt.network != "" && rep.Network.Status != tt.network {
				t.Errorf("network = %s (%s), want %s", rep.Network.Status, rep.Network.Reason, tt.network)
			}
			if tt.verdict != VerdictBlocked {
				assertNothingBlocked(t, rep)
			}
		})
	}
}

func TestAnswerAddrsLeavesOffChainOut(t *testing.T) {
	answers := []measurements.DNSAnswer{
		{Name: "x.test.", Type: "A", Data: "17.0.0.1"},
		{Name: "victim.test.", Type: "A", Data: "93.46.8.90", Unused: measurements.UnusedOffChain},
		{Name: "x.test.", Type: "A", Data: "17.0.0.2", Unused: measurements.UnusedOverCap},
		{Name: "x.test.", Type: "CNAME", Data: "y.test."},
	}
	got := answerAddrs(answers)
	want := []netip.Addr{netip.MustParseAddr("17.0.0.1"), netip.MustParseAddr("17.0.0.2")}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("answerAddrs = %v, want %v: the name's answers, measured or over the cap, not another name's", got, want)
	}
}

// cutWindows is a resolve hook that gives every plain UDP lookup a window
// cut for reason after 9 ms, after then (when set) rewrites the lookup.
func cutWindows(reason string, then func(l *lookup)) func(l *lookup) {
	return func(l *lookup) {
		if l.engine != measurements.EngineUDP {
			return
		}
		if then != nil {
			then(l)
		}
		l.o.DNS.ListenCut, l.o.DNS.Listened = reason, 9*time.Millisecond
	}
}

func TestCutWindowEvidence(t *testing.T) {
	rep := Analyze((&world{resolve: cutWindows(measurements.ListenCutControlAgrees, func(l *lookup) {
		if l.t.Name == "control-tls" && l.qtype == "A" {
			l.answer("93.46.8.90")
		}
	})}).build())
	d := dnsVerdictOf(t, rep, "control-tls")
	for _, want := range []string{"stopped listening", "9ms", "agreeing with encrypted DNS", "93.46.8.90", "may have gone unheard"} {
		if !strings.Contains(d.Evidence, want) {
			t.Errorf("evidence %q lacks %q", d.Evidence, want)
		}
	}
	if d.Suspected != MethodDNSInjection {
		t.Errorf("suspected %q, want %q", d.Suspected, MethodDNSInjection)
	}
}
