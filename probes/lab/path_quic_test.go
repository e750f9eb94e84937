//go:build lab

package lab

import (
	"fmt"
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// The lab's control QUIC host is the default catalog's: control-google-quic,
// www.google.com on UDP 443, served by the fake internet's QUIC server
// (which listens on every address on the catalog's QUIC ports).
const controlQUICTarget = "control-google-quic"

// controlQUICAddr is the IPv4 address of the lab's control QUIC host.
func controlQUICAddr(t testing.TB, plan *Plan) string {
	t.Helper()
	for _, tg := range plan.Catalog.Targets {
		if tg.Name == controlQUICTarget && tg.Group == measurements.GroupControl && tg.Has("quic") {
			return hostAddresses[tg.Host][0]
		}
	}
	t.Fatalf("the default catalog has no control QUIC target %s: the QUIC path cases need one", controlQUICTarget)
	return ""
}

// noTimeExceeded makes every router of the ISP path send no ICMP time
// exceeded.
func noTimeExceeded(l *lab) {
	for _, ns := range []string{l.censor, l.isp, l.transit} {
		l.iptablesIn(ns, "-A", "OUTPUT", "-p", "icmp", "--icmp-type", "time-exceeded", "-j", "DROP")
	}
}

// quicPathCases are TestLabPath's scenarios of QUIC to Apple: Private
// Relay's mask.icloud.com on UDP 443, traced in the confirmation pass.
func quicPathCases() []pathCase {
	// onlyToControl is the censor: the ISP's router lets UDP 443 through
	// only toward the control QUIC host.
	onlyToControl := func(l *lab) {
		l.ispForward("-p", "udp", "--dport", "443", "!", "-d", controlQUICAddr(l.t, l.plan), "-j", "DROP")
	}
	closedForAll := func(l *lab) { l.ispForward("-p", "udp", "--dport", "443", "-j", "DROP") }
	return []pathCase{
		{"path-quic-only-toward-control", onlyToControl, func(t *testing.T, s *storedRun, rep *report) {
			// Private Relay's QUIC blocked (its TCP fallback works, so
			// the service is degraded), with the hop.
			wantService(t, rep, quicSvc, verdictDegraded, "quic.timeout")
			wantEndpoint(t, rep, "mask", verdictBlocked, "", "QUIC to Apple's relay is dropped at hop 2, inside AS64500 (Lab ISP, the network you are on)")
			wantServiceReason(t, rep, quicSvc, "where: hop 2, inside AS64500")
			wantQUICTrace(t, s, 2)
			wantService(t, rep, push, "ok", "")
			wantService(t, rep, identity, "ok", "")
			wantApp(t, rep, "imessage", appWorking)
			wantApp(t, rep, "facetime", appWorking)
		}},
		{"path-quic-only-toward-control-no-icmp", func(l *lab) { onlyToControl(l); noTimeExceeded(l) }, func(t *testing.T, s *storedRun, rep *report) {
			// The same censor, routers silent: the block stands on its
			// controls (QUIC to the control host works), its place is
			// unknown and said so.
			wantService(t, rep, quicSvc, verdictDegraded, "quic.timeout")
			wantEndpoint(t, rep, "mask", verdictBlocked, "", "where the datagrams stop is unknown")
			wantApp(t, rep, "imessage", appWorking)
			wantApp(t, rep, "facetime", appWorking)
		}},
		{"path-quic-only-toward-control-no-path-probes", func(l *lab) {
			// The same censor, measured with --no-path-probes: no trace,
			// and the block stands on its controls alone, unplaced.
			l.args = append(l.args, "--no-path-probes")
			onlyToControl(l)
		}, func(t *testing.T, s *storedRun, rep *report) {
			for _, o := range s.Observations {
				if o.Step == measurements.StepTrace {
					t.Errorf("trace of %s:%d with --no-path-probes", o.Address, o.Port)
					break
				}
			}
			wantService(t, rep, quicSvc, verdictDegraded, "quic.timeout")
			wantApp(t, rep, "imessage", appWorking)
		}},
		{"honest-path-quic-closed-for-all", closedForAll, func(t *testing.T, s *storedRun, rep *report) {
			// A network that blocks QUIC for everyone: its policy.
			wantEndpoint(t, rep, "mask", "restricted", "network_policy", "this network's policy for every destination")
			wantQUICTrace(t, s, 2)
			wantApp(t, rep, "imessage", appWorking)
			wantApp(t, rep, "facetime", appWorking)
		}},
		{"honest-path-quic-closed-for-all-no-icmp", func(l *lab) { closedForAll(l); noTimeExceeded(l) }, func(t *testing.T, s *storedRun, rep *report) {
			// The same, routers silent: the place is unknown, and the
			// verdict stays what the handshakes say (QUIC blocked or
			// broken everywhere), never blocked.
			wantEndpoint(t, rep, "mask", verdictInconclusive, "", "where the datagrams stop is unknown")
			wantApp(t, rep, "imessage", appWorking)
			wantApp(t, rep, "facetime", appWorking)
		}},
	}
}

// wantEndpoint checks the verdict, the scope (when scope is set) and the
// words of every endpoint of target.
func wantEndpoint(t *testing.T, rep *report, target, verdict, scope, words string) {
	t.Helper()
	found := false
	for _, e := range rep.Endpoints {
		if e.Target != target {
			continue
		}
		found = true
		if e.Verdict != verdict || scope != "" && e.Scope != scope || !strings.Contains(e.Evidence, words) {
			t.Errorf("%s %s:%d: %s (scope %q): %s\nwant %s (scope %q) saying %q", target, e.Address, e.Port, e.Verdict, e.Scope, e.Evidence, verdict, scope, words)
		}
	}
	if !found {
		t.Errorf("no endpoint of %s", target)
	}
}

// wantServiceReason checks that a service's reason says words.
func wantServiceReason(t *testing.T, rep *report, service, words string) {
	t.Helper()
	for _, sv := range rep.Services {
		if sv.Service == service {
			if !strings.Contains(sv.Reason, words) {
				t.Errorf("service %s: reason %q lacks %q", service, sv.Reason, words)
			}
			return
		}
	}
	t.Errorf("no service %s", service)
}

// wantQUICTrace checks that a trace of a QUIC endpoint, its probes
// carrying QUIC v1 Initials, placed the stop at hop.
func wantQUICTrace(t *testing.T, s *storedRun, hop int) {
	t.Helper()
	var seen []string
	for _, o := range s.Observations {
		if o.Step != measurements.StepTrace || o.Trace == nil || o.Group != quicSvc {
			continue
		}
		if o.Trace.Test.Payload != measurements.ArrivalQUICv1 {
			t.Errorf("trace of %s:%d carried %q, want a QUIC v1 Initial", o.Address, o.Port, o.Trace.Test.Payload)
		}
		if o.Trace.Stop.Known && o.Trace.Stop.Hop == hop {
			return
		}
		seen = append(seen, fmt.Sprintf("vs %s %s: %+v", o.Trace.Control.Network, o.Trace.ControlTarget, o.Trace.Stop))
	}
	t.Errorf("no QUIC trace stopped at hop %d: %v", hop, seen)
}
