package analysis

import (
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// appleAnswersReserved is an arrival hook: Apple's call host answers the
// reserved version with a Version Negotiation and nothing else.
func appleAnswersReserved(s *stepCtx, k *measurements.ArrivalKind) {
	if appleCallKind(s) && k.Kind == measurements.ArrivalQUICReserved {
		kindAnswered(k)
	}
}

// payloadScenarios are the golden cases of payload traces: Apple's call
// host answers the reserved QUIC version while STUN and QUIC v1 draw
// nothing, and the control STUN server on the same port answers no QUIC,
// so only the path can tell a filter from a host that ignores them.
func payloadScenarios() []scenario {
	return []scenario{
		{name: "call_payload_path_dropped_in_isp", world: func() *world {
			// A filter at hop 2 drops STUN and QUIC v1 to Apple's call
			// hosts by what they carry; the reserved version passes,
			// STUN to the control passes.
			p := isp()
			p.applePayloadStop = 2
			return &world{targets: arrivalCatalog(3478), step: dropAppleUDP, arrival: appleAnswersReserved, path: p}
		}, want: expectation{network: "ok", services: allOK("call", "blocked"), methods: map[string]string{"call": MethodUDPPayload},
			apps: map[string]string{"imessage": "working", "facetime": "blocked"}, blockedOnly: "call"}},
		{name: "call_payload_path_filtered_for_all", world: func() *world {
			// The same filter for every destination at hop 2: STUN to
			// the control on the port is dropped too. This network's
			// filter, not a block aimed at Apple.
			p := isp()
			p.payloadStop = 2
			return &world{targets: arrivalCatalog(3478), path: p, step: func(s *stepCtx) {
				if s.o.Step == measurements.StepUDP && s.o.Port == 3478 {
					s.fail(failTimeout, "read")
				}
			}, arrival: func(s *stepCtx, k *measurements.ArrivalKind) {
				appleAnswersReserved(s, k)
				if s.t.Group == measurements.GroupControl && k.Kind == measurements.ArrivalSTUN {
					*k = measurements.ArrivalKind{Kind: k.Kind, Sent: 3, Size: k.Size, Evidence: measurements.ArrivalSilence}
				}
			}}
		}, want: expectation{network: "ok|partial|unstable", services: allOK("call", "restricted"),
			apps: map[string]string{"imessage": "working", "facetime": "restricted"}, noBlocked: true}},
		{name: "honest_call_payload_host_ignores_stun", world: func() *world {
			// Nothing is filtered: Apple's host answers the reserved
			// version and ignores STUN and QUIC v1. The STUN probes draw
			// every router's answer and then silence at the host itself:
			// no stop before the destination's hop, so nothing is placed
			// and silence is not read as a block.
			return &world{targets: arrivalCatalog(3478), step: dropAppleUDP, arrival: appleAnswersReserved, path: isp()}
		}, want: expectation{network: "ok", services: allOK("call", "inconclusive"),
			apps: map[string]string{"imessage": "working", "facetime": "inconclusive"}, noBlocked: true}},
		{name: "call_payload_path_no_icmp", world: func() *world {
			// The Apple-only filter, and routers that send no ICMP: the
			// place is unknown, nothing is read from it.
			p := isp()
			p.applePayloadStop, p.noICMP = 2, true
			return &world{targets: arrivalCatalog(3478), step: dropAppleUDP, arrival: appleAnswersReserved, path: p}
		}, want: expectation{network: "ok", services: allOK("call", "inconclusive"),
			apps: map[string]string{"imessage": "working", "facetime": "inconclusive"}, noBlocked: true}},
	}
}

// TestPayloadTraceGoldenWords checks the call endpoints' words.
func TestPayloadTraceGoldenWords(t *testing.T) {
	byName := map[string]scenario{}
	for _, sc := range payloadScenarios() {
		byName[sc.name] = sc
	}
	tests := []struct {
		scenario string
		want     []string
	}{
		{"call_payload_path_dropped_in_isp", []string{"STUN requests to Apple's call servers are dropped at hop 2, inside AS64500 (Example ISP, the network you are on)", "what the datagrams carry is what is targeted"}},
		{"call_payload_path_filtered_for_all", []string{"a filter of this network on what datagrams carry, for every destination, not a block aimed at Apple"}},
		{"call_payload_path_no_icmp", []string{"where the datagrams stop is unknown", "not called blocked"}},
		{"honest_call_payload_host_ignores_stun", []string{"not called blocked"}},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			checkCallEvidence(t, Analyze(byName[tt.scenario].world().build()), tt.want, []string{"198.51.100.1", "192.168.77.1"})
		})
	}
}
