package analysis

import (
	"fmt"
	"math"
	"strconv"
)

// maxLossChance bounds the chance that packet loss alone silenced every
// try behind a verdict, on a network seen to lose packets: one in a
// million runs. With 20% of steps lost that takes nine silent tries (nine
// endpoints measured once, or three measured three times).
const maxLossChance = 1e-6

// minLossRate is the loss rate assumed when the run saw less: a handful
// of reference steps is too few to trust a lower estimate.
const minLossRate = 0.05

// lossChance is the chance that tries independent steps all failed, each
// failing with probability rate.
func lossChance(rate float64, tries int) float64 {
	return math.Pow(max(rate, minLossRate), float64(tries))
}

func (r *judged) candidateKey() string {
	k := r.v.Group + "|" + r.e.key.kind + "|" + r.candidate
	if r.candidate == MethodPortFiltering {
		k += "|" + strconv.Itoa(r.v.Port)
	}
	return k
}

// corroborate turns candidates into verdicts. An endpoint's own evidence
// (every try failed alike, its control worked in every try) is enough only
// when it was tried more than once on a steady network; otherwise other
// endpoints of the same group must show the same method:
//
//   - resets, refusals and foreign chains, which loss does not make, need
//     one other endpoint;
//   - silence (timeouts), which packet loss imitates, needs one other
//     endpoint and a majority of the group's measured endpoints of the
//     same transport (of the same port, for port filtering), and on an
//     unstable network all of them, in enough tries that loss alone is
//     unlikely to explain it (maxLossChance).
//
// An endpoint that falls short is inconclusive, its pattern kept in
// Suspected.
func corroborate(rs []*judged, ns *netState) {
	// tries counts, per group and candidate, the failed tries behind it.
	tries := map[string]int{}
	for _, r := range rs {
		if r.candidate != "" {
			tries[r.candidateKey()] += r.tries
		}
	}
	for _, r := range rs {
		if r.candidate == "" {
			continue
		}
		peers, group := 0, 0
		for _, o := range rs {
			if !o.counted || o.v.Group != r.v.Group || o.e.key.kind != r.e.key.kind {
				continue
			}
			if r.candidate == MethodPortFiltering && o.v.Port != r.v.Port {
				continue
			}
			group++
			if o != r && o.candidate == r.candidate {
				peers++
			}
		}
		r.v.Peers = peers
		weak := r.tries < 2 || ns.unstable
		shortfall := ""
		switch {
		case !weak:
		case peers == 0:
			shortfall = "no other endpoint of the group showed it"
		case r.lossLike && ns.unstable && (peers+1 < group || lossChance(ns.lossRate, tries[r.candidateKey()]) > maxLossChance):
			shortfall = fmt.Sprintf("on a network that loses packets (%.0f%% of reference steps timed out), silence counts only when every such endpoint of the group shows it, in so many tries that loss alone would explain it less than once in a million runs (here %d of %d endpoints, %d tries)",
				100*ns.lossRate, peers+1, group, tries[r.candidateKey()])
		case r.lossLike && (peers+1)*2 <= group:
			shortfall = fmt.Sprintf("silence proves little on its own, and only %d of %d such endpoints of the group showed it", peers+1, group)
		}
		if shortfall == "" {
			r.v.Verdict, r.v.Method = VerdictBlocked, r.candidate
			continue
		}
		r.v.Verdict, r.v.Suspected = VerdictInconclusive, r.candidate
		if r.tries < 2 {
			shortfall = "tried once, and " + shortfall
		} else {
			shortfall = "the network loses packets, and " + shortfall
		}
		r.v.Evidence += "; not called blocked: " + shortfall
	}
}
