//go:build lab

package lab

import (
	"fmt"
	"slices"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// The words of analyze's JSON (analysis/FORMAT.md).
const (
	verdictOK           = "ok"
	verdictDegraded     = "degraded"
	verdictBlocked      = "blocked"
	verdictFailed       = "failed"
	verdictInconclusive = "inconclusive"
	verdictUnreachable  = "unreachable"
	verdictRestricted   = "restricted"

	appWorking      = "working"
	appDegraded     = "degraded"
	appBlocked      = "blocked"
	appDown         = "down"
	appInconclusive = "inconclusive"
	appUnreachable  = "unreachable"
	appRestricted   = "restricted"

	networkOK             = "ok"
	networkUnstable       = "unstable"
	networkPartial        = "partial"
	networkNoConnectivity = "no_connectivity"

	serviceControl = measurements.GroupControl
)

// oneOf is a set of accepted words, written "a|b".
func oneOf(words ...string) string { return strings.Join(words, "|") }

func accepts(set, word string) bool { return slices.Contains(strings.Split(set, "|"), word) }

// want is what analyze must say about a scenario's run.
type want struct {
	// network is the accepted network statuses.
	network string
	// services gives, for every service of the report, the accepted
	// verdicts and the method that must be among its methods ("" for
	// none).
	services map[string]serviceWant
	// apps gives the accepted verdicts of every app.
	apps map[string]string
	// alsoBlocked are groups besides the services above whose endpoints
	// the censor does block (the control hosts' QUIC when it drops all
	// of QUIC): a blocked verdict there is true.
	alsoBlocked []string
	// reasons gives, for some services, words their reason must contain.
	reasons map[string]string
	// dns gives, for some targets, what their DNS verdict must say.
	dns map[string]dnsWant
}

// dnsWant is what a target's DNS verdict must say: its verdict and scope
// ("" for none), a late answer it must record and words its evidence
// must contain ("" for none).
type dnsWant struct {
	verdict, scope, late, words string
}

type serviceWant struct {
	verdict string
	method  string
}

// allServices is each service's want, for scenarios where most agree.
func allServices(w serviceWant, except map[string]serviceWant) map[string]serviceWant {
	out := map[string]serviceWant{}
	for _, s := range []string{measurements.GroupPush, measurements.GroupIdentity, measurements.GroupCall, measurements.GroupQUIC} {
		out[s] = w
		if e, ok := except[s]; ok {
			out[s] = e
		}
	}
	return out
}

// check returns every way rep differs from w, and every blocked verdict
// of a group w does not call blocked or degraded: nothing may be called
// blocked where nothing is.
func (w want) check(rep *report) []string {
	var problems []string
	if !accepts(w.network, rep.Network.Status) {
		problems = append(problems, fmt.Sprintf("network.status = %q (%s), want %s", rep.Network.Status, rep.Network.Reason, w.network))
	}
	seen := map[string]bool{}
	for _, s := range rep.Services {
		seen[s.Service] = true
		sw, ok := w.services[s.Service]
		if !ok {
			problems = append(problems, fmt.Sprintf("service %q in the report, not in the scenario", s.Service))
			continue
		}
		if !accepts(sw.verdict, s.Verdict) {
			problems = append(problems, fmt.Sprintf("service %s: verdict %q, methods %v (%s), want %s", s.Service, s.Verdict, s.Methods, s.Reason, sw.verdict))
		}
		if sw.method != "" && !slices.Contains(s.Methods, sw.method) {
			problems = append(problems, fmt.Sprintf("service %s: methods %v, want %s among them", s.Service, s.Methods, sw.method))
		}
	}
	for s := range w.services {
		if !seen[s] {
			problems = append(problems, fmt.Sprintf("service %s missing from the report", s))
		}
	}
	seen = map[string]bool{}
	for _, a := range rep.Apps {
		seen[a.App] = true
		aw, ok := w.apps[a.App]
		if !ok {
			problems = append(problems, fmt.Sprintf("app %q in the report, not in the scenario", a.App))
			continue
		}
		if !accepts(aw, a.Verdict) {
			problems = append(problems, fmt.Sprintf("app %s: verdict %q (%s), want %s", a.App, a.Verdict, a.Reason, aw))
		}
	}
	for a := range w.apps {
		if !seen[a] {
			problems = append(problems, fmt.Sprintf("app %s missing from the report", a))
		}
	}

	for _, sv := range rep.Services {
		if words, ok := w.reasons[sv.Service]; ok && !strings.Contains(sv.Reason, words) {
			problems = append(problems, fmt.Sprintf("service %s: reason %q, want it to say %q", sv.Service, sv.Reason, words))
		}
	}
	for target, dw := range w.dns {
		i := slices.IndexFunc(rep.DNS, func(d dnsReport) bool { return d.Target == target })
		if i < 0 {
			problems = append(problems, fmt.Sprintf("DNS of %s missing from the report", target))
			continue
		}
		d := rep.DNS[i]
		if d.Verdict != dw.verdict || d.Scope != dw.scope || dw.late != "" && !slices.Contains(d.LateAnswers, dw.late) || !strings.Contains(d.Evidence, dw.words) {
			problems = append(problems, fmt.Sprintf("DNS of %s: %s, scope %q, late answers %v (%s); want %s, scope %q, late answer %q, words %q",
				target, d.Verdict, d.Scope, d.LateAnswers, d.Evidence, dw.verdict, dw.scope, dw.late, dw.words))
		}
	}

	mayBlock := func(group string) bool {
		if slices.Contains(w.alsoBlocked, group) {
			return true
		}
		sw, ok := w.services[group]
		return ok && (accepts(sw.verdict, verdictBlocked) || accepts(sw.verdict, verdictDegraded))
	}
	for _, e := range rep.Endpoints {
		if e.Verdict == verdictBlocked && !mayBlock(e.Group) {
			problems = append(problems, fmt.Sprintf("endpoint %s %s:%d/%s (%s) called blocked (%s) where nothing is", e.Target, e.Address, e.Port, e.Transport, e.Group, e.Method))
		}
	}
	for _, d := range rep.DNS {
		if d.Verdict == verdictBlocked && !mayBlock(d.Group) {
			problems = append(problems, fmt.Sprintf("DNS of %s (%s) called blocked (%s) where nothing is", d.Host, d.Group, d.Method))
		}
	}
	return problems
}

// sign is something the run's observations must show for the scenario's
// technique to have applied: the lab checking itself, so that a verdict
// failure is never the lab's own.
type sign struct {
	target string // "" for any target
	// kind is "dns/system", "dns/udp", "dns/doh", "tcp", "tls",
	// "tls/control", "quic" or "udp".
	kind string
	port int // 0 for any (and for DNS)
	// result is "ok", a failure string, or "skipped:" and a skip reason;
	// several accepted results are written "a|b".
	result string
	// answer, for DNS, is an address the first response must carry.
	answer string
	// late, for DNS, requires a late response to the same query.
	late bool
	// window, for a plain DNS lookup, is how its listening window must
	// have ended: windowFull, or the ListenCut it was cut for; "" for
	// either.
	window string
}

// windowFull is the sign's window of a listening window that ran out.
const windowFull = "full"

func (s sign) String() string {
	target := s.target
	if target == "" {
		target = "any target"
	}
	d := fmt.Sprintf("%s %s", target, s.kind)
	if s.port != 0 {
		d += fmt.Sprintf(":%d", s.port)
	}
	d += " " + s.result
	if s.answer != "" {
		d += " answering " + s.answer
	}
	if s.late {
		d += " with a late response"
	}
	if s.window != "" {
		d += " with its listening window " + s.window
	}
	return d
}

// kindOf names an observation's kind as signs do.
func kindOf(o *measurements.Observation) string {
	switch {
	case o.Step == measurements.StepDNS && o.DNS != nil:
		return "dns/" + o.DNS.Engine
	case o.Step == measurements.StepTLS && o.Control:
		return "tls/control"
	}
	return string(o.Step)
}

func resultOf(o *measurements.Observation) string {
	switch {
	case o.Skipped != "":
		return "skipped:" + o.Skipped
	case o.Failure != "":
		return o.Failure
	}
	return "ok"
}

func (s sign) matches(o *measurements.Observation) bool {
	if (s.target != "" && o.Target != s.target) || kindOf(o) != s.kind || (s.port != 0 && o.Port != s.port) || !accepts(s.result, resultOf(o)) {
		return false
	}
	if s.answer != "" && (o.DNS == nil || !slices.ContainsFunc(o.DNS.Answers, func(a measurements.DNSAnswer) bool { return a.Data == s.answer })) {
		return false
	}
	if s.late && (o.DNS == nil || len(o.DNS.Late) == 0) {
		return false
	}
	if s.window != "" {
		if o.DNS == nil {
			return false
		}
		ended := o.DNS.ListenCut
		if ended == "" {
			ended = windowFull
		}
		return ended == s.window
	}
	return true
}

// missingSigns returns the signs no observation shows.
func missingSigns(signs []sign, obs []measurements.Observation) []sign {
	var missing []sign
	for _, s := range signs {
		if !slices.ContainsFunc(obs, func(o measurements.Observation) bool { return s.matches(&o) }) {
			missing = append(missing, s)
		}
	}
	return missing
}

// summary is a report's verdicts on one line, for the lab's log.
func (rep *report) summary() string {
	parts := []string{"network " + rep.Network.Status}
	for _, s := range rep.Services {
		p := s.Service + " " + s.Verdict
		if len(s.Methods) > 0 {
			p += " " + strings.Join(s.Methods, ",")
		}
		parts = append(parts, p)
	}
	for _, a := range rep.Apps {
		parts = append(parts, a.App+" "+a.Verdict)
	}
	return strings.Join(parts, "; ")
}

// blockedAnywhere lists every blocked or degraded verdict of rep: apps,
// services, DNS names and endpoints.
func (rep *report) blockedAnywhere() []string {
	var out []string
	for _, a := range rep.Apps {
		if a.Verdict == appBlocked || a.Verdict == appDegraded {
			out = append(out, fmt.Sprintf("app %s %s (%s)", a.App, a.Verdict, a.Reason))
		}
	}
	for _, s := range rep.Services {
		if s.Verdict == verdictBlocked || s.Verdict == verdictDegraded {
			out = append(out, fmt.Sprintf("service %s %s %v (%s)", s.Service, s.Verdict, s.Methods, s.Reason))
		}
	}
	for _, d := range rep.DNS {
		if d.Verdict == verdictBlocked {
			out = append(out, fmt.Sprintf("DNS of %s blocked (%s)", d.Host, d.Method))
		}
	}
	for _, e := range rep.Endpoints {
		if e.Verdict == verdictBlocked {
			out = append(out, fmt.Sprintf("endpoint %s %s:%d/%s blocked (%s)", e.Target, e.Address, e.Port, e.Transport, e.Method))
		}
	}
	return out
}
