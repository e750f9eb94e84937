package analysis

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// judged is one endpoint's verdict in the making.
type judged struct {
	v      EndpointVerdict
	e      *endpointObs
	family string
	// candidate is the blocking method the endpoint's own evidence points
	// at; corroborate decides whether it is enough to call it blocked.
	candidate string
	// lossLike says the candidate rests on silence (timeouts), which
	// packet loss can imitate; resets, refusals and chains it cannot.
	lossLike bool
	// counted says the endpoint was measured and is not a forged address:
	// it counts when majorities of a group are taken.
	counted bool
	// tries counts the tries the candidate rests on.
	tries int
	// bare says the candidate rests on silence with nothing showing that
	// Apple's servers are up (no TCP into their networks worked): an
	// outage of Apple's network looks the same (see bareSilence).
	bare bool
}

// endpointJudge judges endpoints against the run's reference paths.
type endpointJudge struct {
	ix     *index
	ss     *seriesSet
	certs  *certBook
	net    *netState
	dns    map[string]dnsResult
	forged map[string]map[netip.Addr]bool // by target
	// lateOnly holds, by target, the addresses only late DNS responses
	// gave (judgeLateOnly).
	lateOnly map[string]map[netip.Addr]bool
}

func (j *endpointJudge) judge(e *endpointObs) *judged {
	t := e.target
	r := &judged{e: e, family: family(e.addr), v: EndpointVerdict{
		Target: t.Name, Group: t.Group, Host: t.Host, Address: e.key.address, Port: e.key.port,
		Transport: e.key.kind, Skipped: e.skipped,
	}}
	if j.forged[t.Name][e.addr] {
		j.judgeForged(r)
		return r
	}
	if j.lateOnly[t.Name][e.addr] && len(e.attempts) > 0 {
		judgeLateOnly(r)
		return r
	}
	if len(e.attempts) == 0 {
		r.v.Verdict = VerdictSkipped
		switch e.skipped {
		case measurements.SkipNoIPv6Route:
			r.v.Evidence = "not measured: this network has no IPv6 route, which is not a failure"
		case measurements.SkipBogon:
			r.v.Evidence = "not contacted: DNS gave a private or reserved address"
		default:
			r.v.Evidence = "not measured: " + e.skipped
		}
		return r
	}
	r.counted = true
	j.ss.confirmedOnly = false
	for _, a := range e.attempts {
		j.ss.confirmedOnly = j.ss.confirmedOnly || a.confirm
	}
	defer func() { j.ss.confirmedOnly = false }()
	switch e.key.kind {
	case transportTLS, transportTCP:
		j.judgeTCP(r)
	case transportQUIC:
		j.judgeQUIC(r)
	case transportUDP:
		j.judgeUDP(r)
	default:
		r.v.Verdict, r.v.Evidence = VerdictInconclusive, "unknown step "+e.key.kind
	}
	return r
}

// judgeForged judges an address that came only from a forged DNS answer:
// the block is DNS's, whatever the address did.
func (j *endpointJudge) judgeForged(r *judged) {
	d := j.dns[r.e.target.Name].verdict
	r.countAttempts()
	r.v.Verdict, r.v.Method = VerdictBlocked, d.Method
	r.v.Evidence = fmt.Sprintf("%s came from a forged DNS answer for %s (%s)", r.e.key.address, r.e.target.Host, d.Method)
}

// countAttempts counts r's tries, the ones that worked, and keeps the first
// failure: for endpoints judged by where their address came from, not by
// what their tries showed.
func (r *judged) countAttempts() {
	for _, a := range r.e.attempts {
		if o := mainOrConnect(a); o != nil {
			r.v.Attempts++
			if o.Failure == "" {
				r.v.Successes++
			} else if r.v.Failure == "" {
				r.v.Failure, r.v.Operation = o.Failure, o.Operation
			}
		}
	}
}

func mainOrConnect(a *attempt) *measurements.Observation {
	if a.connect != nil && a.connect.Failure != "" || a.main == nil {
		return a.connect
	}
	return a.main
}

// Classes of one try of a TCP or TLS endpoint.
const (
	classOK             = "ok"
	classCert           = "cert" // handshake completed, chain did not verify
	classConnectTimeout = "connect.timeout"
	classConnectReset   = "connect.reset"
	classConnectRefused = "connect.refused"
	classConnectOther   = "connect.other"
	classTLSTimeout     = "tls.timeout"
	classTLSReset       = "tls.reset" // reset or closed (EOF) during the handshake
	classTLSAlert       = "tls.alert"
	classTLSBlockPage   = "tls.page" // plaintext HTTP answered the ClientHello
	classTLSOther       = "tls.other"
	classLocal          = "local"   // this machine refused to send
	classReached        = "reached" // control handshakes: the server answered
)

func connectClass(f string) string {
	switch f {
	case failTimeout:
		return classConnectTimeout
	case failReset:
		return classConnectReset
	case failRefused, failAdminProhib:
		// An explicit reject, by the host or a firewall on the path:
		// judged like a refusal, never like silence.
		return classConnectRefused
	case failLocalFirewall:
		return classLocal
	}
	return classConnectOther
}

func handshakeClass(o *measurements.Observation) string {
	switch {
	case o.Failure == "":
		if o.TLS != nil && !o.TLS.Verified && o.TLS.VerifyFailure != "" {
			return classCert
		}
		return classOK
	case o.Operation == opConnect:
		return connectClass(o.Failure)
	case reached(o):
		return classCert
	case o.Failure == failTimeout:
		return classTLSTimeout
	case o.Failure == failReset || o.Failure == failEOF:
		return classTLSReset
	case o.Failure == failSSLHandshake:
		return classTLSAlert
	case o.Failure == failHTTPToTLS, o.TLS != nil && len(o.TLS.ServerBytes) > 0:
		return classTLSBlockPage
	case o.Failure == failLocalFirewall:
		return classLocal
	}
	return classTLSOther
}

// tryClass classifies one try of the target path; "" when it is missing.
func tryClass(a *attempt, kind string) (string, *measurements.Observation) {
	if a.connect != nil && a.connect.Failure != "" {
		return connectClass(a.connect.Failure), a.connect
	}
	if kind == transportTCP {
		if a.connect == nil {
			return "", nil
		}
		return classOK, a.connect
	}
	if a.main == nil {
		return "", nil
	}
	return handshakeClass(a.main), a.main
}

// controlClass classifies one control handshake; "" when there was none.
func controlClass(o *measurements.Observation) string {
	if o == nil {
		return ""
	}
	if reached(o) {
		return classReached
	}
	return handshakeClass(o)
}

func (r *judged) setFailure(ts tries) {
	for _, o := range ts.obs {
		if o.Failure != "" {
			r.v.Failure, r.v.Operation = o.Failure, o.Operation
			return
		}
	}
}

func (j *endpointJudge) judgeTCP(r *judged) {
	var ts tries
	for _, a := range r.e.attempts {
		c, o := tryClass(a, r.e.key.kind)
		if c == "" {
			continue
		}
		ts.classes = append(ts.classes, c)
		ts.obs = append(ts.obs, o)
		ts.controls = append(ts.controls, controlClass(a.control))
		ts.ctlObs = append(ts.ctlObs, a.control)
	}
	ts, residual := foldResidual(ts)
	if residual > 0 {
		defer func() {
			r.v.Evidence += fmt.Sprintf(" (%d later tries were reset before the server name was sent: the residual block censors keep after a trigger, read as the same block)", residual)
		}()
	}
	// Tries that could not connect say nothing about the handshake: they
	// are left out when judging a failing handshake, never when counting
	// successes.
	if r.e.key.kind == transportTLS && ts.count(classOK) == 0 {
		ts = dropUnconnected(ts)
		if j.net.unstable {
			ts = dropLostResets(ts)
		}
		if ts.all > len(ts.classes) {
			defer func() {
				r.v.Evidence += fmt.Sprintf(" (%d of %d tries left out: %s)", ts.all-len(ts.classes), ts.all, ts.why)
			}()
		}
	}
	if j.settleMixed(r, ts) {
		return
	}
	c := ts.classes[0]
	switch {
	case c == classLocal:
		j.localPolicy(r)
	case c == classTLSBlockPage:
		j.blockPage(r, ts)
	case c == classCert:
		j.judgeCert(r, ts)
	case strings.HasPrefix(c, "connect."):
		j.connectFailure(r, ts, c)
	case c == classTLSTimeout || c == classTLSReset:
		j.handshakeFailure(r, ts, c)
	case c == classTLSAlert:
		name := j.controlName(r)
		if allEqual(ts.controls, classTLSAlert) {
			r.v.Verdict = VerdictFailed
			r.v.Evidence = fmt.Sprintf("the server refused the handshake with a TLS alert%s, for %s and for %s alike: a server problem, not blocking", alertNote(ts.obs), j.serverName(r, ts), name)
			r.v.Control = fmt.Sprintf("the handshake with %s also got a TLS alert", name)
			return
		}
		r.v.Verdict = VerdictInconclusive
		r.v.Evidence = fmt.Sprintf("the handshake with %s ended in a TLS alert%s (%s); an alert comes from the server or a middlebox and does not tell which", j.serverName(r, ts), alertNote(ts.obs), r.v.Failure)
	default:
		r.v.Verdict = VerdictInconclusive
		r.v.Evidence = fmt.Sprintf("the handshake failed with %s", r.v.Failure)
	}
}

// settleMixed decides endpoints whose tries did not all fail the same way:
// it counts, sets the failure and returns true when nothing is left to
// judge.
func (j *endpointJudge) settleMixed(r *judged, ts tries) bool {
	n := len(ts.classes)
	r.v.Attempts, r.tries = max(n, ts.all), n
	r.v.Successes = ts.count(classOK)
	r.setFailure(ts)
	ok, cert := ts.count(classOK), ts.count(classCert)
	switch {
	case n == 0:
		r.v.Verdict, r.v.Evidence = VerdictInconclusive, "no try completed"
		return true
	case ok > 0 && cert > 0:
		r.v.Verdict = VerdictInconclusive
		r.v.Evidence = fmt.Sprintf("the chain verified in %d of %d tries and did not in %d", ok, n, cert)
		return true
	case ok > 0 && ok*2 >= n:
		r.v.Verdict = VerdictOK
		r.v.Evidence = fmt.Sprintf("worked in %d of %d tries", ok, n)
		if ok < n {
			r.v.Evidence += fmt.Sprintf(" (failed once or more with %s: not enough to call it blocked)", r.v.Failure)
		}
		return true
	case ok > 0:
		r.v.Verdict = VerdictInconclusive
		r.v.Evidence = fmt.Sprintf("worked in only %d of %d tries, failing otherwise with %s", ok, n, r.v.Failure)
		return true
	case len(ts.distinct()) > 1:
		r.v.Verdict = VerdictInconclusive
		r.v.Evidence = fmt.Sprintf("failed in different ways across %d tries (%s)", n, strings.Join(ts.distinct(), ", "))
		return true
	}
	return false
}

// connectFailure judges an endpoint whose connects all failed alike.
func (j *endpointJudge) connectFailure(r *judged, ts tries, c string) {
	n := len(ts.classes)
	what := fmt.Sprintf("TCP connects to %s failed with %s in %d of %d tries", hostPort(r.v.Address, r.v.Port), r.v.Failure, n, n)
	if c == classConnectOther {
		j.unattributable(r, what)
		return
	}
	r.lossLike = c == classConnectTimeout
	if ref := j.ss.otherPort(r.e.addr, r.v.Port); ref != nil {
		r.v.Control = fmt.Sprintf("port %d on the same address connected in %d of %d tries", ref.port, ref.successes, ref.attempts)
		r.v.Evidence = what + "; " + r.v.Control
		j.portScope(r, c)
		return
	}
	ref := j.ss.controlTCP(r.family)
	if ref == nil {
		j.unattributable(r, what)
		return
	}
	r.candidate = map[string]string{
		classConnectTimeout: MethodTCPTimeout, classConnectReset: MethodTCPReset, classConnectRefused: MethodTCPRefused,
	}[c]
	r.v.Control = fmt.Sprintf("control host %s (%s) connected in %d of %d tries", ref.target.Host, hostPort(ref.address, ref.port), ref.successes, ref.attempts)
	r.v.Evidence = what + ", on every port measured; " + r.v.Control
}

// portScope decides whom a port closed on an Apple server is closed for,
// from the connects the confirmation pass made to control hosts on the
// same port (PortCheck observations). A control host that accepted, or
// answered with a reset while Apple's server was silent, shows the port
// open toward other destinations: the block is aimed at Apple. Silence
// toward the control host too, or a reset from both, could be a firewall
// closing the port for everyone or the control host's own ways: the
// verdict says it cannot tell which, and claims nothing.
func (j *endpointJudge) portScope(r *judged, c string) {
	checks := j.ix.portChecks[portKey{port: r.v.Port, kind: transportTCP}]
	connected, refused, silent := 0, 0, 0
	for _, o := range checks {
		if family(parseAddr(o.Address)) != r.family {
			continue
		}
		switch {
		case o.Failure == "":
			connected++
		case o.Failure == failRefused || o.Failure == failReset:
			refused++
		default:
			silent++
		}
	}
	where := fmt.Sprintf("port %d", r.v.Port)
	switch {
	case connected > 0 || refused > 0 && c == classConnectTimeout:
		r.candidate = MethodPortFiltering
		r.lossLike = c == classConnectTimeout
		r.v.Control += fmt.Sprintf("; a control host answered on %s (the port is open toward other destinations, so this is aimed at Apple)", where)
		r.v.Evidence += fmt.Sprintf("; a control host answered on %s, so the port is open toward other destinations", where)
		if decided, note := j.portPath(r, true); !decided {
			r.v.Evidence += note
		}
	case connected+refused+silent == 0:
		r.v.Verdict, r.v.Suspected = VerdictInconclusive, MethodPortFiltering
		r.v.Evidence += fmt.Sprintf("; %s was not tried toward a non-Apple address, so whether this network closes it for every destination (its policy) or only toward Apple cannot be told", where)
	default:
		r.v.Verdict, r.v.Suspected = VerdictInconclusive, MethodPortFiltering
		r.v.Evidence += fmt.Sprintf("; %s toward a non-Apple address failed too (%d of %d tries)", where, refused+silent, connected+refused+silent)
		decided, note := j.portPath(r, false)
		if decided {
			return
		}
		r.v.Evidence += ", so this network may close it for every destination (its policy) or only toward Apple: cannot tell which" + note
	}
}

// parseAddr parses a stored address, unmapped; the zero Addr when it does
// not parse.
func parseAddr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// unattributable closes an endpoint whose failure has no reference path
// showing the network works: failed when every control host failed too,
// inconclusive otherwise.
func (j *endpointJudge) unattributable(r *judged, what string) {
	if j.ss.controlsAllFailed() {
		r.v.Verdict = VerdictFailed
		r.v.Evidence = what + "; every control host failed too, so this is not attributable to blocking"
		return
	}
	r.v.Verdict = VerdictInconclusive
	r.v.Evidence = what + fmt.Sprintf("; no control path over %s worked in every try to compare with", familyName(r.family))
}

// handshakeFailure judges a TLS endpoint whose handshakes with the target
// name all timed out or were reset after a working connect.
func (j *endpointJudge) handshakeFailure(r *judged, ts tries, c string) {
	n := len(ts.classes)
	name := j.controlName(r)
	verb := map[string]string{classTLSTimeout: "timed out", classTLSReset: "was reset"}[c]
	if r.v.Failure == failEOF {
		verb = "was closed (FIN)"
	}
	what := fmt.Sprintf("the TLS handshake with %s %s in %d of %d tries (%s)", j.serverName(r, ts), verb, n, n, r.v.Failure)
	r.lossLike = c == classTLSTimeout
	reachedN := ts.countControls(classReached)
	// Loss can silence a control handshake but cannot make the target's
	// reset: on a lossy network, resets next to a control that worked at
	// least once and otherwise only timed out still count.
	lossyControl := c == classTLSReset && j.net.unstable && reachedN > 0 &&
		reachedN+ts.countControls(classTLSTimeout) == n
	switch {
	case allEqual(ts.controls, classReached) || lossyControl:
		r.candidate = MethodSNIFiltering
		r.v.Control = fmt.Sprintf("the same address and port completed a handshake with %s in %d of %d tries", name, reachedN, n)
		if reachedN < n {
			r.v.Control += " (the others timed out, which loss explains)"
		}
		r.v.Evidence = what + "; " + r.v.Control
	case allEqual(ts.controls, "") || allEqual(ts.controls, c):
		ref := j.ss.controlTLS(r.family)
		if ref == nil {
			j.unattributable(r, what)
			return
		}
		r.candidate = map[string]string{classTLSTimeout: MethodTLSTimeout, classTLSReset: MethodTLSReset}[c]
		r.v.Control = fmt.Sprintf("control host %s completed a verified handshake in %d of %d tries", ref.target.Host, ref.verified, ref.attempts)
		if !allEqual(ts.controls, "") {
			r.v.Control = fmt.Sprintf("the handshake with %s failed the same way; ", name) + r.v.Control
		}
		r.v.Evidence = what + "; " + r.v.Control
	case allEqual(ts.controls, classTLSAlert):
		r.v.Verdict = VerdictInconclusive
		r.v.Control = fmt.Sprintf("the server refused %s with a TLS alert", name)
		r.v.Evidence = what + "; " + r.v.Control + ", so the swap proves nothing"
	default:
		r.v.Verdict = VerdictInconclusive
		r.v.Control = fmt.Sprintf("the handshake with %s gave mixed results (%s)", name, strings.Join(ts.controls, ", "))
		r.v.Evidence = what + "; " + r.v.Control
	}
}

// serverName is the name the target path presented.
func (j *endpointJudge) serverName(r *judged, ts tries) string {
	for _, o := range ts.obs {
		if o != nil && o.TLS != nil && o.TLS.ServerName != "" {
			return o.TLS.ServerName
		}
	}
	if r.e.target.ServerName != "" {
		return r.e.target.ServerName
	}
	return r.e.target.Host
}

// controlName is the server name of the SNI swap.
func (j *endpointJudge) controlName(r *judged) string {
	for _, a := range r.e.attempts {
		if a.control != nil && a.control.TLS != nil && a.control.TLS.ServerName != "" {
			return a.control.TLS.ServerName
		}
	}
	if r.e.target.ControlServerName != "" {
		return r.e.target.ControlServerName
	}
	return "the control name"
}

func allEqual(xs []string, want string) bool {
	for _, x := range xs {
		if x != want {
			return false
		}
	}
	return len(xs) > 0
}

// hostPort joins an address and a port as "1.2.3.4:443" or "[::1]:443".
func hostPort(addr string, port int) string {
	if strings.Contains(addr, ":") {
		return "[" + addr + "]:" + strconv.Itoa(port)
	}
	return addr + ":" + strconv.Itoa(port)
}

func familyName(f string) string {
	if f == familyIPv6 {
		return "IPv6"
	}
	return "IPv4"
}
