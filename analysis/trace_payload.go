package analysis

import (
	"fmt"

	"github.com/reachprobe/reachprobe/measurements"
)

// Payload traces: where Apple's host answers a QUIC Initial of a reserved
// version while the kinds FaceTime sends (STUN, QUIC v1) draw nothing,
// either a filter on the way drops those kinds or the host ignores them.
// A control on the same port that answers those very kinds would tell
// (controlArrival), but no public server answers QUIC v1 on a call port.
// The path tells instead: a trace whose probes carry the silent kind,
// against the reserved Initial to the same address and port (which the
// host answers, so it marks the destination's hop), then against the
// silent kind toward a control address on the same port. The rules are
// the call path's: a stop counts only with the control flow's evidence
// past it, before the destination's hop; a stop at the same hop toward
// the control is this network's filter for every destination; a stop
// inside Apple's networks is Apple's; an unknown place decides nothing.

// payloadTraceRequests picks the call endpoints with the payload pattern
// and no control that got the same kinds through, one per address family.
func payloadTraceRequests(a *judgement) []TraceRequest {
	var out []TraceRequest
	fams := map[string]bool{}
	for _, r := range a.judged {
		if fams[r.family] || r.v.Group != measurements.GroupCall || !r.counted || !isAppleTarget(r.e.target) ||
			r.e.key.kind != transportUDP || r.v.Suspected != MethodUDPPayload || r.candidate != "" {
			continue
		}
		silent := arrivalOf(r.e).silentFaceTime()
		if len(silent) == 0 {
			continue
		}
		fams[r.family] = true
		k := r.e.key
		req := TraceRequest{Target: k.target, Address: k.address, Port: k.port, TCPPort: traceTCPPort, Payload: silent[0]}
		req.ControlTarget, req.ControlAddress = traceControl(a.ix, r.family, k.port)
		out = append(out, req)
	}
	return out
}

// payloadTraces are e's payload traces, by the control they compare with.
func payloadTraces(e *endpointObs) traceFacts {
	var tf traceFacts
	for _, o := range e.traces {
		t := o.Trace
		if t.Skipped != "" || t.Test.Payload == "" || t.Test.Network != transportUDP {
			continue
		}
		switch {
		case t.Control.Address == t.Test.Address && t.Control.Payload == measurements.ArrivalQUICReserved && tf.same == nil:
			tf.same = t
		case t.Control.Address != t.Test.Address && t.Control.Payload == t.Test.Payload && t.Control.Port == t.Test.Port && tf.other == nil:
			tf.other = t
		}
	}
	return tf
}

// payloadNames are the datagram kinds as the place's words name them.
var payloadNames = map[string]string{
	measurements.ArrivalSTUN:   "STUN requests",
	measurements.ArrivalQUICv1: "QUIC v1 Initials like FaceTime's",
}

// payloadPath judges an endpoint with the payload pattern (what says it)
// by its payload traces, or by a traced peer's (judgePayloadPeer). It
// returns true when they decided.
func (j *endpointJudge) payloadPath(r *judged, what string) bool {
	if len(r.e.traces) == 0 {
		return false
	}
	tf := payloadTraces(r.e)
	if tf.same == nil || !tf.same.Stop.Known {
		return false
	}
	kind := payloadNames[tf.same.Test.Payload]
	if kind == "" {
		kind = tf.same.Test.Payload
	}
	if s := tf.same.Stop; appleASNs[s.ASN] {
		r.lossLike = false
		r.v.Verdict, r.v.Suspected = VerdictInconclusive, ""
		r.v.Evidence = what + fmt.Sprintf("; %s reach Apple's own network (hop %d, AS%d) and go no further: Apple's hosts ignoring them, not a block on the way", kind, s.Hop, s.ASN)
		return true
	}
	if policyStop(tf) {
		r.lossLike = false
		r.v.Verdict, r.v.Suspected, r.v.Scope = VerdictRestricted, "", ScopeNetworkPolicy
		r.v.Path = placeOf(tf.same)
		r.v.Control = fmt.Sprintf("%s on port %d toward %s, not Apple's, stop at the same hop, while a QUIC Initial of a reserved version to Apple's address passes it", kind, r.v.Port, tf.other.ControlTarget)
		r.v.Evidence = what + "; " + r.v.Control + fmt.Sprintf(": they stop %s, a filter of this network on what datagrams carry, for every destination, not a block aimed at Apple", placeWords(tf.same))
		return true
	}
	return j.payloadDrop(r, what, tf, "")
}

// payloadDrop makes r a udp.payload candidate when tf places the drop:
// the silent kind stops at a hop outside Apple's networks where the
// reserved Initial to the same address goes on, and the same kind toward
// a control address crosses the same router and goes on too. via names
// the traced endpoint when it is another one of the same path.
func (j *endpointJudge) payloadDrop(r *judged, what string, tf traceFacts, via string) bool {
	if tf.same == nil || !tf.same.Stop.Known || tf.other == nil || !tf.other.Stop.Known {
		return false
	}
	s := tf.other.Stop
	if s.Hop != tf.same.Stop.Hop || appleASNs[s.ASN] || !sharedRouter(tf.other, s.Hop) {
		return false
	}
	kind := payloadNames[tf.same.Test.Payload]
	if kind == "" {
		kind = tf.same.Test.Payload
	}
	r.candidate, r.v.Suspected = MethodUDPPayload, ""
	r.v.Path = placeOf(tf.other)
	r.v.Control = fmt.Sprintf("a QUIC Initial of a reserved version to the same address and port passes that hop and draws the host's answer, and the same datagrams toward %s, not Apple's, on the same port pass it too: what the datagrams carry is what is targeted", tf.other.ControlTarget)
	if via != "" {
		r.v.Control = fmt.Sprintf("traced at %s, on the same path: %s", via, r.v.Control)
	}
	r.v.Evidence = what + fmt.Sprintf("; %s to Apple's call servers are dropped %s; %s", kind, placeWords(tf.other), r.v.Control)
	return true
}

// judgePayloadPeer judges an endpoint with the payload pattern that was
// not traced by the payload traces of another endpoint of its group and
// address family (one is traced per family): a drop they placed is read
// as the same drop. A finding of the network's policy is not carried
// over, as for silent endpoints (judgeTracePeer).
func (j *endpointJudge) judgePayloadPeer(r *judged, what string) bool {
	if len(r.e.traces) > 0 {
		return false
	}
	for _, k := range j.ix.endpointIDs {
		e := j.ix.endpoints[k]
		if e == r.e || len(e.traces) == 0 || k.kind != transportUDP || e.target.Group != r.e.target.Group || family(e.addr) != r.family {
			continue
		}
		if j.payloadDrop(r, what, payloadTraces(e), hostPort(k.address, k.port)) {
			return true
		}
	}
	return false
}
