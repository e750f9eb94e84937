package analysis

import (
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// arrivalCatalog is testCatalog as the default catalog has the call group:
// Apple's call hosts are not known to answer STUN. only, when not nil,
// keeps the call target on those ports alone.
func arrivalCatalog(only ...int) []measurements.Target {
	ts := testCatalog()
	for i := range ts {
		if ts[i].Group == measurements.GroupCall {
			ts[i].STUNAnswers = false
			if len(only) > 0 {
				ts[i].Ports = only
			}
		}
	}
	return ts
}

// appleCallKind reports whether s is an arrival step to Apple's call host.
func appleCallKind(s *stepCtx) bool {
	return s.t.Group == measurements.GroupCall && s.isApple()
}

// arrivalScenarios are the golden cases of arrival evidence for call
// endpoints, whose STUN requests Apple's hosts do not answer.
func arrivalScenarios() []scenario {
	return []scenario{
		{name: "call_arrival_port_unreachable", world: func() *world {
			// Apple's host answers every kind with an ICMP port
			// unreachable of its own: the datagrams arrive.
			return &world{targets: arrivalCatalog(), arrival: func(s *stepCtx, k *measurements.ArrivalKind) {
				if appleCallKind(s) {
					kindPortUnreachable(k)
				}
			}}
		}, want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
		{name: "call_arrival_version_negotiation", world: func() *world {
			// A QUIC listener: Version Negotiation for the reserved
			// version, its own Initial for QUIC v1.
			return &world{targets: arrivalCatalog(), arrival: func(s *stepCtx, k *measurements.ArrivalKind) {
				if appleCallKind(s) && (k.Kind == measurements.ArrivalQUICReserved || k.Kind == measurements.ArrivalQUICv1) {
					kindAnswered(k)
				}
			}}
		}, want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
		{name: "call_arrival_silent", world: func() *world {
			// Apple's host ignores every kind, and nothing shows where
			// the datagrams went: silence proves nothing.
			return &world{targets: arrivalCatalog(), arrival: func(s *stepCtx, k *measurements.ArrivalKind) {}}
		}, want: expectation{network: "ok", services: allOK("call", "inconclusive"),
			apps: map[string]string{"imessage": "working", "facetime": "inconclusive"}, noBlocked: true}},
		{name: "call_arrival_quic_v1_filtered", world: func() *world {
			// The host answers the reserved version, but QUIC v1 and
			// STUN, what FaceTime sends, never come back; no control on
			// the port shows they get through elsewhere.
			return &world{targets: arrivalCatalog(), arrival: func(s *stepCtx, k *measurements.ArrivalKind) {
				if appleCallKind(s) && k.Kind == measurements.ArrivalQUICReserved {
					kindAnswered(k)
				}
			}}
		}, want: expectation{network: "ok", services: allOK("call", "inconclusive"),
			apps: map[string]string{"imessage": "working", "facetime": "inconclusive"}, noBlocked: true}},
		{name: "call_arrival_quic_v1_filtered_control", world: func() *world {
			// The same filter, and a control on the same port that
			// answers every kind: FaceTime's kinds get through to it,
			// not to Apple, in both passes.
			return &world{targets: arrivalCatalog(3478), arrival: func(s *stepCtx, k *measurements.ArrivalKind) {
				switch {
				case appleCallKind(s) && k.Kind == measurements.ArrivalQUICReserved:
					kindAnswered(k)
				case s.t.Group == measurements.GroupControl:
					kindAnswered(k)
				}
			}}
		}, want: expectation{network: "ok", services: allOK("call", "blocked"), methods: map[string]string{"call": MethodUDPPayload},
			apps: map[string]string{"imessage": "working", "facetime": "blocked"}, blockedOnly: "call"}},
		{name: "call_arrival_quic_v1_filtered_control_noconfirm", world: func() *world {
			// The same without a confirmation pass: one pass is not a
			// block.
			return &world{noConfirm: true, targets: arrivalCatalog(3478), arrival: func(s *stepCtx, k *measurements.ArrivalKind) {
				switch {
				case appleCallKind(s) && k.Kind == measurements.ArrivalQUICReserved:
					kindAnswered(k)
				case s.t.Group == measurements.GroupControl:
					kindAnswered(k)
				}
			}}
		}, want: expectation{network: "ok", services: allOK("call", "inconclusive"),
			apps: map[string]string{"imessage": "working", "facetime": "inconclusive"}, noBlocked: true}},
	}
}

// TestArrivalGoldenWords checks the words that say why.
func TestArrivalGoldenWords(t *testing.T) {
	byName := map[string]scenario{}
	for _, sc := range arrivalScenarios() {
		byName[sc.name] = sc
	}
	tests := []struct {
		name, scenario, verdict string
		want                    []string
	}{
		{"port unreachable is arrival", "call_arrival_port_unreachable", VerdictOK, []string{"a datagram reached Apple's host at", "port unreachable from the host itself"}},
		{"version negotiation is arrival", "call_arrival_version_negotiation", VerdictOK, []string{"a QUIC v1 Initial like FaceTime's (an answer"}},
		{"silence says why", "call_arrival_silent", VerdictInconclusive, []string{"none of 4 kinds of datagram", "silence says nothing of a block"}},
		{"filtered kind is named", "call_arrival_quic_v1_filtered", VerdictInconclusive, []string{"a QUIC Version Negotiation", "a STUN request and a QUIC v1 Initial like FaceTime's", "not called blocked"}},
		{"filtered kind with control", "call_arrival_quic_v1_filtered_control", VerdictBlocked, []string{"not Apple's, on the same port reached the host"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Analyze(byName[tt.scenario].world().build())
			found := false
			for _, e := range rep.Endpoints {
				if e.Group != measurements.GroupCall {
					continue
				}
				found = true
				if e.Verdict != tt.verdict {
					t.Errorf("%s: verdict %s, want %s (%s)", hostPort(e.Address, e.Port), e.Verdict, tt.verdict, e.Evidence)
				}
				for _, w := range tt.want {
					if !strings.Contains(e.Evidence, w) {
						t.Errorf("%s: evidence %q lacks %q", hostPort(e.Address, e.Port), e.Evidence, w)
					}
				}
			}
			if !found {
				t.Fatal("no call endpoint")
			}
		})
	}
}
