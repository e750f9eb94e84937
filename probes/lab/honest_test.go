//go:build lab

package lab

import (
	"time"

	"github.com/reachprobe/reachprobe/probes/failure"
)

// flapDuration is how long the path to Apple is down in the flap
// scenario: past the SYN retransmissions of a first-pass connect, well
// short of the first pass plus the lab's confirmation delay.
const flapDuration = 6 * time.Second

// Honest networks with quirks: no censor anywhere, so no verdict of any of
// them may be blocked (runScenario checks it for every "honest-" name).
func init() {
	scenarios = append(scenarios,
		scenario{
			name: "honest-flap-to-apple",
			// The path to Apple drops everything for a few seconds during
			// a one-try run (a peering flap), then comes back.
			censor: func(l *lab) { l.forward("-d", appleBlock, "-j", "DROP") },
			during: func(l *lab) {
				time.Sleep(flapDuration)
				l.iptablesIn(l.censor, "-D", "FORWARD", "-d", appleBlock, "-j", "DROP")
			},
			signs: []sign{
				{target: "courier-1", kind: "tcp", port: 5223, result: failure.GenericTimeout},
				{target: "control-google", kind: "tls", port: 443, result: "ok"},
			},
			want: want{
				network:  oneOf(networkOK, networkUnstable),
				services: allServices(serviceWant{verdict: oneOf(verdictOK, verdictInconclusive)}, nil),
				apps:     map[string]string{"imessage": oneOf(appWorking, appInconclusive), "facetime": oneOf(appWorking, appInconclusive)},
			},
		},
		scenario{
			name: "honest-loss-to-apple",
			// A congested link toward Apple only: 30% of the packets to
			// and from 17/8 are lost, the controls are clean. One try.
			censor: func(l *lab) {
				for _, dir := range []string{"-d", "-s"} {
					l.forward(dir, appleBlock, "-m", "statistic", "--mode", "random", "--probability", "0.3", "-j", "DROP")
				}
			},
			want: want{
				network:  oneOf(networkOK, networkUnstable, networkPartial),
				services: allServices(serviceWant{verdict: oneOf(verdictOK, verdictInconclusive, verdictUnreachable, verdictFailed)}, nil),
				apps: map[string]string{"imessage": oneOf(appWorking, appInconclusive, appUnreachable, appDown),
					"facetime": oneOf(appWorking, appInconclusive, appUnreachable, appDown)},
			},
		},
		scenario{
			name: "honest-web-only-firewall",
			// A hotel firewall: only DNS and TCP and UDP 80 and 443 leave,
			// toward every destination.
			censor: func(l *lab) {
				for _, proto := range []string{"tcp", "udp"} {
					l.forward("-p", proto, "-m", "multiport", "!", "--dports", "53,80,443", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP")
				}
			},
			signs: []sign{
				{target: "courier-1", kind: "tcp", port: 5223, result: failure.GenericTimeout},
				{target: "courier-1", kind: "tls", port: 443, result: "ok"},
				{target: "control-stun-cloudflare", kind: "udp", port: 3478, result: failure.GenericTimeout},
			},
			want: want{
				network:  oneOf(networkOK, networkUnstable, networkPartial),
				services: allServices(svcOK, map[string]serviceWant{call: {verdict: verdictRestricted}}),
				apps:     map[string]string{"imessage": appWorking, "facetime": appRestricted},
			},
		},
		scenario{
			name: "honest-courier-maintenance",
			// The courier cluster refuses every connection, from Apple's
			// side (the fake internet), in both passes.
			censor: func(l *lab) {
				l.iptablesIn(l.internet, "-A", "INPUT", "-d", pushCourierBlock, "-p", "tcp", "--syn", "-j", "REJECT", "--reject-with", "tcp-reset")
			},
			signs: []sign{
				{target: "courier-1", kind: "tcp", port: 5223, result: failure.ConnectionRefused},
				{target: "api-push", kind: "tls", port: 443, result: "ok"},
			},
			want: want{
				network:  networkOK,
				services: allServices(svcOK, map[string]serviceWant{push: {verdict: oneOf(verdictFailed, verdictInconclusive)}}),
				apps:     map[string]string{"imessage": oneOf(appDown, appInconclusive), "facetime": oneOf(appDown, appInconclusive)},
			},
		},
	)
}
