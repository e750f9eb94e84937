package analysis

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/reachprobe/reachprobe/measurements"
)

// Golden cases of DNS on honest networks with quirks, which must never be
// called blocked, and of the censors next to them, which must still be.

// isAppleName reports whether the lookup is for one of Apple's services.
func (l *lookup) isApple() bool { return l.t.Group != measurements.GroupControl }

// fromResolver reports whether the lookup goes to the network's resolver
// (not the encrypted control).
func (l *lookup) fromResolver() bool { return l.engine != measurements.EngineDoH }

// serveAsReal makes a step at an address no real server of the scenario
// has succeed as the target's real server would: a server of the same
// operator in another place.
func serveAsReal(s *stepCtx) {
	s.o.Failure, s.o.Operation, s.o.Duration = "", "", stepDuration
	switch s.o.Step {
	case measurements.StepTLS:
		s.o.TLS = tlsDetails(s.t, "tcp", serverNameOf(s), s.o.Control)
		if s.o.Control {
			s.o.Failure, s.o.Operation = failSSLHostname, "tls_handshake"
		}
	case measurements.StepQUIC:
		s.o.TLS = tlsDetails(s.t, "udp", s.t.ServerName, false)
	case measurements.StepUDP:
		s.o.STUN.Attempts, s.o.STUN.Responded, s.o.STUN.Class = 1, true, "success"
		s.o.STUN.MappedAddressSeen, s.o.STUN.ResponseBytes = true, 32
	}
}

// fakeIPWorld is a network whose local proxy answers the names with
// addresses of its fake-ip pool, one per name, when which says so.
func fakeIPWorld(which func(l *lookup) bool) *world {
	pool := map[string]string{}
	return &world{resolve: func(l *lookup) {
		if !l.fromResolver() || !which(l) {
			return
		}
		if _, ok := pool[l.t.Host]; !ok {
			pool[l.t.Host] = fmt.Sprintf("198.18.0.%d", len(pool)+3)
		}
		l.answer(pool[l.t.Host])
	}}
}

// dns64 returns the IPv6 address of prefix (a /96) carrying v4.
func dns64(prefix, v4 string) string {
	p := netip.MustParsePrefix(prefix).Addr().As16()
	b := netip.MustParseAddr(v4).As4()
	copy(p[12:], b[:])
	return netip.AddrFrom16(p).String()
}

func dnsQuirkScenarios() []scenario {
	return []scenario{
		{name: "honest_fake_ip_everywhere", world: func() *world {
			// Clash in fake-ip mode on the router: every name, the
			// control names too, gets an address of 198.18.0.0/15.
			return fakeIPWorld(func(*lookup) bool { return true })
		}, want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
		{name: "honest_fake_ip_apple", world: func() *world {
			// The proxy's rules send Apple's names through it; the
			// control names resolve directly.
			return fakeIPWorld((*lookup).isApple)
		}, want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
		{name: "honest_dns64_local_prefix", world: func() *world {
			// DNS64 synthesises AAAA records for names with none: with
			// a ULA prefix for identity, the documentation prefix for
			// the call relay, the well-known prefix 64:ff9b::/96 for push.
			prefix := map[string]string{"identity": "fd00:64::/96", "call": "2001:db8:64::/96", "push": "64:ff9b::/96"}
			return &world{ipv6: true, resolve: func(l *lookup) {
				p, ok := prefix[l.t.Group]
				if !ok || !l.fromResolver() || l.qtype != "AAAA" {
					return
				}
				var synth []string
				for _, a := range realAddrs[l.t.Host] {
					if netip.MustParseAddr(a).Is4() {
						synth = append(synth, dns64(p, a))
					}
				}
				l.answer(synth...)
			}}
		}, want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
		{name: "honest_split_horizon_aaaa", world: func() *world {
			// The network's resolver adds its own private AAAA record
			// for the identity names; their A records are Apple's.
			return &world{resolve: func(l *lookup) {
				if l.t.Group == "identity" && l.fromResolver() && l.qtype == "AAAA" {
					l.answer("fd12:3456:789a::10")
				}
			}}
		}, want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
		{name: "honest_pihole_local_filter", world: func() *world {
			// A Pi-hole at 192.168.1.1 (the network's resolver) blocks
			// gsa.apple.com for its owner: 0.0.0.0 and ::.
			return &world{resolve: func(l *lookup) {
				if l.t.Host == "gsa.apple.com" && l.fromResolver() {
					l.o.DNS.Rcode, l.o.Failure, l.o.Operation = "NOERROR", "", ""
					l.o.DNS.Answers = answersFor(l.t.Host, l.qtype, []string{"0.0.0.0", "::"})
				}
			}}
		}, want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
		{name: "honest_pihole_all_identity", world: func() *world {
			// The same filter blocking every identity name: the apps
			// cannot work here, by this network's own choice.
			return &world{resolve: func(l *lookup) {
				if l.t.Group == "identity" && l.fromResolver() {
					l.o.DNS.Rcode, l.o.Failure, l.o.Operation = "NOERROR", "", ""
					l.o.DNS.Answers = answersFor(l.t.Host, l.qtype, []string{"0.0.0.0", "::"})
				}
			}}
		}, want: expectation{network: "ok", services: allOK("identity", "failed"),
			apps: map[string]string{"imessage": "down", "facetime": "down"}, noBlocked: true}},
		{name: "honest_private_relay_opt_out", world: func() *world {
			// The network turns Private Relay off as Apple documents:
			// NXDOMAIN for mask.icloud.com, no data for mask-h2.
			return &world{targets: catalogWithFallback(), resolve: func(l *lookup) {
				if !l.fromResolver() {
					return
				}
				switch l.t.Host {
				case "mask.icloud.com":
					l.rcode("NXDOMAIN", failDNSNXDomain)
				case "mask-h2.icloud.com":
					l.answer()
				}
			}}
		}, want: expectation{network: "ok", services: allOK("quic", "failed"), apps: working, noBlocked: true}},
		{name: "honest_late_answer_verified", world: func() *world {
			// A router forwards each query to two resolvers and relays
			// both answers: Apple's address first, then a CDN edge
			// where Apple's certificate verifies.
			return &world{resolve: func(l *lookup) {
				if l.t.Group == "push" && l.engine == measurements.EngineUDP && l.qtype == "A" {
					l.late("23.45.67.89")
				}
			}, step: func(s *stepCtx) {
				if s.addr.String() == "23.45.67.89" {
					serveAsReal(s)
				}
			}}
		}, want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
		{name: "honest_late_answer_unverified", world: func() *world {
			// An injector that loses the race: the real answer first,
			// a forged one after it, to an address where nothing
			// answers. Applications use the first.
			return &world{resolve: func(l *lookup) {
				if l.t.Group == "push" && l.engine == measurements.EngineUDP && l.qtype == "A" {
					l.late("93.46.8.90")
				}
			}}
		}, want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
		{name: "honest_geo_dns_apple_as", world: func() *world {
			// Geo-DNS sends the call relay's name to an Apple server
			// outside 17.0.0.0/8 (AS714), which answers STUN; encrypted
			// DNS, from elsewhere, gets one in 17/8.
			return &world{resolve: func(l *lookup) {
				if l.t.Group == "call" && l.fromResolver() && l.qtype == "A" {
					l.answer("144.178.0.10")
				}
				for i := range l.o.DNS.Answers {
					if a := &l.o.DNS.Answers[i]; a.Data == "144.178.0.10" || netip.MustParsePrefix("17.0.0.0/8").Contains(netip.MustParseAddr(a.Data)) {
						a.ASN, a.ASOrgName = 714, "Apple Inc."
					}
				}
			}, step: func(s *stepCtx) {
				if s.addr.String() == "144.178.0.10" {
					serveAsReal(s)
				}
			}}
		}, want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},

		// Censors next to the quirks above: still caught.
		{name: "identity_bogon_zero_public_resolver", world: func() *world {
			// 0.0.0.0 and :: from a resolver outside this network: not
			// the volunteer's own filter.
			return &world{resolve: func(l *lookup) {
				if l.engine == measurements.EngineUDP {
					l.o.DNS.Resolver = "81.200.53.53:53"
				}
				if l.t.Group == "identity" && l.fromResolver() {
					l.o.DNS.Rcode, l.o.Failure, l.o.Operation = "NOERROR", "", ""
					l.o.DNS.Answers = answersFor(l.t.Host, l.qtype, []string{"0.0.0.0", "::"})
				}
			}}
		}, want: expectation{network: "ok", services: allOK("identity", "blocked"), methods: map[string]string{"identity": MethodDNSBogon},
			apps: map[string]string{"imessage": "blocked", "facetime": "blocked"}}},
		{name: "identity_bogon_one_fake_ip", world: func() *world {
			// One address of 198.18.0.0/15 for every identity name: a
			// censor's answer, not a proxy's pool.
			return &world{resolve: func(l *lookup) {
				if l.t.Group == "identity" && l.fromResolver() {
					l.answer("198.18.0.1")
				}
			}}
		}, want: expectation{network: "ok", services: allOK("identity", "blocked"), methods: map[string]string{"identity": MethodDNSBogon},
			apps: map[string]string{"imessage": "blocked", "facetime": "blocked"}}},
		{name: "push_bogon_ipv6_unroutable", world: func() *world {
			// The censor forges the A records only; the genuine AAAA
			// ones are of no use on a network without IPv6.
			return &world{ipv6: true, resolve: func(l *lookup) {
				if l.t.Group == "push" && l.fromResolver() && l.qtype == "A" {
					l.answer("10.10.34.35")
				}
			}}
		}, want: expectation{network: "ok", services: allOK("push", "blocked"), methods: map[string]string{"push": MethodDNSBogon},
			apps: map[string]string{"imessage": "blocked", "facetime": "blocked"}}},
		{name: "honest_windows_cut_early", world: func() *world {
			// The probe stopped listening for late responses as soon as
			// each first answer agreed with encrypted DNS, or (the
			// identity names, whose resolver gives another server of
			// Apple's) a handshake verified there.
			return &world{resolve: cutWindows(measurements.ListenCutControlAgrees, func(l *lookup) {
				if l.t.Group == "identity" && l.qtype == "A" {
					l.answer("17.32.196.40")
					l.o.DNS.ListenCut = measurements.ListenCutHandshakeVerified
				}
			}), step: func(s *stepCtx) {
				if s.addr == netip.MustParseAddr("17.32.196.40") {
					serveAsReal(s)
				}
			}}
		}, want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
		{name: "honest_window_cut_unconfirmed", world: func() *world {
			// A cut the analysis cannot bear out: a control name's first
			// answer is nothing encrypted DNS gave. Not blocked, not ok.
			return &world{resolve: cutWindows(measurements.ListenCutControlAgrees, func(l *lookup) {
				if l.t.Name == "control-tls" && l.qtype == "A" {
					l.answer("93.46.8.90")
				}
			})}
		}, want: expectation{network: oneOfNet, services: allOK(), apps: working, noBlocked: true}},
	}
}

var _ = slices.Contains[[]string]
