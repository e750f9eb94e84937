package analysis

import (
	"fmt"
	"net/netip"

	"github.com/reachprobe/reachprobe/measurements"
)

// Path evidence over TCP: where a reset on the server name is injected
// (a reset trace, CenTrace's technique), and where the SYNs to a port
// that is silent toward Apple stop (SYN traces).

// ResetTraceRequest asks for a reset trace of one TLS endpoint whose
// handshakes with the target's server name were reset while the control
// name went through (sni.filtering): ClientHellos with lowered TTLs, the
// hops named by a trace to the same address.
type ResetTraceRequest struct {
	Target  string `json:"target"`
	Address string `json:"address"`
	Port    int    `json:"port"`
}

// TCPTraceRequest asks for the SYN traces of one TCP port silent at an
// address of Apple's while another port of the same address connects:
// SYNs to Port against SYNs to OpenPort on the same address, then against
// SYNs to Port toward ControlAddress (a control host's), which needs the
// destination's hop the first trace found.
type TCPTraceRequest struct {
	Target         string `json:"target"`
	Address        string `json:"address"`
	Port           int    `json:"port"`
	OpenPort       int    `json:"open_port"`
	ControlTarget  string `json:"control_target,omitempty"`
	ControlAddress string `json:"control_address,omitempty"`
}

// maxResetTraceRequests bounds the reset traces per run: one per service
// and address family, two in all. Each costs about 2 ClientHellos per hop
// up to the injector, and the trace to the same address that names the
// hops.
const maxResetTraceRequests = 2

// maxTCPTraceRequests bounds the SYN traces per run: one endpoint per port
// and address family, two in all; the other endpoints of the same port
// read that trace.
const maxTCPTraceRequests = 2

// tracing reports whether a's network can be traced at all: behind a
// captive portal, or with nothing reachable, there is no path to trace.
func tracing(a *judgement) bool {
	switch a.report.Network.Status {
	case NetworkOK, NetworkUnstable, NetworkPartial:
		return true
	}
	return false
}

// resetTraceRequests picks the endpoints whose handshakes with the target
// name were reset while the control name went through: one per service
// and address family.
func resetTraceRequests(a *judgement) []ResetTraceRequest {
	if !tracing(a) {
		return nil
	}
	var out []ResetTraceRequest
	seen := map[string]bool{}
	for _, r := range a.judged {
		if len(out) == maxResetTraceRequests {
			break
		}
		k := r.v.Group + "|" + r.family
		if !resetOnName(r) || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, ResetTraceRequest{Target: r.e.key.target, Address: r.e.key.address, Port: r.e.key.port})
	}
	return out
}

// resetOnName reports an endpoint of Apple's whose pattern is a reset on
// the target's server name next to a control name that went through.
func resetOnName(r *judged) bool {
	method := r.candidate
	if method == "" {
		method = r.v.Suspected
	}
	return r.v.Group != measurements.GroupControl && r.counted && method == MethodSNIFiltering &&
		r.e.key.kind == transportTLS && r.v.Failure == failReset
}

// tcpTraceRequests picks the TCP ports silent at an address of Apple's
// where another port connects (port.filtering, suspected or candidate):
// one endpoint per port and address family.
func tcpTraceRequests(a *judgement) []TCPTraceRequest {
	if !tracing(a) {
		return nil
	}
	var out []TCPTraceRequest
	seen := map[portKey]bool{}
	for _, r := range a.judged {
		if len(out) == maxTCPTraceRequests {
			break
		}
		k := portKey{port: r.v.Port, kind: r.family}
		if !silentPort(r) || seen[k] {
			continue
		}
		open := openPort(a.ix, r.e.addr, r.v.Port)
		if open == 0 {
			continue
		}
		seen[k] = true
		req := TCPTraceRequest{Target: r.e.key.target, Address: r.e.key.address, Port: r.v.Port, OpenPort: open}
		if pcs := controlPortChecks(a.ix, r.v.Port, r.family); len(pcs) > 0 {
			req.ControlTarget, req.ControlAddress = pcs[0].Target, pcs[0].Address
		}
		out = append(out, req)
	}
	return out
}

// silentPort reports a TCP endpoint of Apple's whose connects all timed
// out while another port of its address worked (port.filtering).
func silentPort(r *judged) bool {
	method := r.candidate
	if method == "" {
		method = r.v.Suspected
	}
	return r.v.Group != measurements.GroupControl && r.counted && method == MethodPortFiltering &&
		(r.e.key.kind == transportTCP || r.e.key.kind == transportTLS) && r.v.Failure == failTimeout
}

// openPort returns a port of addr, other than port, whose every connect
// worked; 0 when there is none.
func openPort(ix *index, addr netip.Addr, port int) int {
	for _, k := range ix.endpointIDs {
		e := ix.endpoints[k]
		if e.addr != addr || k.port == port || (k.kind != transportTCP && k.kind != transportTLS) || len(e.attempts) == 0 {
			continue
		}
		ok := true
		for _, at := range e.attempts {
			if at.connect == nil || at.connect.Failure != "" {
				ok = false
			}
		}
		if ok {
			return k.port
		}
	}
	return 0
}

// resetTraceOf returns e's reset trace; nil when it has none that was made.
func resetTraceOf(e *endpointObs) *measurements.TraceDetails {
	for _, o := range e.traces {
		if t := o.Trace; t.IsReset() && t.Skipped == "" {
			return t
		}
	}
	return nil
}

// resetTrace returns the reset trace that speaks for r: its own, or that
// of another endpoint of its group reset on the name in the same prefix
// (the runner traces one per service and family, and a prefix is one
// server's path), with that endpoint's name.
func resetTrace(r *judged, rs []*judged) (*measurements.TraceDetails, string) {
	if t := resetTraceOf(r.e); t != nil {
		return t, ""
	}
	for _, o := range rs {
		if o == r || o.v.Group != r.v.Group || !resetOnName(o) || !samePrefix(o.e.addr, r.e.addr) {
			continue
		}
		if t := resetTraceOf(o.e); t != nil {
			return t, hostPort(o.e.key.address, o.e.key.port)
		}
	}
	return nil, ""
}

// beforeServer reports whether a reset trace placed the reset before the
// server's own hop: the ClientHello with the target name draws it at a
// TTL too small to reach the server, where the control name's does not.
// Only then is the reset the path's, not the server's.
func beforeServer(t *measurements.TraceDetails) bool {
	return t != nil && t.Stop.Known && t.ResetTTL > 0 && t.Stop.DestinationHop > 0 && t.ResetTTL < t.Stop.DestinationHop
}

// singleFrontEnd is why a reset on the server name at a service whose
// every server shares one prefix is not called blocked without path
// evidence: one front end resetting a name it does not serve (or serves
// badly) looks the same, and holds over time just as well.
func singleFrontEnd(r *judged, rs []*judged) string {
	return fmt.Sprintf("every server measured is in %s, where one front end resetting the name itself looks the same and holds over time too; only a reset placed before the server's hop would show the network does it, and %s",
		prefixOf(r.e.addr), resetReading(r, rs))
}

// resetReading says what the reset trace speaking for r found.
func resetReading(r *judged, rs []*judged) string {
	t, via := resetTrace(r, rs)
	if via != "" {
		via = " (traced at " + via + ", the same server's prefix)"
	}
	switch {
	case t == nil && len(r.e.traces) > 0:
		return "the reset trace could not be made here"
	case t == nil:
		return "no reset trace was made (path probes off, or no confirmation pass)"
	case beforeServer(t):
		return fmt.Sprintf("the reset is injected %s, before the server's hop %d (a ClientHello naming it draws the reset from TTL %d on, the control name's does not)%s",
			placeWords(t), t.Stop.DestinationHop, t.ResetTTL, via)
	case t.ResetTTL > 0 && t.Stop.DestinationHop > 0 && t.ResetTTL >= t.Stop.DestinationHop:
		return fmt.Sprintf("the reset comes only when the ClientHello reaches the server's own hop (%d): the server or its front end resets the name, or a box right in front of it%s", t.Stop.DestinationHop, via)
	}
	return "where the reset comes from is unknown (" + t.Stop.Reason + ")" + via
}

// placeReset gives a blocked sni.filtering endpoint its place: the hop
// past which the reset is injected, when a reset trace found one.
// Otherwise its evidence says what the trace found, if one was made.
func placeReset(r *judged, rs []*judged) {
	t, via := resetTrace(r, rs)
	if t == nil && len(r.e.traces) == 0 {
		return
	}
	if !beforeServer(t) {
		r.v.Evidence += "; " + resetReading(r, rs)
		return
	}
	p := placeOf(t)
	p.Kind = PlaceReset
	r.v.Path = p
	if via != "" {
		via = " (traced at " + via + ", the same server's prefix)"
	}
	r.v.Evidence += "; reset injected " + placeWords(t) + fmt.Sprintf(", before the server's hop %d (a ClientHello naming it draws the reset from TTL %d on, the control name's does not)%s", t.Stop.DestinationHop, t.ResetTTL, via)
}

// portPath reads the SYN traces of a TCP port silent at Apple's address
// (see portScope), or those of another endpoint on the same port and
// address family, made by the runner for one of them:
//
//   - the SYNs to the port stop at a hop outside Apple's networks where
//     SYNs to an open port of the same address pass: the block's place;
//   - unless aimed (a control host answered on the port), they stop at
//     that hop toward a control address as well: the network closes the
//     port for every destination, its policy (restricted), never a block
//     aimed at Apple, and portPath sets the verdict;
//   - a stop inside Apple's networks is Apple's own rule: with a control
//     host answering on the port (aimed), not blocked;
//   - an unknown place decides nothing and is said.
//
// It returns whether it set the verdict, and otherwise the words its
// caller adds to the evidence ("" when there were no traces).
func (j *endpointJudge) portPath(r *judged, aimed bool) (bool, string) {
	if !isAppleTarget(r.e.target) {
		return false, ""
	}
	tf, via := j.portTraces(r)
	if tf.same == nil {
		return false, ""
	}
	s := tf.same.Stop
	where := fmt.Sprintf("port %d", r.v.Port)
	if via != "" {
		via = fmt.Sprintf(" (traced at %s, the same port)", via)
	}
	switch {
	case !s.Known:
		return false, fmt.Sprintf("; where SYNs to %s stop is unknown (%s)%s; an unknown place is never read as blocking", where, s.Reason, via)
	case appleASNs[s.ASN] && aimed:
		// Closed toward Apple only, by Apple's own network: Apple's
		// rule for this client, not a block on the way.
		r.candidate, r.lossLike = "", false
		r.v.Verdict, r.v.Suspected = VerdictInconclusive, MethodPortFiltering
		r.v.Control += fmt.Sprintf("; but SYNs to %s stop inside Apple's own network", where)
		r.v.Evidence += fmt.Sprintf("; SYNs to %s reach Apple's own network (hop %d, AS%d) and go no further%s, where SYNs to port %d of the same address pass: Apple's network drops them, not a block on the way",
			where, s.Hop, s.ASN, via, tf.same.Control.Port)
		return true, ""
	case appleASNs[s.ASN]:
		return false, fmt.Sprintf("; SYNs to %s reach Apple's own network (hop %d, AS%d) and go no further%s", where, s.Hop, s.ASN, via)
	}
	policy := tf.other != nil && lastSeen(tf.same, "test") == s.Hop &&
		lastSeen(tf.other, "test") == s.Hop && lastSeen(tf.other, "control") == s.Hop
	if policy && !aimed {
		r.v.Verdict, r.v.Suspected, r.v.Scope = VerdictRestricted, "", ScopeNetworkPolicy
		r.candidate = ""
		r.v.Path = placeOf(tf.same)
		r.v.Evidence += fmt.Sprintf("; SYNs to %s stop %s, where SYNs to port %d of the same address pass, and SYNs to %s toward %s, not Apple's, stop at the same hop%s: this network closes the port for every destination (its policy), not a block aimed at Apple",
			where, placeWords(tf.same), tf.same.Control.Port, where, tf.other.ControlTarget, via)
		return true, ""
	}
	r.v.Path = placeOf(tf.same)
	note := fmt.Sprintf("; SYNs to %s are dropped %s, where SYNs to port %d of the same address pass%s", where, placeWords(tf.same), tf.same.Control.Port, via)
	if tf.other != nil && tf.other.Stop.Known && tf.other.Stop.Hop == s.Hop && sharedRouter(tf.other, s.Hop) {
		note += fmt.Sprintf("; toward %s, not Apple's, SYNs to the same port pass that router", tf.other.ControlTarget)
	}
	return false, note
}

// portTraces returns r's SYN traces, or those of the endpoint of the same
// port, transport and address family that was traced, with its name.
func (j *endpointJudge) portTraces(r *judged) (traceFacts, string) {
	if tf := tracesOf(r.e); tf.same != nil {
		return tf, ""
	}
	for _, k := range j.ix.endpointIDs {
		e := j.ix.endpoints[k]
		if e == r.e || k.port != r.v.Port || (k.kind != transportTCP && k.kind != transportTLS) || family(e.addr) != r.family || !isAppleTarget(e.target) {
			continue
		}
		if tf := tracesOf(e); tf.same != nil {
			return tf, hostPort(k.address, k.port)
		}
	}
	return traceFacts{}, ""
}

// firstOf returns a pair's first value.
func firstOf[T, U any](t T, _ U) T { return t }

// withReferences gives each UDP trace request a reference: a server of
// Apple's, at another address of the same family, whose every TCP connect
// worked. When TCP to the traced address stops where its UDP does (the
// address blocked outright), nothing reaches that address and its own
// hop, which a stop must come before, stays unknown; the runner then
// traces toward the reference, and the hop where that server answers
// stands in for it (hedged in the words: see blockedOutright).
func withReferences(a *judgement, reqs []TraceRequest) []TraceRequest {
	for i := range reqs {
		addr := parseAddr(reqs[i].Address)
		if !addr.IsValid() {
			continue
		}
		for _, k := range a.ix.endpointIDs {
			e := a.ix.endpoints[k]
			if e.addr == addr || family(e.addr) != family(addr) || !isAppleTarget(e.target) || len(e.target.Networks) == 0 ||
				(k.kind != transportTCP && k.kind != transportTLS) || !allConnected(e) {
				continue
			}
			reqs[i].ReferenceTarget, reqs[i].ReferenceAddress, reqs[i].ReferencePort = k.target, k.address, k.port
			break
		}
	}
	return reqs
}

// allConnected reports whether e was tried and every connect worked.
func allConnected(e *endpointObs) bool {
	for _, at := range e.attempts {
		if at.connect == nil || at.connect.Failure != "" {
			return false
		}
	}
	return len(e.attempts) > 0
}

// referenceTrace returns, among ts, the trace whose control went over TCP
// to another server of Apple's (the reference of withReferences), and the
// hop where that server answered; nil when there is none.
func referenceTrace(ts []*measurements.Observation) (*measurements.TraceDetails, int) {
	for _, o := range ts {
		t := o.Trace
		if t.Skipped != "" || t.IsReset() || t.Control.Network != transportTCP || t.Control.Address == t.Test.Address || t.Test.Network != transportUDP {
			continue
		}
		for _, h := range t.Hops {
			if h.Role == "control" && h.Reply == measurements.TraceReplyDestination {
				return t, h.TTL
			}
		}
	}
	return nil, 0
}

// outrightHedge says, for an address blocked outright, what its own hop
// was taken from: nothing reached it, so the hop where another server of
// Apple's answered stood in for it; "" when the address's own hop was
// found.
func outrightHedge(tf traceFacts, s measurements.TraceStop) string {
	if tf.ref == nil || tf.same == nil || tf.same.Stop.DestinationHop != 0 || s.DestinationHop != tf.refHop {
		return ""
	}
	return fmt.Sprintf(" (nothing reaches that address, so its own hop is unknown: Apple's server of %s, answering at hop %d, stands in for it)", tf.ref.ControlTarget, tf.refHop)
}
