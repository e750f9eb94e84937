package analysis

import (
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// dropAppleQUIC makes every QUIC handshake with Apple's addresses silent;
// dropAllQUIC every QUIC handshake, the control host's too.
func dropAppleQUIC(s *stepCtx) {
	if forApple(s) && s.o.Step == measurements.StepQUIC {
		s.fail(failTimeout, "quic_handshake")
	}
}

func dropAllQUIC(s *stepCtx) {
	if s.o.Step == measurements.StepQUIC {
		s.fail(failTimeout, "quic_handshake")
	}
}

// quicTraceScenarios are the golden cases of path evidence for QUIC
// endpoints of Apple's (Private Relay): traces made in the confirmation
// pass, their UDP probes carrying a QUIC v1 Initial.
func quicTraceScenarios() []scenario {
	return []scenario{
		{name: "quic_path_dropped_in_isp", world: func() *world {
			// QUIC allowed only toward others: UDP 443 to Apple is
			// dropped past the ISP's first router (hop 2, AS64500);
			// Private Relay's TCP fallback works.
			p := isp()
			p.appleQUICStop = 2
			return &world{repeats: 2, targets: catalogWithFallback(), step: dropAppleQUIC, path: p}
		}, want: expectation{network: "ok", services: allOK("quic", "degraded"), methods: map[string]string{"quic": MethodQUICTimeout},
			apps: working, blockedOnly: "quic"}},
		{name: "quic_path_no_icmp", world: func() *world {
			// The same drop, and routers that send no ICMP: the block
			// stands on its controls, its place is unknown.
			p := isp()
			p.appleQUICStop, p.noICMP = 2, true
			return &world{repeats: 2, targets: catalogWithFallback(), step: dropAppleQUIC, path: p}
		}, want: expectation{network: "ok", services: allOK("quic", "degraded"), methods: map[string]string{"quic": MethodQUICTimeout},
			apps: working, blockedOnly: "quic"}},
		{name: "quic_path_closed_for_all", world: func() *world {
			// The network drops UDP 443 for every destination at hop 2:
			// its policy, not a block aimed at Apple.
			p := isp()
			p.quicStop = 2
			return &world{repeats: 2, targets: catalogWithFallback(), step: dropAllQUIC, path: p}
		}, want: expectation{network: "ok|partial", services: allOK(), apps: working, noBlocked: true}},
		{name: "quic_path_closed_for_all_no_icmp", world: func() *world {
			// The same policy, and routers that send no ICMP: place
			// unknown, nothing read from it.
			p := isp()
			p.quicStop, p.noICMP = 2, true
			return &world{repeats: 2, targets: catalogWithFallback(), step: dropAllQUIC, path: p}
		}, want: expectation{network: "ok|partial", services: allOK(), apps: working, noBlocked: true}},
		{name: "quic_path_apple_edge", world: func() *world {
			// QUIC to Apple goes no further than Apple's own edge router
			// (AS714), while QUIC elsewhere passes the same routers:
			// Apple's servers not answering, not a block on the way.
			p := isp()
			p.routers[3] = measurements.TraceHop{Addr: "17.0.0.1", ASN: 714, ASName: "Apple"}
			p.appleQUICStop = 4
			p.routers = append(p.routers, measurements.TraceHop{Addr: "17.0.0.2", ASN: 714, ASName: "Apple"})
			return &world{repeats: 2, targets: catalogWithFallback(), step: dropAppleQUIC, path: p}
		}, want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
	}
}

// TestQUICTraceGoldenWords checks what the QUIC endpoint's evidence says
// and where the service places the block.
func TestQUICTraceGoldenWords(t *testing.T) {
	byName := map[string]scenario{}
	for _, sc := range quicTraceScenarios() {
		byName[sc.name] = sc
	}
	tests := []struct {
		scenario, verdict string
		want, not         []string
		hop               int // the service's placed hop; 0: none
	}{
		{"quic_path_dropped_in_isp", VerdictBlocked, []string{"QUIC to Apple's relay is dropped at hop 2, inside AS64500 (Example ISP, the network you are on)", "QUIC is what is targeted"}, nil, 2},
		{"quic_path_no_icmp", VerdictBlocked, []string{"where the datagrams stop is unknown", "never read as blocking"}, []string{"dropped at hop"}, 0},
		{"quic_path_closed_for_all", VerdictRestricted, []string{"this network's policy for every destination", "at hop 2, inside AS64500"}, []string{"dropped at hop"}, 0},
		{"quic_path_closed_for_all_no_icmp", VerdictInconclusive, []string{"QUIC is blocked or broken on this network", "where the datagrams stop is unknown"}, nil, 0},
		{"quic_path_apple_edge", VerdictInconclusive, []string{"reach Apple's own network (hop 4, AS714)", "not a block on the way"}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			rep := Analyze(byName[tt.scenario].world().build())
			found := false
			for _, e := range rep.Endpoints {
				if e.Target != "mask" {
					continue
				}
				found = true
				if e.Verdict != tt.verdict {
					t.Errorf("%s: %s, want %s (%s)", hostPort(e.Address, e.Port), e.Verdict, tt.verdict, e.Evidence)
				}
				for _, w := range tt.want {
					if !strings.Contains(e.Evidence, w) {
						t.Errorf("evidence lacks %q:\n%s", w, e.Evidence)
					}
				}
				for _, w := range tt.not {
					if strings.Contains(e.Evidence, w) {
						t.Errorf("evidence says %q:\n%s", w, e.Evidence)
					}
				}
				if strings.Contains(e.Evidence, "198.51.100.") {
					t.Errorf("evidence carries a hop address: %s", e.Evidence)
				}
			}
			if !found {
				t.Fatal("no mask endpoint")
			}
			for _, s := range rep.Services {
				if s.Service != measurements.GroupQUIC {
					continue
				}
				switch {
				case tt.hop == 0 && s.Path != nil:
					t.Errorf("service placed at hop %d where no stop was placed", s.Path.Hop)
				case tt.hop != 0 && (s.Path == nil || s.Path.Hop != tt.hop || s.Path.ASN != 64500):
					t.Errorf("service path %+v, want hop %d in AS64500 (%s)", s.Path, tt.hop, s.Reason)
				}
			}
		})
	}
}
