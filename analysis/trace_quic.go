package analysis

import (
	"fmt"

	"github.com/reachprobe/reachprobe/measurements"
)

// Path evidence for QUIC endpoints of Apple's (Private Relay's
// mask.icloud.com on UDP 443): a silent QUIC endpoint is traced as a
// silent call endpoint is (trace.go), its UDP probes carrying a QUIC v1
// Initial so that a filter of QUIC drops them as it drops the handshake.
// The same rules read the traces: a stop counts only with positive
// evidence past it from a control flow, before the destination's hop; a
// stop at the same hop toward a control QUIC address is this network's
// policy; an unknown place is said and never read as blocking. Unlike a
// call endpoint's, a QUIC endpoint's block does not rest on its traces
// (quic.timeout has its controls, a QUIC handshake that works elsewhere):
// they place it, or, when the datagrams reach Apple's own network, take
// it back.

// quicTraceRequests picks the QUIC endpoints of Apple's to trace: every
// handshake silent, one per address family, against TCP to the same
// address, then UDP on the same port toward a control QUIC host's address.
func quicTraceRequests(a *judgement) []TraceRequest {
	var out []TraceRequest
	fams := map[string]bool{}
	for _, r := range a.judged {
		if fams[r.family] || !silentQUIC(r) {
			continue
		}
		fams[r.family] = true
		k := r.e.key
		req := TraceRequest{Target: k.target, Address: k.address, Port: k.port, TCPPort: traceTCPPort, Transport: transportQUIC}
		req.ControlTarget, req.ControlAddress = quicTraceControl(a.ix, r.family, k.port)
		out = append(out, req)
	}
	return out
}

// silentQUIC reports whether r is a QUIC endpoint of Apple's whose every
// handshake got no answer.
func silentQUIC(r *judged) bool {
	if r.e.key.kind != transportQUIC || !r.counted || !isAppleTarget(r.e.target) || r.v.Verdict == VerdictOK {
		return false
	}
	n := 0
	for _, a := range r.e.attempts {
		if a.main == nil {
			continue
		}
		if quicClass(a.main) != classTLSTimeout {
			return false
		}
		n++
	}
	return n > 0
}

// quicTraceControl picks a control QUIC host's address of family fam on
// port, then whatever traceControl picks.
func quicTraceControl(ix *index, fam string, port int) (string, string) {
	for _, k := range ix.endpointIDs {
		e := ix.endpoints[k]
		if e.target.Group == measurements.GroupControl && k.kind == transportQUIC && k.port == port && family(e.addr) == fam && len(e.attempts) > 0 {
			return k.target, k.address
		}
	}
	return traceControl(ix, fam, port)
}

// quicPolicy judges a silent QUIC endpoint of Apple's on a network where
// QUIC to the control hosts fails too: when its traces show QUIC stopping
// toward a control address at the very hop where it stops toward Apple,
// while TCP to Apple's address passes it, UDP on the port is closed for
// every destination: restricted, this network's policy. It returns true
// when it decided.
func (j *endpointJudge) quicPolicy(r *judged, what string) bool {
	if !isAppleTarget(r.e.target) || len(r.e.traces) == 0 {
		return false
	}
	tf := tracesOf(r.e)
	if !policyStop(tf) {
		return false
	}
	r.v.Verdict, r.v.Scope = VerdictRestricted, ScopeNetworkPolicy
	r.v.Path = placeOf(tf.same)
	r.v.Control = fmt.Sprintf("QUIC (UDP on port %d) toward %s, not Apple's, stops at the same hop as toward Apple, while TCP to Apple's address passes it", r.v.Port, tf.other.ControlTarget)
	r.v.Evidence = what + "; " + r.v.Control + fmt.Sprintf(": QUIC stops %s, this network's policy for every destination, not a block aimed at Apple", placeWords(tf.same))
	return true
}

// placeQUIC places the block of a QUIC endpoint whose candidate is
// quic.timeout, by its traces:
//
//   - QUIC to Apple's address stops at a hop outside Apple's networks
//     where QUIC toward a control address crosses the same router and
//     goes on: the place is named (r.v.Path);
//   - it stops inside Apple's own network: Apple's servers not
//     answering, not a block on the way, so the candidate is dropped;
//   - otherwise the place is unknown, which is said; the candidate stands
//     on its own controls.
func (j *endpointJudge) placeQUIC(r *judged) {
	if r.candidate != MethodQUICTimeout || len(r.e.traces) == 0 {
		return
	}
	tf := tracesOf(r.e)
	if tf.other == nil || !tf.other.Stop.Known {
		r.v.Evidence += "; " + traceUnknown(r.e)
		return
	}
	s := tf.other.Stop
	if appleASNs[s.ASN] {
		r.candidate, r.lossLike = "", false
		r.v.Verdict, r.v.Control = VerdictInconclusive, ""
		r.v.Evidence += fmt.Sprintf("; but the QUIC datagrams reach Apple's own network (hop %d, AS%d) and go no further, while UDP to %s passes: Apple's servers not answering, not a block on the way", s.Hop, s.ASN, tf.other.ControlTarget)
		return
	}
	if !sharedRouter(tf.other, s.Hop) {
		r.v.Evidence += fmt.Sprintf("; where QUIC stops is unknown: it goes no further than hop %d, and UDP on the same port to %s gets further, but not through the same router", s.Hop, tf.other.ControlTarget)
		return
	}
	how := sameAddressHow(tf, s, "QUIC")
	r.v.Path = placeOf(tf.other)
	r.v.Evidence += fmt.Sprintf("; QUIC to Apple's %s is dropped %s; UDP on the same port to %s, not Apple's, passes that hop; %s",
		quicServers(r.e.target), placeWords(tf.other), tf.other.ControlTarget, how)
}

// quicServers names what an Apple QUIC target is: Private Relay's relay,
// or Apple's servers.
func quicServers(t *measurements.Target) string {
	if t.Group == measurements.GroupQUIC {
		return "relay"
	}
	return "servers"
}
