package analysis

import (
	"fmt"
	"slices"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// facetimeKinds are the datagram kinds FaceTime itself sends: STUN, and
// the QUIC v1 Initial of its relay client. Arrival of another kind shows
// the host can be reached, not that a call's datagrams get through.
var facetimeKinds = []string{measurements.ArrivalSTUN, measurements.ArrivalQUICv1}

// kindFacts is what one datagram kind drew over an endpoint's tries.
type kindFacts struct {
	tries    int // tries in which it was sent
	arrived  int // tries in which it proved arrival
	answered int // tries in which the host answered it (not ICMP)
	evidence string
}

// arrivalFacts sums an endpoint's arrival steps.
type arrivalFacts struct {
	tries int
	kinds map[string]*kindFacts
	// icmpSkipped: some step could not read ICMP errors.
	icmpSkipped bool
}

func arrivalOf(e *endpointObs) arrivalFacts {
	af := arrivalFacts{kinds: map[string]*kindFacts{}}
	for _, a := range e.attempts {
		o := a.arrival
		if o == nil || o.Arrival == nil || o.Skipped != "" {
			continue
		}
		af.tries++
		af.icmpSkipped = af.icmpSkipped || o.Arrival.ICMPSkipped != ""
		for _, k := range o.Arrival.Kinds {
			if k.Sent == 0 || k.Failure != "" {
				continue
			}
			f := af.kinds[k.Kind]
			if f == nil {
				f = &kindFacts{}
				af.kinds[k.Kind] = f
			}
			f.tries++
			if k.Arrived() {
				f.arrived++
				if f.evidence == "" || k.Evidence == measurements.ArrivalAnswer {
					f.evidence = k.Evidence
				}
			}
			if k.Evidence == measurements.ArrivalAnswer {
				f.answered++
			}
		}
	}
	return af
}

// arrivedKinds lists the kinds that proved arrival, in the probe's order.
func (af arrivalFacts) arrivedKinds(only func(string) bool) []string {
	var out []string
	for _, k := range []string{measurements.ArrivalSTUN, measurements.ArrivalQUICReserved, measurements.ArrivalQUICv1, measurements.ArrivalRandom} {
		if f := af.kinds[k]; f != nil && f.arrived > 0 && (only == nil || only(k)) {
			out = append(out, k)
		}
	}
	return out
}

// kindPhrase names a kind and what proved its arrival.
func (af arrivalFacts) kindPhrase(k string) string {
	f := af.kinds[k]
	how := "an ICMP error sent by the host itself"
	switch {
	case f.evidence == measurements.ArrivalAnswer && k == measurements.ArrivalQUICReserved:
		how = "a QUIC Version Negotiation"
	case f.evidence == measurements.ArrivalAnswer:
		how = "an answer"
	case f.evidence == measurements.ArrivalPortUnreachable:
		how = "port unreachable from the host itself"
	}
	return fmt.Sprintf("%s (%s, in %d of %d tries)", kindName(k), how, f.arrived, f.tries)
}

func kindName(k string) string {
	switch k {
	case measurements.ArrivalSTUN:
		return "a STUN request"
	case measurements.ArrivalQUICReserved:
		return "a QUIC Initial of a reserved version"
	case measurements.ArrivalQUICv1:
		return "a QUIC v1 Initial like FaceTime's"
	case measurements.ArrivalRandom:
		return "random bytes"
	}
	return k
}

func phrases(af arrivalFacts, kinds []string) string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = af.kindPhrase(k)
	}
	return strings.Join(out, ", ")
}

// silentFaceTime lists FaceTime's kinds that were sent in every arrival
// try and never proved arrival.
func (af arrivalFacts) silentFaceTime() []string {
	var out []string
	for _, k := range facetimeKinds {
		if f := af.kinds[k]; f != nil && f.tries == af.tries && f.arrived == 0 {
			out = append(out, k)
		}
	}
	return out
}

// judgeArrival judges a UDP endpoint by its arrival steps when its STUN
// exchanges did not all get an answer. It returns true when it decided:
//
//   - ok when a kind FaceTime sends proved arrival at the host: an answer,
//     or an ICMP error whose sender is the target itself;
//   - ok too when only other kinds proved it through the host's ICMP
//     errors: hosts limit those per destination, so FaceTime's kinds
//     drawing none proves nothing;
//   - when the host answered another kind (a Version Negotiation, a
//     datagram) while FaceTime's kinds drew nothing in every try, the
//     payload is what is dropped: a candidate (udp.payload) when a
//     control STUN server on the same port got those same kinds through,
//     otherwise inconclusive with the pattern suspected. Arrival alone
//     never makes an endpoint down or blocked.
func (j *endpointJudge) judgeArrival(r *judged, ts tries) bool {
	af := arrivalOf(r.e)
	if af.tries == 0 || len(af.arrivedKinds(nil)) == 0 {
		return false
	}
	n := len(ts.classes)
	r.v.Attempts, r.tries = max(n, af.tries), max(n, af.tries)
	r.setFailure(ts)
	where := hostPort(r.v.Address, r.v.Port)
	host := "the host"
	if isAppleTarget(r.e.target) {
		host = "Apple's host"
	}
	isFT := func(k string) bool { return slices.Contains(facetimeKinds, k) }
	if ft := af.arrivedKinds(isFT); len(ft) > 0 {
		r.v.Verdict, r.v.Failure, r.v.Operation = VerdictOK, "", ""
		r.v.Successes = af.kinds[ft[0]].arrived
		r.v.Evidence = fmt.Sprintf("a datagram reached %s at %s: %s; the UDP path a call needs works", host, where, phrases(af, ft))
		return true
	}
	others := af.arrivedKinds(nil)
	answered := slices.ContainsFunc(others, func(k string) bool { return af.kinds[k].answered > 0 })
	silent := af.silentFaceTime()
	if !answered || len(silent) == 0 {
		r.v.Verdict, r.v.Failure, r.v.Operation = VerdictOK, "", ""
		r.v.Successes = af.kinds[others[0]].arrived
		r.v.Evidence = fmt.Sprintf("a datagram reached %s at %s: %s; the kinds FaceTime sends drew nothing, which the host's limit on ICMP errors explains as well as a filter: the UDP path to the host works", host, where, phrases(af, others))
		return true
	}
	var names []string
	for _, k := range silent {
		names = append(names, kindName(k))
	}
	what := fmt.Sprintf("%s at %s answered %s, while %s, the same size, drew nothing in %d of %d tries: the datagrams FaceTime sends are dropped on the way, or the host ignores them",
		host, where, phrases(af, others), strings.Join(names, " and "), af.tries, af.tries)
	r.v.Successes = 0
	r.lossLike = true
	if ctl := j.controlArrival(r, silent); ctl != "" {
		r.candidate = MethodUDPPayload
		r.v.Control = ctl
		r.v.Evidence = what + "; " + ctl
		return true
	}
	if j.payloadPath(r, what) || j.judgePayloadPeer(r, what) {
		return true
	}
	r.v.Verdict, r.v.Suspected = VerdictInconclusive, MethodUDPPayload
	r.v.Evidence = what + "; no server that is not Apple's got the same kinds through on this port, so a host that ignores them cannot be ruled out: not called blocked"
	if len(r.e.traces) > 0 {
		r.v.Evidence += "; where the datagrams stop is unknown (the traces of these kinds placed no stop); an unknown place is never read as blocking"
	}
	return true
}

// controlArrival describes a control host's arrival step on r's port and
// family where every kind of kinds arrived in every try, or "".
func (j *endpointJudge) controlArrival(r *judged, kinds []string) string {
	for _, k := range j.ix.endpointIDs {
		e := j.ix.endpoints[k]
		if e.target.Group != measurements.GroupControl || k.kind != transportUDP || k.port != r.v.Port || family(e.addr) != r.family {
			continue
		}
		if j.ss.confirmedOnly && !slices.ContainsFunc(e.attempts, func(a *attempt) bool { return a.confirm && a.arrival != nil }) {
			continue
		}
		af := arrivalOf(e)
		if af.tries == 0 {
			continue
		}
		all := true
		for _, kind := range kinds {
			if f := af.kinds[kind]; f == nil || f.arrived < af.tries {
				all = false
			}
		}
		if all {
			var names []string
			for _, kind := range kinds {
				names = append(names, kindName(kind))
			}
			return fmt.Sprintf("%s toward %s (%s), not Apple's, on the same port reached the host in %d of %d tries", strings.Join(names, " and "), e.target.Host, hostPort(k.address, k.port), af.tries, af.tries)
		}
	}
	return ""
}

// arrivalSilence describes an endpoint's arrival steps that proved
// nothing, for the evidence of a silent endpoint; "" when it had none.
func arrivalSilence(e *endpointObs) string {
	af := arrivalOf(e)
	if af.tries == 0 {
		return ""
	}
	s := fmt.Sprintf("none of %d kinds of datagram (STUN, QUIC of a reserved version, QUIC v1, random bytes) drew an answer or an ICMP error from the host in %d %s", len(af.kinds), af.tries, map[bool]string{true: "try", false: "tries"}[af.tries == 1])
	if af.icmpSkipped {
		s += " (ICMP errors could not be read here)"
	}
	return s
}
