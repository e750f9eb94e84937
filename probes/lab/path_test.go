//go:build lab

package lab

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// defaultCallPorts are the UDP ports of the default catalog's call
// targets (FaceTime's ranges from Apple's firewall page).
const defaultCallPorts = "3478:3497,16384:16402"

// TestLabPath runs the default catalog, whose call hosts are not known to
// answer STUN, on the ISP path (isp_test.go): arrival datagrams and traces
// must decide FaceTime where the path shows where datagrams stop, and
// nothing may be called blocked where it does not.
//
//	flock /tmp/reachprobe-lab.lock go test -count=1 -tags lab -v -run 'TestLabPath/NAME' ./probes/lab/
func TestLabPath(t *testing.T) {
	plan := defaultCatalogPlan(t)
	cases := []pathCase{
		{"path-apple-udp-dropped-in-isp", func(l *lab) {
			// The Russian pattern: the ISP drops UDP to Apple's 17/8,
			// one hop past the home router; TCP is untouched.
			l.ispForward("-p", "udp", "-d", appleBlock, "-j", "DROP")
		}, func(t *testing.T, s *storedRun, rep *report) {
			wantService(t, rep, call, "blocked", "udp.path_drop")
			wantService(t, rep, push, "ok", "")
			wantService(t, rep, identity, "ok", "")
			wantApp(t, rep, "imessage", appWorking)
			wantApp(t, rep, "facetime", appBlocked)
			wantEvidence(t, rep, "dropped at hop 2, inside AS64500 (Lab ISP, the network you are on)")
			wantTrace(t, s, 2)
		}},
		{"path-apple-udp-dropped-no-path-probes", func(l *lab) {
			// The same ISP drop, measured with --no-path-probes: no
			// arrival datagram, no trace, and FaceTime stays undecided
			// with the default catalog (Apple's hosts owe no answer).
			l.args = append(l.args, "--no-path-probes")
			l.ispForward("-p", "udp", "-d", appleBlock, "-j", "DROP")
		}, func(t *testing.T, s *storedRun, rep *report) {
			for _, o := range s.Observations {
				if o.Step == measurements.StepArrival || o.Step == measurements.StepTrace {
					t.Errorf("%s step to %s:%d with --no-path-probes", o.Step, o.Address, o.Port)
					break
				}
			}
			wantService(t, rep, call, "inconclusive", "")
			wantApp(t, rep, "imessage", appWorking)
		}},
		{"honest-path-call-ports-closed", func(l *lab) {
			// The network closes FaceTime's UDP ports for every
			// destination, at the ISP: its policy.
			l.ispForward("-p", "udp", "-m", "multiport", "--dports", defaultCallPorts, "-j", "DROP")
		}, func(t *testing.T, s *storedRun, rep *report) {
			wantService(t, rep, call, "restricted", "")
			wantApp(t, rep, "imessage", appWorking)
		}},
		{"honest-path-apple-silent", func(l *lab) {
			// Apple's hosts ignore datagrams on the call ports; nothing
			// on the path drops them.
			l.iptablesIn(l.internet, "-A", "INPUT", "-d", appleBlock, "-p", "udp", "-m", "multiport", "--dports", defaultCallPorts, "-j", "DROP")
		}, func(t *testing.T, s *storedRun, rep *report) {
			wantService(t, rep, call, "inconclusive", "")
			wantApp(t, rep, "imessage", appWorking)
		}},
		{"honest-path-apple-port-unreachable", func(l *lab) {
			// Nothing listens on the call ports of Apple's hosts: they
			// answer port unreachable, with the kernel's default rate
			// limit. The datagrams arrive.
			l.iptablesIn(l.internet, "-A", "INPUT", "-d", appleBlock, "-p", "udp", "-m", "multiport", "--dports", defaultCallPorts,
				"-j", "REJECT", "--reject-with", "icmp-port-unreachable")
		}, func(t *testing.T, s *storedRun, rep *report) {
			wantService(t, rep, call, "ok", "")
			wantApp(t, rep, "facetime", appWorking)
		}},
		{"path-no-icmp", func(l *lab) {
			// The ISP's drop, and routers that send no ICMP: the place
			// is unknown, and nothing is read from it.
			l.ispForward("-p", "udp", "-d", appleBlock, "-j", "DROP")
			for _, ns := range []string{l.censor, l.isp, l.transit} {
				l.iptablesIn(ns, "-A", "OUTPUT", "-p", "icmp", "--icmp-type", "time-exceeded", "-j", "DROP")
			}
		}, func(t *testing.T, s *storedRun, rep *report) {
			for _, sv := range rep.Services {
				if sv.Service == call && sv.Verdict == "blocked" {
					t.Errorf("call blocked with no path evidence: %s", sv.Reason)
				}
			}
			wantService(t, rep, push, "ok", "")
			wantApp(t, rep, "imessage", appWorking)
			wantEvidence(t, rep, "where the datagrams stop is unknown")
		}},
	}
	cases = append(append(append(cases, quicPathCases()...), payloadPathCases()...), tcpPathCases()...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l := newISPLab(t, plan)
			l.startInternet(false)
			c.censor(l)
			r := l.runProbeCatalog(1, "")
			t.Logf("%s: run took %s", c.name, r.duration.Round(100*time.Millisecond))
			if r.err != nil {
				t.Fatalf("reachprobe run: %v\n%s\n%s", r.err, r.stdout, r.stderr)
			}
			s, err := r.observations()
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range s.Observations {
				if o.Step == measurements.StepTrace && o.Trace != nil {
					t.Logf("trace %s:%d vs %s %s: %d probes (%d per flow) in %s, stop %+v", o.Address, o.Port, o.Trace.Control.Network,
						o.Trace.ControlTarget, o.Trace.Probes, o.Trace.Probes/2, o.Duration.Round(100*time.Millisecond), o.Trace.Stop)
				}
			}
			raw, rep, err := r.analyze()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: analyze says %s", c.name, rep.summary())
			c.check(t, s, rep)
			if strings.HasPrefix(c.name, "honest-") {
				for _, p := range rep.blockedAnywhere() {
					t.Errorf("an honest network called blocked: %s", p)
				}
			}
			checkReports(t, r, c.name)
			for _, format := range []string{"html", "csv", "json", "ooni"} {
				out, err := reachprobe("report", "--db="+r.db, "--format="+format, "-o", "-")
				if err != nil {
					continue
				}
				for _, hop := range []string{censorLANAddr, ispAddr, transitAddr} {
					if strings.Contains(out, hop) {
						t.Errorf("report --format %s holds hop address %s", format, hop)
					}
				}
			}
			if t.Failed() {
				t.Logf("analyze:\n%s\nprobe output:\n%s\n%s", raw, r.stdout, r.stderr)
			}
		})
	}
}

// pathCase is one scenario of TestLabPath: a censor (or an honest quirk)
// on the ISP path, and what the run and its analysis must show.
type pathCase struct {
	name   string
	censor func(l *lab)
	check  func(t *testing.T, s *storedRun, rep *report)
}

func wantService(t *testing.T, rep *report, service, verdict, method string) {
	t.Helper()
	for _, sv := range rep.Services {
		if sv.Service != service {
			continue
		}
		if sv.Verdict != verdict || method != "" && (len(sv.Methods) == 0 || sv.Methods[0] != method) {
			t.Errorf("service %s: %s %v (%s), want %s %s", service, sv.Verdict, sv.Methods, sv.Reason, verdict, method)
		}
		return
	}
	t.Errorf("no service %s", service)
}

func wantApp(t *testing.T, rep *report, app, verdict string) {
	t.Helper()
	for _, a := range rep.Apps {
		if a.App == app {
			if a.Verdict != verdict {
				t.Errorf("app %s: %s (%s), want %s", app, a.Verdict, a.Reason, verdict)
			}
			return
		}
	}
	t.Errorf("no app %s", app)
}

// wantEvidence checks that a call endpoint's evidence says words.
func wantEvidence(t *testing.T, rep *report, words string) {
	t.Helper()
	wantGroupEvidence(t, rep, call, words)
}

// wantTrace checks that a trace step placed the stop at hop.
func wantTrace(t *testing.T, s *storedRun, hop int) {
	t.Helper()
	wantTraceWhere(t, s, hop, func(*measurements.TraceDetails) bool { return true })
}

// wantTraceWhere checks that a trace step for which which is true placed
// the stop at hop.
func wantTraceWhere(t *testing.T, s *storedRun, hop int, which func(*measurements.TraceDetails) bool) {
	t.Helper()
	var stops []string
	for _, o := range s.Observations {
		if o.Step == measurements.StepTrace && o.Trace != nil && which(o.Trace) {
			if o.Trace.Stop.Known && o.Trace.Stop.Hop == hop {
				return
			}
			stops = append(stops, fmt.Sprintf("%+v (%d probes)", o.Trace.Stop, o.Trace.Probes))
		}
	}
	t.Errorf("no trace stopped at hop %d: %v", hop, stops)
}
