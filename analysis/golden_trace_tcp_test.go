package analysis

import (
	"slices"
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// resetNames resets, in every try, the handshakes that name a host of
// group: what an SNI filter does, or the group's own front end.
func resetNames(group string) func(s *stepCtx) {
	return func(s *stepCtx) {
		if s.o.Step == measurements.StepTLS && !s.o.Control && s.t.Group == group && s.real {
			s.fail(failReset, "tls_handshake")
		}
	}
}

// onePrefixIdentity is the test catalog whose identity service is one
// host in one /24 (identity.ess.apple.com): no second server to ask.
func onePrefixIdentity() []measurements.Target {
	return slices.DeleteFunc(testCatalog(), func(t measurements.Target) bool { return t.Name == "gsa" })
}

// dropApple5223 makes connects to Apple's port 5223 time out.
func dropApple5223(s *stepCtx) {
	if forApple(s) && s.o.Port == 5223 && s.o.Step == measurements.StepTCP {
		s.fail(failTimeout, "connect")
	}
}

// traceTCPScenarios are the golden cases of path evidence over TCP: reset
// traces of resets on the server name, SYN traces of a silent port.
func traceTCPScenarios() []scenario {
	return []scenario{
		{name: "push_sni_reset_in_isp", world: func() *world {
			// An SNI filter in the ISP resets push's names past hop 2.
			p := isp()
			p.resetHop = 2
			return &world{step: resetNames("push"), path: p}
		}, want: expectation{network: "ok", services: allOK("push", "blocked"), methods: map[string]string{"push": MethodSNIFiltering},
			apps: map[string]string{"imessage": "blocked", "facetime": "blocked"}, blockedOnly: "push"}},
		{name: "push_sni_reset_no_icmp", world: func() *world {
			// The same, with routers that send no ICMP: the reset's TTL
			// still gives the hop's number, not its network.
			p := isp()
			p.resetHop, p.noICMP = 2, true
			return &world{step: resetNames("push"), path: p}
		}, want: expectation{network: "ok", services: allOK("push", "blocked"), methods: map[string]string{"push": MethodSNIFiltering},
			apps: map[string]string{"imessage": "blocked", "facetime": "blocked"}, blockedOnly: "push"}},
		{name: "identity_sni_reset_one_prefix_in_isp", world: func() *world {
			// A service with one server, its name reset in the ISP: the
			// reset trace places it before the server, so it is blocked.
			p := isp()
			p.resetHop = 2
			return &world{targets: onePrefixIdentity(), step: resetNames("identity"), path: p}
		}, want: expectation{network: "ok", services: allOK("identity", "blocked"), methods: map[string]string{"identity": MethodSNIFiltering},
			apps: map[string]string{"imessage": "blocked", "facetime": "blocked"}, blockedOnly: "identity"}},
		{name: "honest_front_end_resets_own_name", world: func() *world {
			// The service's one front end resets its own name and
			// accepts the control name: the reset comes only at the
			// server's hop. Not blocked.
			return &world{targets: onePrefixIdentity(), step: resetNames("identity"), path: isp()}
		}, want: expectation{network: "ok", services: allOK("identity", "inconclusive"),
			apps: map[string]string{"imessage": "inconclusive", "facetime": "inconclusive"}, noBlocked: true}},
		{name: "identity_sni_reset_one_prefix_no_path", world: func() *world {
			// The same reset with no path evidence (path probes off):
			// a censor and the front end look alike. Not blocked.
			return &world{targets: onePrefixIdentity(), step: resetNames("identity")}
		}, want: expectation{network: "ok", services: allOK("identity", "inconclusive"),
			apps: map[string]string{"imessage": "inconclusive", "facetime": "inconclusive"}, noBlocked: true}},
		{name: "push_5223_drop_in_isp", world: func() *world {
			// 5223 dropped toward Apple only, in the ISP at hop 2.
			p := isp()
			p.tcpPort, p.tcpPortStop, p.tcpPortAppleOnly = 5223, 2, true
			return &world{step: dropApple5223, path: p}
		}, want: expectation{network: "ok", services: allOK("push", "degraded"), methods: map[string]string{"push": MethodPortFiltering},
			apps: map[string]string{"imessage": "degraded", "facetime": "degraded"}}},
		{name: "honest_5223_dropped_in_apple_network", world: func() *world {
			// 5223 toward Apple is dropped by the first router of
			// Apple's own network (AS714), open toward other hosts:
			// Apple's rule, not a block on the way.
			p := isp()
			p.routers = append(p.routers,
				measurements.TraceHop{Addr: "17.0.0.1", ASN: 714, ASName: "Apple"},
				measurements.TraceHop{Addr: "17.0.0.2", ASN: 714, ASName: "Apple"})
			p.tcpPort, p.tcpPortStop, p.tcpPortAppleOnly = 5223, 5, true
			return &world{step: dropApple5223, path: p}
		}, want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
		{name: "web_only_firewall_traced", world: func() *world {
			// A web-only firewall at hop 2 closes 5223 and the call
			// ports for every destination: its policy, placed.
			p := isp()
			p.tcpPort, p.tcpPortStop, p.portUDPStop = 5223, 2, 2
			return &world{targets: arrivalCatalog(), arrival: silentCallHosts, path: p, step: webOnly,
				portCheck: func(s *stepCtx) { s.fail(failTimeout, "connect") }}
		}, want: expectation{network: "ok|partial|unstable", services: allOK("call", "restricted"),
			apps: map[string]string{"imessage": "working", "facetime": "restricted"}, noBlocked: true}},
		{name: "call_path_address_blocked_outright", world: func() *world {
			// The ISP drops everything to the call relays' range at hop
			// 2: UDP and TCP to the relay's address stop there, a
			// control address passes. Nothing reaches the relay, so the
			// hop of another server of Apple's stands in for its own.
			p := isp()
			p.blockedPrefix, p.blockedStop = "17.173.254.0/24", 2
			return &world{targets: arrivalCatalog(), step: dropAppleUDP, arrival: silentCallHosts, path: p}
		}, want: expectation{network: "ok", services: allOK("call", "blocked"), methods: map[string]string{"call": MethodUDPPathDrop},
			apps: map[string]string{"imessage": "working", "facetime": "blocked"}, blockedOnly: "call"}},
		{name: "honest_call_host_down", world: func() *world {
			// The relay's host is down: every router passes its flows,
			// and nothing answers. Not blocked.
			p := isp()
			p.deadPrefix = "17.173.254.0/24"
			return &world{targets: arrivalCatalog(), step: dropAppleUDP, arrival: silentCallHosts, path: p}
		}, want: expectation{network: "ok", services: allOK("call", "inconclusive"),
			apps: map[string]string{"imessage": "working", "facetime": "inconclusive"}, noBlocked: true}},
	}
}

// TestTraceTCPGoldenWords checks the words of TCP path evidence, and that
// hop addresses stay out of them.
func TestTraceTCPGoldenWords(t *testing.T) {
	byName := map[string]scenario{}
	for _, sc := range traceTCPScenarios() {
		byName[sc.name] = sc
	}
	tests := []struct {
		scenario, group string
		want, not       []string
		place           int // the Path hop every endpoint of group with a Path has; 0: none may have one
	}{
		{"push_sni_reset_in_isp", "push", []string{"reset injected at hop 2, inside AS64500 (Example ISP, the network you are on)", "before the server's hop 5"}, []string{"198.51.100.1"}, 2},
		{"push_sni_reset_no_icmp", "push", []string{"reset injected at hop 2, a router whose network is unknown"}, nil, 2},
		{"identity_sni_reset_one_prefix_in_isp", "identity", []string{"reset injected at hop 2, inside AS64500"}, nil, 2},
		{"honest_front_end_resets_own_name", "identity", []string{"the reset comes only when the ClientHello reaches the server's own hop (5)", "not called blocked"}, []string{"reset injected"}, 0},
		{"identity_sni_reset_one_prefix_no_path", "identity", []string{"no reset trace was made", "not called blocked"}, nil, 0},
		{"push_5223_drop_in_isp", "push", []string{"SYNs to port 5223 are dropped at hop 2, inside AS64500 (Example ISP, the network you are on)", "SYNs to the same port pass that router"}, []string{"198.51.100.1"}, 2},
		{"web_only_firewall_traced", "push", []string{"this network closes the port for every destination (its policy)"}, nil, 2},
		{"honest_5223_dropped_in_apple_network", "push", []string{"reach Apple's own network (hop 5, AS714) and go no further", "Apple's network drops them, not a block on the way"}, nil, 0},
		{"call_path_address_blocked_outright", "call", []string{"UDP to Apple's call servers is dropped at hop 2, inside AS64500 (Example ISP, the network you are on)",
			"TCP to the same address stops there too: the Apple address is blocked outright (nothing reaches that address, so its own hop is unknown: Apple's server of courier-1, answering at hop 5, stands in for it)"}, nil, 2},
		{"honest_call_host_down", "call", []string{"where the datagrams stop is unknown"}, []string{"blocked outright"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			rep := Analyze(byName[tt.scenario].world().build())
			var all strings.Builder
			for _, e := range rep.Endpoints {
				if e.Group != tt.group {
					continue
				}
				all.WriteString(e.Evidence + "\n")
				if e.Path != nil && e.Path.Hop != tt.place {
					t.Errorf("%s %s:%d placed at hop %d, want %d", e.Target, e.Address, e.Port, e.Path.Hop, tt.place)
				}
				if e.Path != nil && tt.place == 0 {
					t.Errorf("%s %s:%d placed (%+v) with no place to find", e.Target, e.Address, e.Port, e.Path)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(all.String(), w) {
					t.Errorf("%s evidence lacks %q:\n%s", tt.group, w, all.String())
				}
			}
			for _, w := range tt.not {
				if strings.Contains(all.String(), w) {
					t.Errorf("%s evidence carries %q:\n%s", tt.group, w, all.String())
				}
			}
		})
	}
}
