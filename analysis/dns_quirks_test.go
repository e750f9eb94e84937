package analysis

import (
	"net/netip"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// zeroes makes a lookup answer 0.0.0.0 or ::, as Pi-hole's blocklist does.
func (l *lookup) zeroes() {
	l.o.DNS.Rcode, l.o.Failure, l.o.Operation = "NOERROR", "", ""
	l.o.DNS.Answers = answersFor(l.t.Host, l.qtype, []string{"0.0.0.0", "::"})
}

// withResolver makes the plain engine's nameserver addr.
func withResolver(addr string, resolve func(l *lookup)) func(l *lookup) {
	return func(l *lookup) {
		if l.engine == measurements.EngineUDP {
			l.o.DNS.Resolver = addr
		}
		resolve(l)
	}
}

func TestDNSQuirks(t *testing.T) {
	identityZeroes := func(l *lookup) {
		if l.t.Group == "identity" && l.fromResolver() {
			l.zeroes()
		}
	}
	tests := []struct {
		name    string
		world   *world
		target  string
		verdict string
		method  string
		scope   string
	}{
		{
			name:   "0.0.0.0 from a loopback stub resolver is a local filter",
			world:  &world{resolve: withResolver("127.0.0.53:53", identityZeroes)},
			target: "gsa", verdict: VerdictFailed, scope: ScopeLocalFilter,
		},
		{
			name:   "0.0.0.0 from a link-local IPv6 resolver is a local filter",
			world:  &world{resolve: withResolver("[fe80::1%eth0]:53", identityZeroes)},
			target: "gsa", verdict: VerdictFailed, scope: ScopeLocalFilter,
		},
		{
			name:   "0.0.0.0 from a resolver in the carrier's shared space is not the volunteer's filter",
			world:  &world{resolve: withResolver("100.64.0.53:53", identityZeroes)},
			target: "gsa", verdict: VerdictBlocked, method: MethodDNSBogon,
		},
		{
			// A home router forwards to the ISP's resolver: a censor's
			// private answer comes through it.
			name: "a censor's private answer through a private resolver is still dns.bogon",
			world: &world{resolve: func(l *lookup) {
				if l.t.Group == "identity" && l.fromResolver() {
					l.answer("10.10.34.35")
				}
			}},
			target: "gsa", verdict: VerdictBlocked, method: MethodDNSBogon,
		},
		{
			name: "a local filter answering with its own address (Pi-hole's IP blocking mode)",
			world: &world{resolve: func(l *lookup) {
				if l.t.Group == "identity" && l.fromResolver() {
					l.answer("192.168.1.1")
				}
			}},
			target: "gsa", verdict: VerdictFailed, scope: ScopeLocalFilter,
		},
		{
			name: "a NAT64 address of a private one is a bogon",
			world: &world{resolve: func(l *lookup) {
				if l.t.Group == "identity" && l.fromResolver() {
					if l.qtype == "A" {
						l.answer()
					} else {
						l.answer("64:ff9b::a0a:2223")
					}
				}
			}},
			target: "gsa", verdict: VerdictBlocked, method: MethodDNSBogon,
		},
		{
			name: "REFUSED for Private Relay's name is not Apple's documented opt-out",
			world: &world{targets: catalogWithFallback(), resolve: func(l *lookup) {
				if l.t.Group == "quic" && l.fromResolver() {
					l.rcode("REFUSED", failDNSRefused)
				}
			}},
			target: "mask", verdict: VerdictBlocked, method: MethodDNSRefused,
		},
		{
			name: "a Private Relay name encrypted DNS does not find either does not exist: no opt-out",
			world: &world{targets: catalogWithFallback(), resolve: func(l *lookup) {
				if l.t.Name == "mask-h2" {
					l.rcode("NXDOMAIN", failDNSNXDomain)
				}
			}},
			target: "mask-h2", verdict: VerdictFailed,
		},
		{
			name: "NXDOMAIN for a name that is not Private Relay's is still a block",
			world: &world{targets: catalogWithFallback(), resolve: func(l *lookup) {
				if l.t.Group == "call" && l.fromResolver() {
					l.rcode("NXDOMAIN", failDNSNXDomain)
				}
			}},
			target: "facetime-relay", verdict: VerdictBlocked, method: MethodDNSNXDomain,
		},
		{
			name: "a first answer that is the name's, then another Apple address, is ok",
			world: &world{resolve: func(l *lookup) {
				if l.t.Name == "gsa" && l.engine == measurements.EngineUDP && l.qtype == "A" {
					l.late("17.32.195.99")
				}
			}},
			target: "gsa", verdict: VerdictOK,
		},
		{
			name: "an answer outside Apple's AS and networks is still inconsistent",
			world: &world{resolve: func(l *lookup) {
				if l.t.Group == "call" && l.fromResolver() && l.qtype == "A" {
					l.answer("93.46.8.90")
					l.o.DNS.Answers[0].ASN = 3269
				}
			}},
			target: "facetime-relay", verdict: VerdictBlocked, method: MethodDNSInconsistent,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Analyze(tt.world.build())
			d := dnsVerdictOf(t, rep, tt.target)
			if d.Verdict != tt.verdict || d.Method != tt.method || d.Scope != tt.scope {
				t.Errorf("DNS verdict = %s %q scope %q, want %s %q scope %q\nevidence: %s", d.Verdict, d.Method, d.Scope, tt.verdict, tt.method, tt.scope, d.Evidence)
			}
			if tt.verdict != VerdictBlocked {
				assertNothingBlocked(t, rep)
			}
		})
	}
}

func TestResolverHost(t *testing.T) {
	tests := []struct{ resolver, want string }{
		{"192.168.1.1:53", "192.168.1.1"},
		{"[fe80::1%eth0]:53", "fe80::1"},
		{"[2001:4860:4860::8888]:53", "2001:4860:4860::8888"},
		{"10.0.0.1", "10.0.0.1"},
		{"", ""},
		{"https://doh.example/dns-query", ""},
	}
	for _, tt := range tests {
		q := dnsQuery{obs: &measurements.Observation{DNS: &measurements.DNSDetails{Resolver: tt.resolver}}}
		got, ok := resolverHost(q)
		if want := tt.want; ok != (want != "") || ok && got != netip.MustParseAddr(want) {
			t.Errorf("resolverHost(%q) = %s, %v; want %q", tt.resolver, got, ok, want)
		}
	}
}

func TestDNS64Synthesized(t *testing.T) {
	s := &dnsSummary{t: &measurements.Target{Networks: mustPrefixes("17.0.0.0/8")},
		resolverAddrs: []netip.Addr{netip.MustParseAddr("17.57.146.20"), netip.MustParseAddr("0.0.0.0")}}
	for addr, want := range map[string]bool{
		"fd00:64::1139:9214":     true,  // a ULA prefix
		"2001:db8:64::1139:9214": true,  // the documentation prefix
		"fd00:64::1139:9215":     false, // carries no address answered
		"::":                     false, // not DNS64 of 0.0.0.0
		"17.57.146.20":           false,
	} {
		if got := s.dns64Synthesized(netip.MustParseAddr(addr)); got != want {
			t.Errorf("dns64Synthesized(%s) = %v, want %v", addr, got, want)
		}
	}
}
