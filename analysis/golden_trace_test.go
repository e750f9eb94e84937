package analysis

import (
	"slices"
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// silentCallHosts is an arrival hook for Apple's call hosts that ignore
// every kind of datagram, as the default catalog's may: only the path can
// tell where the datagrams go.
func silentCallHosts(s *stepCtx, k *measurements.ArrivalKind) {}

// dropAppleUDP makes every UDP step to Apple's call ports silent: what a
// censor dropping them on the path does (STUN and arrival kinds alike).
func dropAppleUDP(s *stepCtx) {
	if forApple(s) && s.o.Step == measurements.StepUDP {
		s.fail(failTimeout, "read")
	}
}

// traceScenarios are the golden cases of path evidence for call
// endpoints: traces made in the confirmation pass.
func traceScenarios() []scenario {
	return []scenario{
		{name: "call_path_dropped_in_isp", world: func() *world {
			// The Russian pattern: UDP to Apple's call ports is dropped
			// past the ISP's first router (hop 2, AS64500); TCP to Apple
			// and UDP to other addresses pass.
			p := isp()
			p.appleUDPStop = 2
			return &world{targets: arrivalCatalog(), step: dropAppleUDP, arrival: silentCallHosts, path: p}
		}, want: expectation{network: "ok", services: allOK("call", "blocked"), methods: map[string]string{"call": MethodUDPPathDrop},
			apps: map[string]string{"imessage": "working", "facetime": "blocked"}, blockedOnly: "call"}},
		{name: "call_path_dropped_at_home", world: func() *world {
			// The same drop at the home router (hop 1, a private
			// address): worded as that network's rule.
			p := isp()
			p.appleUDPStop = 1
			return &world{targets: arrivalCatalog(), step: dropAppleUDP, arrival: silentCallHosts, path: p}
		}, want: expectation{network: "ok", services: allOK("call", "blocked"), methods: map[string]string{"call": MethodUDPPathDrop},
			apps: map[string]string{"imessage": "working", "facetime": "blocked"}, blockedOnly: "call"}},
		{name: "call_path_ports_closed_for_all", world: func() *world {
			// The network drops UDP on the call ports for every
			// destination at hop 2: its policy, not a block on Apple.
			p := isp()
			p.portUDPStop = 2
			return &world{targets: arrivalCatalog(), arrival: silentCallHosts, path: p, step: func(s *stepCtx) {
				if s.o.Step == measurements.StepUDP && s.o.Port != 443 {
					s.fail(failTimeout, "read")
				}
			}}
		}, want: expectation{network: "ok|partial|unstable", services: allOK("call", "restricted"),
			apps: map[string]string{"imessage": "working", "facetime": "restricted"}, noBlocked: true}},
		{name: "call_path_apple_silent", world: func() *world {
			// Nothing is dropped: the datagrams pass every router and
			// Apple's hosts ignore them. Not blocked.
			return &world{targets: arrivalCatalog(), arrival: silentCallHosts, path: isp()}
		}, want: expectation{network: "ok", services: allOK("call", "inconclusive"),
			apps: map[string]string{"imessage": "working", "facetime": "inconclusive"}, noBlocked: true}},
		{name: "call_path_diverging_control", world: func() *world {
			// UDP to Apple goes no further than hop 3, the last transit
			// router before Apple, and the control's path parts from
			// Apple's there: its hop 3 is another router. Apple's edge
			// may be what drops: not blocked.
			p := isp()
			p.appleUDPStop = 3
			p.otherRouters = append(slices.Clone(p.routers[:2]),
				measurements.TraceHop{Addr: "203.0.113.99", ASN: 64520, ASName: "Other Transit"},
				measurements.TraceHop{Addr: "203.0.113.100", ASN: 64520, ASName: "Other Transit"})
			return &world{targets: arrivalCatalog(), step: dropAppleUDP, arrival: silentCallHosts, path: p}
		}, want: expectation{network: "ok", services: allOK("call", "inconclusive"),
			apps: map[string]string{"imessage": "working", "facetime": "inconclusive"}, noBlocked: true}},
		{name: "call_path_no_icmp", world: func() *world {
			// The censor's drop, but routers send no ICMP: the place is
			// unknown, and nothing is read from it.
			p := isp()
			p.appleUDPStop, p.noICMP = 2, true
			return &world{targets: arrivalCatalog(), step: dropAppleUDP, arrival: silentCallHosts, path: p}
		}, want: expectation{network: "ok", services: allOK("call", "inconclusive"),
			apps: map[string]string{"imessage": "working", "facetime": "inconclusive"}, noBlocked: true}},
	}
}

// TestTraceGoldenWords checks the words that name the place.
func TestTraceGoldenWords(t *testing.T) {
	byName := map[string]scenario{}
	for _, sc := range traceScenarios() {
		byName[sc.name] = sc
	}
	tests := []struct {
		name, scenario string
		want           []string
		not            []string
	}{
		{"hop and AS named", "call_path_dropped_in_isp", []string{"dropped at hop 2, inside AS64500 (Example ISP, the network you are on)", "UDP is what is targeted"}, nil},
		{"own network's rule", "call_path_dropped_at_home", []string{"at hop 1, a router with a private address: inside the network you are connected to"}, []string{"192.168.77.1"}},
		{"policy for everyone", "call_path_ports_closed_for_all", []string{"this network's policy"}, nil},
		{"no shared router, no block", "call_path_diverging_control", []string{"not through the same router", "not called blocked"}, nil},
		{"unknown place said", "call_path_no_icmp", []string{"where the datagrams stop is unknown", "never read as blocking"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkCallEvidence(t, Analyze(byName[tt.scenario].world().build()), tt.want, tt.not)
		})
	}
}

// checkCallEvidence checks that the call endpoints' evidence, together,
// says every one of want and none of not.
func checkCallEvidence(t *testing.T, rep Report, want, not []string) {
	t.Helper()
	var all strings.Builder
	for _, e := range rep.Endpoints {
		if e.Group == measurements.GroupCall {
			all.WriteString(e.Evidence + "\n")
		}
	}
	for _, w := range want {
		if !strings.Contains(all.String(), w) {
			t.Errorf("call evidence lacks %q:\n%s", w, all.String())
		}
	}
	for _, w := range not {
		if strings.Contains(all.String(), w) {
			t.Errorf("call evidence carries %q:\n%s", w, all.String())
		}
	}
}
