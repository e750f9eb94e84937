//go:build lab

package lab

import (
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
)

// scenario is one censorship technique (or none) and what the probe and
// the analysis must make of it.
type scenario struct {
	name string
	// censor applies the technique to a fresh lab whose fake internet
	// already serves; nil for a clean network.
	censor func(l *lab)
	// ipv6 gives the fake internet's names AAAA records too; the lab has
	// no IPv6 route.
	ipv6 bool
	// repeat is the probe's --repeat; 0 means 1.
	repeat int
	// during, when set, runs while the probe measures (from its start):
	// a fault that comes and goes.
	during func(l *lab)
	// signs are what the observations must show for the technique to
	// have applied.
	signs []sign
	want  want
}

// Shorthands of the scenario table.
var (
	svcOK        = serviceWant{verdict: verdictOK}
	blockedBy    = func(method string) serviceWant { return serviceWant{verdict: verdictBlocked, method: method} }
	notJudged    = serviceWant{verdict: oneOf(verdictOK, verdictInconclusive)}
	appsWorking  = map[string]string{"imessage": appWorking, "facetime": appWorking}
	appsBlocked  = map[string]string{"imessage": appBlocked, "facetime": appBlocked}
	appsDegraded = map[string]string{"imessage": appDegraded, "facetime": appDegraded}
)

const (
	push     = measurements.GroupPush
	identity = measurements.GroupIdentity
	call     = measurements.GroupCall
	quicSvc  = measurements.GroupQUIC
)

// scenarios are the lab's cases: a clean network, each technique real
// censors use against Apple's services, what a censor might try next, and
// networks that fail without any censor, where nothing may be called
// blocked.
var scenarios = []scenario{
	{
		name: "clean",
		signs: []sign{
			{target: "courier-1", kind: "tls", port: 5223, result: "ok"},
			{target: "init-ess", kind: "tls", port: 443, result: "ok"},
			{target: "commnat-main", kind: "udp", port: 3478, result: "ok"},
			{target: "mask", kind: "quic", port: 443, result: "ok"},
		},
		want: want{network: networkOK, services: allServices(svcOK, nil), apps: appsWorking},
	},
	{
		name: "dns-nxdomain-identity",
		censor: func(l *lab) {
			l.lyingResolver(l.lyingZone(l.plan.Hosts(identity), nxdomain))
		},
		signs: []sign{
			{target: "init-ess", kind: "dns/udp", result: failure.DNSNXDomain},
			{target: "init-ess", kind: "dns/system", result: failure.DNSNXDomain},
			{target: "init-ess", kind: "dns/doh", result: "ok", answer: "17.32.194.10"},
			{target: "courier-1", kind: "dns/udp", result: "ok", answer: "17.57.144.21"},
		},
		want: want{
			network:  networkOK,
			services: allServices(svcOK, map[string]serviceWant{identity: blockedBy("dns.nxdomain")}),
			apps:     appsBlocked,
		},
	},
	{
		name: "dns-bogon-push",
		censor: func(l *lab) {
			l.lyingResolver(l.lyingZone(l.plan.Hosts(push), bogons("10.10.34.35", "127.0.0.1")))
		},
		signs: []sign{
			{target: "courier-1", kind: "dns/udp", result: "ok", answer: "10.10.34.35"},
			{target: "courier-33", kind: "dns/udp", result: "ok", answer: "127.0.0.1"},
			{target: "courier-33", kind: "tcp", port: 5223, result: "skipped:" + measurements.SkipBogon},
			{target: "courier-1", kind: "dns/doh", result: "ok", answer: "17.57.144.21"},
		},
		want: want{
			network:  networkOK,
			services: allServices(svcOK, map[string]serviceWant{push: blockedBy("dns.bogon")}),
			apps:     appsBlocked,
		},
	},
	{
		name: "dns-injection-push",
		censor: func(l *lab) {
			l.injectDNS("push.apple.com")
		},
		signs: []sign{
			{target: "courier-1", kind: "dns/udp", result: "ok", answer: InjectedAddr, late: true, window: windowFull},
			{target: "courier-1", kind: "dns/system", result: "ok", answer: InjectedAddr},
			{target: "courier-1", kind: "dns/doh", result: "ok", answer: "17.57.144.21"},
			{target: "init-ess", kind: "dns/udp", result: "ok", answer: "17.32.194.10"},
		},
		want: want{
			network:  networkOK,
			services: allServices(svcOK, map[string]serviceWant{push: blockedBy("dns.injection")}),
			apps:     appsBlocked,
		},
	},
	{
		name:   "dns-drop-identity",
		repeat: 2,
		censor: func(l *lab) {
			// Queries for the identity names vanish; others pass.
			for _, host := range l.plan.Hosts(identity) {
				l.forward("-i", censorLANIface, "-p", "udp", "--dport", "53", "-m", "string", "--algo", "bm",
					"--hex-string", dnsWireName(host), "-j", "DROP")
			}
		},
		signs: []sign{
			{target: "init-ess", kind: "dns/udp", result: failure.GenericTimeout},
			{target: "init-ess", kind: "dns/doh", result: "ok", answer: "17.32.194.10"},
			{target: "courier-1", kind: "dns/udp", result: "ok"},
		},
		want: want{
			network:  networkOK,
			services: allServices(svcOK, map[string]serviceWant{identity: blockedBy("dns.timeout")}),
			apps:     appsBlocked,
		},
	},
	{
		name: "rst-port-5223",
		censor: func(l *lab) {
			l.forward("-p", "tcp", "--dport", "5223", "-j", "REJECT", "--reject-with", "tcp-reset")
		},
		signs: []sign{
			{target: "courier-1", kind: "tcp", port: 5223, result: failure.ConnectionRefused},
			{target: "courier-1", kind: "tls", port: 443, result: "ok"},
		},
		// Port 5223 is rejected for every destination: the control hosts'
		// 5223 is reset too, so whether it is this network's policy or a
		// block aimed at Apple cannot be told, and push works on 443.
		want: want{
			network:  networkOK,
			services: allServices(svcOK, nil),
			apps:     appsWorking,
		},
	},
	{
		name: "drop-port-5223-to-apple",
		censor: func(l *lab) {
			l.forward("-d", appleBlock, "-p", "tcp", "--dport", "5223", "-j", "DROP")
		},
		signs: []sign{
			{target: "courier-1", kind: "tcp", port: 5223, result: failure.GenericTimeout},
			{target: "courier-1", kind: "tls", port: 443, result: "ok"},
		},
		// Silent toward Apple, answered toward a control host on the
		// same port: aimed at Apple.
		want: want{
			network:  networkOK,
			services: allServices(svcOK, map[string]serviceWant{push: {verdict: verdictDegraded, method: "port.filtering"}}),
			apps:     appsDegraded,
		},
	},
	{
		name: "sni-reset-push",
		censor: func(l *lab) {
			l.resetOnString("courier.push.apple.com")
		},
		signs: []sign{
			{target: "courier-1", kind: "tls/control", port: 5223, result: "ok"},
			{target: "courier-1", kind: "tls", port: 5223, result: failure.ConnectionReset},
			{target: "courier-33", kind: "tls", port: 443, result: failure.ConnectionReset},
			{target: "api-push", kind: "tls", port: 443, result: "ok"},
		},
		want: want{
			network:  networkOK,
			services: allServices(svcOK, map[string]serviceWant{push: blockedBy("sni.filtering")}),
			apps:     appsBlocked,
		},
	},
	{
		name: "sni-drop-identity",
		censor: func(l *lab) {
			for _, name := range l.plan.ServerNames(identity) {
				l.dropOnString(name)
			}
		},
		signs: []sign{
			{target: "init-ess", kind: "tls/control", port: 443, result: "ok"},
			{target: "init-ess", kind: "tls", port: 443, result: failure.GenericTimeout},
			{target: "gsa", kind: "tls", port: 443, result: failure.GenericTimeout},
		},
		want: want{
			network:  networkOK,
			services: allServices(svcOK, map[string]serviceWant{identity: blockedBy("sni.filtering")}),
			apps:     appsBlocked,
		},
	},
	{
		name: "alpn-reset-push",
		censor: func(l *lab) {
			// Commodity DPI recognises APNs by its ALPN, whatever the
			// server name.
			l.resetOnString("apns-security-v3")
		},
		signs: []sign{
			{target: "courier-1", kind: "tls/control", port: 5223, result: failure.ConnectionReset},
			{target: "courier-1", kind: "tls", port: 443, result: failure.ConnectionReset},
			{target: "api-push", kind: "tls", port: 443, result: "ok"},
		},
		want: want{
			network:  networkOK,
			services: allServices(svcOK, map[string]serviceWant{push: blockedBy("tls.reset")}),
			apps:     appsBlocked,
		},
	},
	{
		name: "courier-ip-reset",
		censor: func(l *lab) {
			l.forward("-d", pushCourierBlock, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset")
		},
		signs: []sign{
			{target: "courier-1", kind: "tcp", port: 5223, result: failure.ConnectionRefused},
			{target: "courier-1", kind: "tcp", port: 443, result: failure.ConnectionRefused},
			{target: "api-push", kind: "tls", port: 443, result: "ok"},
		},
		// Every courier, across its four /24s, refused while the other
		// push servers work: independent servers agree.
		want: want{
			network:  networkOK,
			services: allServices(svcOK, map[string]serviceWant{push: blockedBy("tcp.refused")}),
			apps:     appsBlocked,
		},
	},
	{
		name:   "sni-reset-residual-push",
		repeat: 2,
		censor: func(l *lab) {
			// The block outlives the trigger, and the repetitions come
			// sooner than it ends (the default spacing would wait it out).
			l.residualReset("courier.push.apple.com", 2*time.Minute)
		},
		signs: []sign{
			{target: "courier-1", kind: "tls", result: failure.ConnectionReset},
			{target: "courier-1", kind: "tcp", result: failure.ConnectionRefused},
			{target: "api-push", kind: "tls", port: 443, result: "ok"},
		},
		want: want{
			network:  networkOK,
			services: allServices(svcOK, map[string]serviceWant{push: {verdict: verdictBlocked}}),
			apps:     appsBlocked,
		},
	},
	{
		name:   "quic-dropped-to-apple",
		repeat: 2,
		censor: func(l *lab) {
			l.forward("-d", appleBlock, "-p", "udp", "--dport", "443", "-j", "DROP")
		},
		signs: []sign{
			{target: "mask", kind: "quic", port: 443, result: failure.GenericTimeout},
			{target: "control-google-quic", kind: "quic", port: 443, result: "ok"},
		},
		// Private Relay falls back to TCP (mask-h2), which works.
		want: want{
			network:  networkOK,
			services: allServices(svcOK, map[string]serviceWant{quicSvc: {verdict: verdictDegraded, method: "quic.timeout"}}),
			apps:     appsWorking,
		},
	},
	{
		name:   "quic-dropped-everywhere",
		repeat: 2,
		censor: func(l *lab) {
			// UDP 443 dropped for every destination: the control's QUIC
			// fails too, so nothing proves Apple is targeted.
			l.forward("-p", "udp", "--dport", "443", "-j", "DROP")
		},
		signs: []sign{
			{target: "mask", kind: "quic", port: 443, result: failure.GenericTimeout},
			{target: "control-google-quic", kind: "quic", port: 443, result: failure.GenericTimeout},
		},
		// Nothing shows Apple is targeted, and Private Relay's TCP
		// fallback works: the service is not blocked. QUIC to the
		// control host is blocked indeed.
		want: want{
			network:     oneOf(networkOK, networkPartial),
			services:    allServices(svcOK, map[string]serviceWant{quicSvc: {verdict: oneOf(verdictOK, verdictInconclusive, verdictDegraded)}}),
			apps:        appsWorking,
			alsoBlocked: []string{serviceControl},
		},
	},
	{
		name: "call-ports-dropped",
		censor: func(l *lab) {
			l.forward("-d", appleBlock, "-p", "udp", "-m", "multiport", "--dports", "3478:3497,16384:16387,16393:16402", "-j", "DROP")
		},
		signs: []sign{
			{target: "commnat-main", kind: "udp", port: 3478, result: failure.GenericTimeout},
			{target: "control-stun-google", kind: "udp", port: 19302, result: "ok"},
		},
		want: want{
			network:  networkOK,
			services: allServices(svcOK, map[string]serviceWant{call: blockedBy("udp.timeout")}),
			apps:     map[string]string{"imessage": appWorking, "facetime": appBlocked},
		},
	},
	{
		name: "tls-interception-identity",
		censor: func(l *lab) {
			l.intercept(identityBlock, l.plan.ServerNames(identity))
		},
		signs: []sign{
			{target: "init-ess", kind: "tls", port: 443, result: failure.SSLUnknownAuthority},
			{target: "courier-1", kind: "tls", port: 443, result: "ok"},
		},
		want: want{
			network:  networkOK,
			services: allServices(svcOK, map[string]serviceWant{identity: blockedBy("tls.interception")}),
			apps:     appsBlocked,
		},
	},
	{
		name:   "apple-dropped",
		repeat: 2,
		censor: func(l *lab) {
			l.forward("-d", appleBlock, "-j", "DROP")
		},
		signs: []sign{
			{target: "courier-1", kind: "tcp", port: 5223, result: failure.GenericTimeout},
			{target: "commnat-main", kind: "udp", port: 3478, result: failure.GenericTimeout},
			{target: "control-google", kind: "tls", port: 443, result: "ok"},
		},
		// Bare silence toward all of Apple, in every try: a censor's
		// drop and an outage of the path look the same, so it reads
		// unreachable (a block or an outage), never blocked.
		want: want{
			network:  networkOK,
			services: allServices(serviceWant{verdict: verdictUnreachable}, nil),
			apps:     map[string]string{"imessage": appUnreachable, "facetime": appUnreachable},
		},
	},
	{
		name: "ipv6-less-network",
		ipv6: true,
		signs: []sign{
			{target: "courier-1", kind: "dns/udp", result: "ok", answer: "2620:149:a44::21"},
			{target: "courier-1", kind: "tcp", port: 5223, result: "skipped:" + measurements.SkipNoIPv6Route},
			{target: "courier-1", kind: "tls", port: 5223, result: "ok"},
		},
		want: want{network: networkOK, services: allServices(svcOK, nil), apps: appsWorking},
	},
	{
		name: "uplink-down",
		censor: func(l *lab) {
			l.uplinkDown()
		},
		signs: []sign{
			// The censor answers with ICMP network unreachable, which
			// the kernel rate-limits: some connects time out instead.
			{target: "control-google", kind: "dns/doh", result: oneOf(failure.NetworkUnreachable, failure.GenericTimeout)},
			{target: "control-google", kind: "dns/udp", result: failure.GenericTimeout},
		},
		want: want{
			network:  networkNoConnectivity,
			services: allServices(serviceWant{verdict: oneOf(verdictFailed, verdictInconclusive)}, nil),
			apps:     map[string]string{"imessage": oneOf(appDown, appInconclusive), "facetime": oneOf(appDown, appInconclusive)},
		},
	},
	{
		name:   "resolver-down",
		repeat: 2,
		censor: func(l *lab) {
			// The network's resolver is unreachable for every name: an
			// outage (or a censor blocking all DNS), not a block of Apple.
			for _, proto := range []string{"udp", "tcp"} {
				l.forward("-i", censorLANIface, "-p", proto, "--dport", "53", "-j", "DROP")
			}
		},
		signs: []sign{
			{target: "control-google", kind: "dns/udp", result: failure.GenericTimeout},
			{target: "courier-1", kind: "dns/udp", result: failure.GenericTimeout},
			{target: "courier-1", kind: "dns/doh", result: "ok"},
		},
		// The encrypted DNS control finds the servers, and they answer;
		// but this device's resolver answers no name at all, so the
		// apps cannot work: broken, not blocked.
		want: want{
			network:  networkPartial,
			services: allServices(serviceWant{verdict: verdictFailed}, nil),
			apps:     map[string]string{"imessage": appDown, "facetime": appDown},
		},
	},
	{
		name: "slow-link",
		censor: func(l *lab) {
			// A slow, congested link (no censor): slowness is not
			// blocking.
			l.shape("256kbit", 200*time.Millisecond)
		},
		signs: []sign{
			{target: "control-google", kind: "tls", port: 443, result: "ok"},
		},
		want: want{
			network:  oneOf(networkOK, networkUnstable),
			services: allServices(notJudged, nil),
			apps:     map[string]string{"imessage": oneOf(appWorking, appInconclusive), "facetime": oneOf(appWorking, appInconclusive)},
		},
	},
	{
		name:   "random-loss-20",
		repeat: 3,
		censor: func(l *lab) {
			l.randomLoss(0.2)
		},
		// A plain lookup is one datagram each way, never retried: with
		// a hundred of them a run without a lost one is all but
		// impossible.
		signs: []sign{
			{kind: "dns/udp", result: failure.GenericTimeout},
		},
		want: want{
			network:  oneOf(networkOK, networkUnstable),
			services: allServices(notJudged, nil),
			apps:     map[string]string{"imessage": oneOf(appWorking, appInconclusive), "facetime": oneOf(appWorking, appInconclusive)},
		},
	},
}
