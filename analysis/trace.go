package analysis

import (
	"fmt"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// maxTracesPerEndpoint bounds the traces read per endpoint: the runner
// makes two (a control to the same address over TCP, one to a control
// address over UDP); a stored run with more is not the runner's.
const maxTracesPerEndpoint = 4

// traceFacts are an endpoint's traces, by the control they compare with.
type traceFacts struct {
	same  *measurements.TraceDetails // control over TCP to the same address
	other *measurements.TraceDetails // control over UDP to another address, on the same port
	// ref is the trace toward another server of Apple's over TCP, made
	// when nothing reached the address; refHop is where it answered.
	ref    *measurements.TraceDetails
	refHop int
}

func tracesOf(e *endpointObs) traceFacts {
	var tf traceFacts
	for _, o := range e.traces {
		t := o.Trace
		if t.Skipped != "" || t.IsReset() || e.key.kind == transportUDP && t.Test.Payload != "" {
			continue // reset traces, and a UDP endpoint's payload traces, are read apart
		}
		switch {
		case t.Control.Address == t.Test.Address && t.Control.Network == transportTCP && tf.same == nil:
			tf.same = t
		case t.Control.Address != t.Test.Address && t.Control.Network == t.Test.Network && t.Control.Port == t.Test.Port && tf.other == nil:
			tf.other = t
		}
	}
	tf.ref, tf.refHop = referenceTrace(e.traces)
	return tf
}

// lastSeen is the farthest TTL at which role's probes drew an answer
// (time exceeded, or the destination's).
func lastSeen(t *measurements.TraceDetails, role string) int {
	last := 0
	for _, h := range t.Hops {
		if h.Role == role && (h.Reply == measurements.TraceReplyTimeExceeded || h.Reply == measurements.TraceReplyDestination) {
			last = max(last, h.TTL)
		}
	}
	return last
}

// ownASN is the AS of the first public hop any flow of t saw: the
// network the volunteer is on, as the path shows it; 0 when unknown.
func ownASN(t *measurements.TraceDetails) uint {
	best, asn := 0, uint(0)
	for _, h := range t.Hops {
		if h.Private || h.ASN == 0 || h.Reply != measurements.TraceReplyTimeExceeded {
			continue
		}
		if best == 0 || h.TTL < best {
			best, asn = h.TTL, h.ASN
		}
	}
	return asn
}

// placeOf is a trace's stop as reports show it: no address.
func placeOf(t *measurements.TraceDetails) *PathPlace {
	s := t.Stop
	return &PathPlace{Hop: s.Hop, ASN: s.ASN, ASName: s.ASName, Private: s.Private,
		OwnNetwork: !s.Private && s.ASN != 0 && ownASN(t) == s.ASN, DestinationHop: s.DestinationHop}
}

// pathPhrase says where a place is, for a service's reason.
func pathPhrase(p *PathPlace) string {
	switch {
	case p.Hop == 0:
		return "on this computer or its own link"
	case p.Private:
		return fmt.Sprintf("hop %d, inside the network you are connected to (its own rules, not the internet provider's)", p.Hop)
	case p.ASN == 0:
		return fmt.Sprintf("hop %d, in a network that is unknown", p.Hop)
	}
	return hopInAS(p.Hop, p.ASN, p.ASName, p.OwnNetwork)
}

// hopInAS words a hop in a known network: "hop 2, inside AS64500
// (Example ISP, the network you are on)".
func hopInAS(hop int, asn uint, asName string, own bool) string {
	var who []string
	if asName != "" {
		who = append(who, asName)
	}
	if own {
		who = append(who, "the network you are on")
	}
	w := fmt.Sprintf("hop %d, inside AS%d", hop, asn)
	if len(who) > 0 {
		w += " (" + strings.Join(who, ", ") + ")"
	}
	return w
}

// placeWords names where a stop is: its hop, and its network, hedged
// where the AS is only a hint.
func placeWords(t *measurements.TraceDetails) string {
	s := t.Stop
	switch {
	case s.Hop == 0:
		return "before the first router (on this computer or its own link)"
	case s.Private:
		return fmt.Sprintf("at hop %d, a router with a private address: inside the network you are connected to (a home router's, a school's or an office's rules), not the internet provider's", s.Hop)
	case s.ASN == 0:
		return fmt.Sprintf("at hop %d, a router whose network is unknown", s.Hop)
	}
	return "at " + hopInAS(s.Hop, s.ASN, s.ASName, ownASN(t) == s.ASN) + " (a router at the border between two networks may carry its neighbour's AS)"
}

// judgeTrace judges a silent UDP endpoint of Apple's by its traces. It
// returns true when they decided:
//
//   - blocked (a candidate, MethodUDPPathDrop) when the UDP flow to
//     Apple's address stops at a hop outside Apple's networks while UDP
//     on the same port toward a control address passes that hop; TCP to
//     the same address passing it too says UDP is targeted, TCP stopping
//     there says the address is blocked outright;
//   - restricted, this network's policy, when UDP on the port stops at
//     the same hop toward the control address too, while TCP to Apple's
//     address passes it;
//   - a stop inside Apple's networks is Apple's hosts ignoring the flow.
//
// An unknown place decides nothing: it is said, never read as blocking.
func (j *endpointJudge) judgeTrace(r *judged, what string) bool {
	if !isAppleTarget(r.e.target) || len(r.e.traces) == 0 {
		return false
	}
	tf := tracesOf(r.e)
	if tf.other != nil && tf.other.Stop.Known {
		return j.pathDrop(r, what, tf, "")
	}
	if tf.same != nil && tf.same.Stop.Known {
		s := tf.same.Stop
		if policyStop(tf) {
			r.v.Verdict, r.v.Scope = VerdictRestricted, ScopeNetworkPolicy
			r.v.Path = placeOf(tf.same)
			r.v.Evidence = what + fmt.Sprintf("; UDP on port %d stops toward %s, not Apple's, as toward Apple, while TCP to Apple's address passes: it stops %s, this network's policy for every destination, not a block aimed at Apple", r.v.Port, tf.other.ControlTarget, placeWords(tf.same))
			return true
		}
		if appleASNs[s.ASN] {
			r.v.Verdict = VerdictInconclusive
			r.v.Evidence = what + fmt.Sprintf("; the datagrams reach Apple's own network (hop %d, AS%d) and go no further: Apple's hosts ignoring them, not a block on the way", s.Hop, s.ASN)
			return true
		}
		r.v.Verdict = VerdictInconclusive
		r.v.Evidence = what + fmt.Sprintf("; UDP to this address stops %s while TCP to it passes, but no UDP toward another address was traced past that hop, so whether the network drops UDP on this port for everyone is unknown: not called blocked", placeWords(tf.same))
		return true
	}
	return false
}

// policyStop reports whether tf shows the network's policy: the test
// flow stops at a hop TCP to the same address passes (tf.same placed it),
// and the same flow toward a control address stops at that very hop too.
func policyStop(tf traceFacts) bool {
	if tf.same == nil || !tf.same.Stop.Known || tf.other == nil {
		return false
	}
	hop := tf.same.Stop.Hop
	return lastSeen(tf.same, "test") == hop && lastSeen(tf.other, "control") == hop && lastSeen(tf.other, "test") == hop
}

// traceUnknown says, for an endpoint's evidence, that its traces could
// not place a stop; "" when it had none.
func traceUnknown(e *endpointObs) string {
	if len(e.traces) == 0 {
		return ""
	}
	tf := tracesOf(e)
	reason := "routers sent no ICMP, or the flows did not differ"
	for _, t := range []*measurements.TraceDetails{tf.other, tf.same} {
		if t != nil && t.Stop.Reason != "" {
			reason = t.Stop.Reason
			break
		}
	}
	if tf.same == nil && tf.other == nil {
		reason = "the traces could not be made here"
	}
	return "where the datagrams stop is unknown (" + reason + "); an unknown place is never read as blocking"
}

// pathDrop judges r by a trace whose UDP flow to Apple stopped while UDP
// to a control address passed: via names the traced endpoint when it is
// another one of the same path.
func (j *endpointJudge) pathDrop(r *judged, what string, tf traceFacts, via string) bool {
	s := tf.other.Stop
	if appleASNs[s.ASN] {
		r.v.Verdict = VerdictInconclusive
		r.v.Evidence = what + fmt.Sprintf("; the datagrams reach Apple's own network (hop %d, AS%d) and go no further, while UDP to %s passes: Apple's hosts ignoring them, not a block on the way", s.Hop, s.ASN, tf.other.ControlTarget)
		return true
	}
	if !sharedRouter(tf.other, s.Hop) {
		// By TTL alone, "passes that hop" could be a router of another
		// path: the control must have crossed the very router where the
		// test flow stops, or nothing says the drop is on the way.
		r.v.Verdict = VerdictInconclusive
		r.v.Evidence = what + fmt.Sprintf("; UDP to Apple's address goes no further than hop %d, and UDP to %s gets further, but not through the same router, so where the datagrams are dropped is unknown: not called blocked", s.Hop, tf.other.ControlTarget)
		return true
	}
	how := sameAddressHow(tf, s, "UDP")
	r.candidate, r.lossLike = MethodUDPPathDrop, false
	r.v.Path = placeOf(tf.other)
	r.v.Control = fmt.Sprintf("UDP on the same port to %s, not Apple's, passes that hop; %s", tf.other.ControlTarget, how)
	if via != "" {
		r.v.Control = fmt.Sprintf("traced at %s, on the same path: %s", via, r.v.Control)
	}
	r.v.Evidence = what + fmt.Sprintf("; UDP to Apple's call servers is dropped %s; %s", placeWords(tf.other), r.v.Control)
	return true
}

// sameAddressHow says what TCP to the same address shows at hop, where
// the flow (proto) toward Apple stops: that proto is what is targeted, or
// that the address is blocked outright.
func sameAddressHow(tf traceFacts, s measurements.TraceStop, proto string) string {
	if tf.same != nil {
		switch {
		case tf.same.Stop.Known && tf.same.Stop.Hop == s.Hop:
			return "TCP to the same address passes that hop: " + proto + " is what is targeted"
		case lastSeen(tf.same, "control") <= s.Hop:
			return "TCP to the same address stops there too: the Apple address is blocked outright" + outrightHedge(tf, s)
		}
	}
	return "TCP to the same address was not traced past that hop"
}

// sharedRouter reports whether the control flow of t drew time exceeded
// at hop from the router where the test flow stops.
func sharedRouter(t *measurements.TraceDetails, hop int) bool {
	if hop == 0 {
		return true // the first router never saw it: nothing to share
	}
	for _, h := range t.Hops {
		if h.Role == "control" && h.TTL == hop && h.Reply == measurements.TraceReplyTimeExceeded && h.Addr != "" && h.Addr == t.Stop.Addr {
			return true
		}
	}
	return false
}

// judgeTracePeer judges a silent UDP endpoint of Apple's that was not
// traced by the trace of another endpoint of its group and address family
// (the runner traces one per family): when that trace placed a drop
// outside Apple's networks, this endpoint's silence is read as the same
// drop. A stop of the network's policy is not carried over: a port closed
// for everyone is a fact about that port alone.
func (j *endpointJudge) judgeTracePeer(r *judged, what string) bool {
	if !isAppleTarget(r.e.target) || len(r.e.traces) > 0 {
		return false
	}
	for _, k := range j.ix.endpointIDs {
		e := j.ix.endpoints[k]
		if e == r.e || len(e.traces) == 0 || k.kind != transportUDP || e.target.Group != r.e.target.Group || family(e.addr) != r.family {
			continue
		}
		tf := tracesOf(e)
		if tf.other == nil || !tf.other.Stop.Known || appleASNs[tf.other.Stop.ASN] {
			continue
		}
		return j.pathDrop(r, what, tf, hostPort(k.address, k.port))
	}
	return false
}
