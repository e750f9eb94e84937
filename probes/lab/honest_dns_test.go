//go:build lab

package lab

import (
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// Honest networks whose DNS has quirks a naive reading takes for a
// censor's: nothing may be called blocked in any of them. And the censor
// beside them that must still be caught.

// secondUpstreamAddr is another server of the fake internet, whose
// certificate verifies for every name, as a CDN edge's would: what a
// resolver other than the encrypted control answers for the push names.
const secondUpstreamAddr = "104.16.124.200"

// thirdUpstreamAddr is yet another such server.
const thirdUpstreamAddr = "104.16.124.201"

// lostRaceDelay is how far behind the first answer a censor's forged one
// comes in the scenarios where it loses the race: long after the
// evidence ends the listening window, well inside the full window
// (dnsprobe.DefaultListenWindow), where a probe that listened on would
// record it.
const lostRaceDelay = 600 * time.Millisecond

// slowReleaseDelay is how long the injector of
// dns-injection-slow-release-push holds the genuine query after its forged
// answer: a genuine answer far behind, still inside the full window.
const slowReleaseDelay = 400 * time.Millisecond

// useLANResolver points the client's resolver at the censor's LAN
// address, a resolver inside the volunteer's own network, as a Pi-hole
// or a router's DNS is.
func (l *lab) useLANResolver() {
	l.t.Helper()
	conf := filepath.Join(netnsConfDir, l.client, "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver "+censorLANAddr+"\n"), 0o644); err != nil {
		l.t.Fatal(err)
	}
}

// blockedByFilter makes a zone entry answer 0.0.0.0 and ::, as Pi-hole's
// blocklist does.
func blockedByFilter(_ string, e *probetest.ZoneEntry) {
	e.Addrs = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
}

func init() {
	scenarios = append(scenarios,
		scenario{
			name: "honest-two-upstreams",
			censor: func(l *lab) {
				// The router forwards each query to two resolvers and
				// relays both answers, a millisecond apart: each gives a
				// CDN server of the name's, not the encrypted control's
				// address. The listening window ends only when a
				// handshake verifies at the first answer, so the second
				// is heard.
				l.lyingResolver(l.lyingZone(l.plan.Hosts(push), func(_ string, e *probetest.ZoneEntry) {
					e.Addrs = []netip.Addr{netip.MustParseAddr(secondUpstreamAddr)}
					e.Behavior = probetest.DNSSecondLate
					e.Forged = []netip.Addr{netip.MustParseAddr(thirdUpstreamAddr)}
					e.ForgeDelay = time.Millisecond
				}))
			},
			signs: []sign{
				{target: "courier-1", kind: "dns/udp", result: "ok", answer: secondUpstreamAddr, late: true, window: measurements.ListenCutHandshakeVerified},
				{target: "courier-1", kind: "tls", port: 5223, result: "ok"},
			},
			want: want{
				network:  networkOK,
				services: allServices(svcOK, nil),
				apps:     appsWorking,
				dns: map[string]dnsWant{
					// A handshake for the name verified at the late
					// address: it is the name's too.
					"courier-1": {verdict: verdictOK, late: thirdUpstreamAddr, words: "verified there"},
					"api-push":  {verdict: verdictOK, late: thirdUpstreamAddr, words: "verified there"},
				},
			},
		},
		scenario{
			name: "dns-injection-lost-race-push",
			censor: func(l *lab) {
				// An on-path injector too slow to win: the resolver's
				// answer, which encrypted DNS's agrees with, comes first,
				// the forged one long after. Applications use the first:
				// nothing is blocked, and the probe stops listening once
				// the control agrees.
				l.injectDNSWith(InjectorConfig{Suffix: "push.apple.com", ForgeAfter: lostRaceDelay})
			},
			signs: []sign{
				{target: "courier-1", kind: "dns/udp", result: "ok", answer: "17.57.144.21", window: measurements.ListenCutControlAgrees},
				{target: "courier-1", kind: "tls", port: 5223, result: "ok"},
			},
			want: want{
				network:  networkOK,
				services: allServices(svcOK, nil),
				apps:     appsWorking,
				dns:      map[string]dnsWant{"courier-1": {verdict: verdictOK}},
			},
		},
		scenario{
			name: "dns-injection-lost-race-geo-push",
			censor: func(l *lab) {
				// The resolver gives another server of the name's than
				// encrypted DNS does (geo-DNS), and a forged answer
				// follows long after: the window ends when a handshake
				// for the name verifies at the first answer, before the
				// forgery, which applications never use.
				l.lyingResolver(l.lyingZone(l.plan.Hosts(push), func(_ string, e *probetest.ZoneEntry) {
					e.Addrs = []netip.Addr{netip.MustParseAddr(secondUpstreamAddr)}
					e.Behavior = probetest.DNSSecondLate
					e.Forged = []netip.Addr{netip.MustParseAddr(InjectedAddr)}
					e.ForgeDelay = lostRaceDelay
				}))
			},
			signs: []sign{
				{target: "courier-1", kind: "dns/udp", result: "ok", answer: secondUpstreamAddr, window: measurements.ListenCutHandshakeVerified},
				{target: "courier-1", kind: "tls", port: 5223, result: "ok"},
			},
			want: want{
				network:  networkOK,
				services: allServices(svcOK, nil),
				apps:     appsWorking,
				dns:      map[string]dnsWant{"courier-1": {verdict: verdictOK}},
			},
		},
		scenario{
			name: "dns-injection-slow-release-push",
			censor: func(l *lab) {
				// The injector wins the race and holds the genuine query
				// long: the forged first answer disagrees with encrypted
				// DNS and verifies nowhere, so the window runs full and
				// the genuine answer behind it is heard.
				l.injectDNSWith(InjectorConfig{Suffix: "push.apple.com", ReleaseDelay: slowReleaseDelay})
			},
			signs: []sign{
				{target: "courier-1", kind: "dns/udp", result: "ok", answer: InjectedAddr, late: true, window: windowFull},
				{target: "courier-1", kind: "dns/doh", result: "ok", answer: "17.57.144.21"},
			},
			want: want{
				network:  networkOK,
				services: allServices(svcOK, map[string]serviceWant{push: blockedBy("dns.injection")}),
				apps:     appsBlocked,
			},
		},
		scenario{
			name: "honest-pihole",
			censor: func(l *lab) {
				// The volunteer's own Pi-hole, the network's resolver at
				// a private address, blocks two Apple names.
				l.useLANResolver()
				l.lyingResolver(l.lyingZone([]string{"gsa.apple.com", "query.ess.apple.com"}, blockedByFilter))
			},
			signs: []sign{
				{target: "gsa", kind: "dns/udp", result: "ok", answer: "0.0.0.0"},
				{target: "gsa", kind: "dns/doh", result: "ok", answer: "17.32.194.12"},
				{target: "init-ess", kind: "dns/udp", result: "ok", answer: "17.32.194.10"},
			},
			want: want{
				network:  networkOK,
				services: allServices(svcOK, map[string]serviceWant{identity: {verdict: oneOf(verdictOK, verdictFailed)}}),
				apps:     map[string]string{"imessage": oneOf(appWorking, appDown), "facetime": oneOf(appWorking, appDown)},
				reasons:  map[string]string{identity: "a DNS filter inside this network"},
				dns: map[string]dnsWant{
					"gsa":       {verdict: verdictFailed, scope: "local_filter", words: "the resolver at " + censorLANAddr},
					"query-ess": {verdict: verdictFailed, scope: "local_filter"},
					"init-ess":  {verdict: verdictOK},
				},
			},
		},
		scenario{
			name: "honest-private-relay-off",
			censor: func(l *lab) {
				// The network turns iCloud Private Relay off as Apple
				// documents: NXDOMAIN for mask.icloud.com, no address for
				// mask-h2.icloud.com.
				l.lyingResolver(l.lyingZone([]string{"mask.icloud.com", "mask-h2.icloud.com"}, func(host string, e *probetest.ZoneEntry) {
					if host == "mask.icloud.com" {
						e.Behavior = probetest.DNSNXDomain
					} else {
						e.Addrs = nil
					}
				}))
			},
			signs: []sign{
				{target: "mask", kind: "dns/udp", result: "dns_nxdomain_error"},
				{target: "mask-h2", kind: "dns/udp", result: "dns_no_answer"},
				{target: "mask", kind: "dns/doh", result: "ok", answer: "17.248.190.10"},
			},
			want: want{
				network:  networkOK,
				services: allServices(svcOK, map[string]serviceWant{quicSvc: {verdict: verdictFailed}}),
				apps:     appsWorking,
				reasons:  map[string]string{quicSvc: "Private Relay turned off by this network (the opt-out Apple documents)"},
				dns: map[string]dnsWant{
					"mask":    {verdict: verdictFailed, scope: "network_policy"},
					"mask-h2": {verdict: verdictFailed, scope: "network_policy"},
				},
			},
		},
		scenario{
			name: "honest-fake-ip-proxy",
			censor: func(l *lab) {
				// Clash in fake-ip mode on the router answers every
				// name, the control names too, with its own address of
				// 198.18.0.0/15.
				names := slices.Sorted(maps.Keys(hostAddresses))
				i := 0
				l.lyingResolver(l.lyingZone(names, func(_ string, e *probetest.ZoneEntry) {
					i++
					e.Addrs = []netip.Addr{netip.AddrFrom4([4]byte{198, 18, 0, byte(i)})}
				}))
			},
			signs: []sign{
				{target: "courier-1", kind: "dns/udp", result: "ok"},
				{target: "courier-1", kind: "tcp", port: 5223, result: "skipped:" + measurements.SkipBogon},
				{target: "courier-1", kind: "tls", port: 5223, result: "ok"},
			},
			// Apps connect through the proxy; the addresses encrypted
			// DNS finds show the servers reachable.
			want: want{
				network:  networkOK,
				services: allServices(svcOK, nil),
				apps:     appsWorking,
				dns: map[string]dnsWant{
					"courier-1":      {verdict: verdictInconclusive, scope: "local_proxy", words: "fake-ip"},
					"control-google": {verdict: verdictInconclusive, scope: "local_proxy"},
				},
			},
		},
		scenario{
			name: "dns-zero-identity",
			censor: func(l *lab) {
				// The censor's resolver, outside the volunteer's
				// network, answers 0.0.0.0 and :: as a Pi-hole would:
				// not the volunteer's own filter, still a block.
				l.lyingResolver(l.lyingZone(l.plan.Hosts(identity), blockedByFilter))
			},
			signs: []sign{
				{target: "gsa", kind: "dns/udp", result: "ok", answer: "0.0.0.0"},
				{target: "gsa", kind: "dns/doh", result: "ok", answer: "17.32.194.12"},
			},
			want: want{
				network:  networkOK,
				services: allServices(svcOK, map[string]serviceWant{identity: blockedBy("dns.bogon")}),
				apps:     appsBlocked,
			},
		},
	)
}
