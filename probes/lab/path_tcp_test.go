//go:build lab

package lab

import (
	"fmt"
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// ispResetOn makes the ISP's router (hop 2) reset TCP flows whose packet
// carries name: an SNI filter inside the ISP.
func (l *lab) ispResetOn(name string) {
	l.t.Helper()
	l.ispForward("-p", "tcp", "-m", "string", "--algo", "bm", "--string", name, "-j", "REJECT", "--reject-with", "tcp-reset")
}

// noTimeExceeded makes every router of the ISP path send no ICMP time
// exceeded.
func (l *lab) noTimeExceeded() {
	l.t.Helper()
	for _, ns := range []string{l.censor, l.isp, l.transit} {
		l.iptablesIn(ns, "-A", "OUTPUT", "-p", "icmp", "--icmp-type", "time-exceeded", "-j", "DROP")
	}
}

// tcpPathCases are TestLabPath's scenarios of path evidence over TCP:
// resets on the server name placed by reset traces, and silent ports
// placed (or scoped as this network's policy) by SYN traces. The ISP
// path: the home router is hop 1, the ISP's router hop 2 (AS64500), the
// transit's hop 3 (AS64510), the servers hop 4.
func tcpPathCases() []pathCase {
	return []pathCase{
		{"path-sni-reset-in-isp", func(l *lab) {
			// An SNI filter in the ISP resets the couriers' name.
			l.ispResetOn("courier.push.apple.com")
		}, func(t *testing.T, s *storedRun, rep *report) {
			wantService(t, rep, push, "blocked", "sni.filtering")
			wantService(t, rep, identity, "ok", "")
			wantApp(t, rep, "imessage", appBlocked)
			wantGroupEvidence(t, rep, push, "reset injected at hop 2, inside AS64500 (Lab ISP, the network you are on)")
			wantResetTrace(t, s, 2, 3, 4)
		}},
		{"path-sni-reset-no-path-probes", func(l *lab) {
			// The same filter measured with --no-path-probes: no trace,
			// no place, and push, whose couriers span four /24s, still
			// blocked. The run's time, next to the traced one's, is what
			// the reset trace adds.
			l.args = append(l.args, "--no-path-probes")
			l.ispResetOn("courier.push.apple.com")
		}, func(t *testing.T, s *storedRun, rep *report) {
			for _, o := range s.Observations {
				if o.Step == measurements.StepTrace {
					t.Errorf("trace step to %s:%d with --no-path-probes", o.Address, o.Port)
				}
			}
			wantService(t, rep, push, "blocked", "sni.filtering")
			for _, e := range rep.Endpoints {
				if strings.Contains(e.Evidence, "reset injected") {
					t.Errorf("%s placed with no path probe: %s", e.Target, e.Evidence)
				}
			}
		}},
		{"path-drop-port-5223-no-path-probes", func(l *lab) {
			// 5223 dropped toward Apple, --no-path-probes: no SYN trace,
			// the verdict as before.
			l.args = append(l.args, "--no-path-probes")
			l.ispForward("-d", appleBlock, "-p", "tcp", "--dport", "5223", "-j", "DROP")
		}, func(t *testing.T, s *storedRun, rep *report) {
			for _, o := range s.Observations {
				if o.Step == measurements.StepTrace {
					t.Errorf("trace step to %s:%d with --no-path-probes", o.Address, o.Port)
				}
			}
			wantService(t, rep, push, "degraded", "port.filtering")
		}},
		{"path-sni-reset-one-prefix-in-isp", func(l *lab) {
			// Every identity name reset in the ISP: identity's servers
			// share one /24, so only the reset's place, before the
			// servers' hop, calls it blocked.
			for _, name := range l.plan.ServerNames(identity) {
				l.ispResetOn(name)
			}
		}, func(t *testing.T, s *storedRun, rep *report) {
			wantService(t, rep, identity, "blocked", "sni.filtering")
			wantService(t, rep, push, "ok", "")
			wantGroupEvidence(t, rep, identity, "reset injected at hop 2, inside AS64500 (Lab ISP, the network you are on)")
			wantResetTrace(t, s, 2, 3, 4)
		}},
		{"honest-path-front-end-resets-own-name", func(l *lab) {
			// One identity front end resets its own name (the server
			// side, hop 4) and accepts the control name: one prefix, no
			// censor. Not blocked, not degraded.
			l.iptablesIn(l.internet, "-A", "INPUT", "-d", identityBlock, "-p", "tcp", "-m", "string", "--algo", "bm",
				"--string", "init.ess.apple.com", "-j", "REJECT", "--reject-with", "tcp-reset")
		}, func(t *testing.T, s *storedRun, rep *report) {
			wantService(t, rep, identity, "ok", "")
			wantApp(t, rep, "imessage", appWorking)
			wantGroupEvidence(t, rep, identity, "the reset comes only when the ClientHello reaches the server's own hop (4)")
			wantResetTrace(t, s, 3, 4, 4)
		}},
		{"path-sni-reset-no-icmp", func(l *lab) {
			// The ISP's SNI filter, and routers that send no ICMP: the
			// reset's TTL still numbers the hop, its network is unknown.
			l.ispResetOn("courier.push.apple.com")
			l.noTimeExceeded()
		}, func(t *testing.T, s *storedRun, rep *report) {
			wantService(t, rep, push, "blocked", "sni.filtering")
			wantGroupEvidence(t, rep, push, "reset injected at hop 2, a router whose network is unknown")
			wantResetTrace(t, s, 2, 3, 4)
		}},
		{"path-drop-port-5223-to-apple-in-isp", func(l *lab) {
			// The ISP drops 5223 toward Apple only.
			l.ispForward("-d", appleBlock, "-p", "tcp", "--dport", "5223", "-j", "DROP")
		}, func(t *testing.T, s *storedRun, rep *report) {
			wantService(t, rep, push, "degraded", "port.filtering")
			wantApp(t, rep, "imessage", appDegraded)
			wantGroupEvidence(t, rep, push, "SYNs to port 5223 are dropped at hop 2, inside AS64500 (Lab ISP, the network you are on)")
			wantSYNTrace(t, s, 2)
		}},
		{"path-drop-port-5223-no-icmp", func(l *lab) {
			// The same drop, routers sending no ICMP: place unknown,
			// the verdict unchanged.
			l.ispForward("-d", appleBlock, "-p", "tcp", "--dport", "5223", "-j", "DROP")
			l.noTimeExceeded()
		}, func(t *testing.T, s *storedRun, rep *report) {
			wantService(t, rep, push, "degraded", "port.filtering")
			wantGroupEvidence(t, rep, push, "where SYNs to port 5223 stop is unknown")
		}},
		{"honest-path-web-only-firewall", func(l *lab) {
			// A hotel firewall in the ISP: only DNS and TCP and UDP 80
			// and 443 leave, toward every destination. 5223 and the call
			// ports are this network's policy, placed at hop 2.
			for _, proto := range []string{"tcp", "udp"} {
				l.ispForward("-p", proto, "-m", "multiport", "!", "--dports", "53,80,443", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP")
			}
		}, func(t *testing.T, s *storedRun, rep *report) {
			wantService(t, rep, push, "ok", "")
			wantService(t, rep, call, "restricted", "")
			wantApp(t, rep, "imessage", appWorking)
			wantGroupEvidence(t, rep, push, "this network closes the port for every destination (its policy)")
			wantSYNTrace(t, s, 2)
		}},
		{"path-apple-address-blocked-outright", func(l *lab) {
			// The ISP drops everything to the call relays' range: UDP
			// and TCP to the relays stop at hop 2, a control passes.
			l.ispForward("-d", callBlock, "-j", "DROP")
		}, func(t *testing.T, s *storedRun, rep *report) {
			wantService(t, rep, call, "blocked", "udp.path_drop")
			wantService(t, rep, push, "ok", "")
			wantApp(t, rep, "imessage", appWorking)
			wantApp(t, rep, "facetime", appBlocked)
			wantEvidence(t, rep, "dropped at hop 2, inside AS64500 (Lab ISP, the network you are on)")
			wantEvidence(t, rep, "TCP to the same address stops there too: the Apple address is blocked outright")
			wantTrace(t, s, 2)
		}},
		{"honest-path-call-host-down", func(l *lab) {
			// The relays' hosts are down: every router passes their
			// flows, nothing answers. Not blocked.
			l.iptablesIn(l.internet, "-A", "INPUT", "-d", callBlock, "-j", "DROP")
		}, func(t *testing.T, s *storedRun, rep *report) {
			wantService(t, rep, call, "inconclusive", "")
			wantApp(t, rep, "imessage", appWorking)
			wantEvidence(t, rep, "where the datagrams stop is unknown")
		}},
	}
}

// wantGroupEvidence checks that an endpoint of group says words.
func wantGroupEvidence(t *testing.T, rep *report, group, words string) {
	t.Helper()
	var seen []string
	for _, e := range rep.Endpoints {
		if e.Group == group {
			if strings.Contains(e.Evidence, words) {
				return
			}
			seen = append(seen, e.Evidence)
		}
	}
	t.Errorf("no %s endpoint's evidence says %q:\n%s", group, words, strings.Join(seen, "\n"))
}

// wantResetTrace checks that a reset trace drew the reset from resetTTL
// with the server at destHop, the stop past hop, and logs what each
// reset trace cost.
func wantResetTrace(t *testing.T, s *storedRun, hop, resetTTL, destHop int) {
	t.Helper()
	var seen []string
	found := false
	for _, o := range s.Observations {
		if o.Step != measurements.StepTrace || o.Trace == nil || !o.Trace.IsReset() {
			continue
		}
		d := o.Trace
		t.Logf("reset trace %s:%d: %d ClientHellos, %d probes in all, %s; reset TTL %d, stop %+v", o.Address, o.Port, len(d.Tries), d.Probes, o.Duration, d.ResetTTL, d.Stop)
		if d.Stop.Known && d.Stop.Hop == hop && d.ResetTTL == resetTTL && d.Stop.DestinationHop == destHop {
			found = true
		}
		seen = append(seen, fmt.Sprintf("reset TTL %d %+v", d.ResetTTL, d.Stop))
	}
	if !found {
		t.Errorf("no reset trace with the reset from TTL %d past hop %d, server at hop %d: %v", resetTTL, hop, destHop, seen)
	}
}

// wantSYNTrace checks that a SYN trace placed the stop at hop.
func wantSYNTrace(t *testing.T, s *storedRun, hop int) {
	t.Helper()
	wantTraceWhere(t, s, hop, func(d *measurements.TraceDetails) bool { return !d.IsReset() && d.Test.Network == "tcp" })
}
