package analysis

import (
	"fmt"
	"math"
	"net/netip"
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

// bareSilence lists the methods that rest on silence alone, with no
// contrast on the same server: a censor's drop and an outage between this
// network and Apple look the same, however long they last. Only path
// evidence (where the packets stop) could tell them apart.
var bareSilence = map[string]bool{MethodTCPTimeout: true, MethodTLSTimeout: true}

// serverWide lists the methods where the server (or something in front of
// it) refused or reset every connection whatever name it carried: what a
// cluster in maintenance does too. Only independent servers showing the
// same, or path evidence, make them a censor's.
var serverWide = map[string]bool{MethodTCPReset: true, MethodTCPRefused: true, MethodTLSReset: true}

// corroborate turns candidates into verdicts. A candidate becomes blocked
// only when:
//
//   - it held over time: in two tries or more (repetitions, or the
//     confirmation pass made after a delay), so a moment's outage never
//     makes a block;
//   - independent servers agree: another endpoint of the same group and
//     transport, at an address outside this one's /24 (IPv4) or /48
//     (IPv6), shows the same method. Where every server of the group
//     shares one prefix there is no second server to ask, and the
//     confirmation over time stands in for it; except for resets and
//     refusals whatever the name (serverWide), which one server in
//     maintenance makes too: they are the server's problem then;
//   - silence (timeouts), which packet loss imitates, is shown by a
//     majority of the group's measured endpoints of the same transport (of
//     the same port, for port filtering), and on an unstable network by
//     all of them, in enough tries that loss alone is unlikely to explain
//     it (maxLossChance);
//   - it is not bare silence (bareSilence): that is "unreachable", a block
//     or an outage.
//
// An endpoint that falls short is inconclusive, its pattern kept in
// Suspected.
func corroborate(rs []*judged, ns *netState, confirmed bool) {
	// tries counts, per group and candidate, the failed tries behind it.
	tries := map[string]int{}
	for _, r := range rs {
		if r.candidate != "" {
			tries[r.candidateKey()] += r.tries
		}
	}
	// Resets and refusals at connect go last: they may be the residual of
	// a block another endpoint of the same address shows (residualOf).
	ordered := make([]*judged, 0, len(rs))
	for _, late := range []bool{false, true} {
		for _, r := range rs {
			if r.candidate != "" && serverWide[r.candidate] == late {
				ordered = append(ordered, r)
			}
		}
	}
	for _, r := range ordered {
		peers, independent, group, shared := 0, 0, 0, true
		for _, o := range rs {
			if !o.counted || o.v.Group != r.v.Group || o.e.key.kind != r.e.key.kind {
				continue
			}
			if r.candidate == MethodPortFiltering && o.v.Port != r.v.Port {
				continue
			}
			group++
			apart := !samePrefix(o.e.addr, r.e.addr)
			if apart {
				shared = false
			}
			if o != r && o.candidate == r.candidate {
				peers++
				if apart {
					independent++
				}
			}
		}
		r.v.Peers = peers
		shortfall := ""
		switch {
		case r.tries < 2:
			shortfall = "seen in one pass only: a block must still hold when measured again after a pause"
			if !confirmed {
				shortfall += ", and this run made no confirmation pass"
			}
		case r.lossLike && ns.unstable && (peers+1 < group || lossChance(ns.lossRate, tries[r.candidateKey()]) > maxLossChance):
			shortfall = fmt.Sprintf("on a network that loses packets (%.0f%% of reference steps timed out), silence counts only when every such endpoint of the group shows it, in so many tries that loss alone would explain it less than once in a million runs (here %d of %d endpoints, %d tries)",
				100*ns.lossRate, peers+1, group, tries[r.candidateKey()])
		case r.lossLike && (peers+1)*2 <= group:
			shortfall = fmt.Sprintf("silence proves little on its own, and only %d of %d such endpoints of the group showed it", peers+1, group)
		case serverWide[r.candidate] && independent == 0:
			if residualOf(r, rs) {
				continue
			}
			r.v.Verdict, r.v.Suspected = VerdictFailed, r.candidate
			r.v.Evidence += fmt.Sprintf("; no server outside %s showed it: a server (or its cluster) that %s every connection whatever the name is a server problem, such as maintenance, not a block, unless path evidence shows the network does it", prefixOf(r.e.addr), serverWideVerb[r.candidate])
			continue
		case independent == 0 && !shared:
			shortfall = "no other server (outside " + prefixOf(r.e.addr) + ") showed it, and one server's fault is not a block"
		case independent == 0 && resetOnName(r) && !beforeServer(firstOf(resetTrace(r, rs))):
			shortfall = singleFrontEnd(r, rs)
		}
		if shortfall != "" {
			r.v.Verdict, r.v.Suspected = VerdictInconclusive, r.candidate
			r.v.Evidence += "; not called blocked: " + shortfall
			continue
		}
		if bareSilence[r.candidate] || r.bare {
			r.v.Verdict, r.v.Suspected = VerdictUnreachable, r.candidate
			if r.bare {
				r.v.Evidence += "; no TCP to Apple's servers worked either, so Apple's network itself may be out of reach"
			}
			r.v.Evidence += "; unreachable, a block or an outage: nothing here tells a censor's drop from a fault between this network and Apple (no reset, no forged answer, no server-name contrast)"
			continue
		}
		r.v.Verdict, r.v.Method = VerdictBlocked, r.candidate
		if independent == 0 && shared && group > 1 {
			r.v.Evidence += fmt.Sprintf("; every server measured is in %s, so the pattern's holding over time stands in for a second server", prefixOf(r.e.addr))
		}
		if resetOnName(r) {
			placeReset(r, rs)
		}
	}
}

// residualOf reports whether r, reset or refused at connect in every try,
// sits at an address where another endpoint's handshake was reset on the
// target's server name while the control name worked: a censor's residual
// block, which resets everything to the server for a while after a
// trigger, reached r's port first. r then takes that endpoint's method
// once it is called blocked, and residualOf sets the verdict.
func residualOf(r *judged, rs []*judged) bool {
	if r.candidate != MethodTCPReset && r.candidate != MethodTCPRefused {
		return false
	}
	for _, o := range rs {
		if o == r || o.e.addr != r.e.addr || o.candidate != MethodSNIFiltering || o.v.Verdict != VerdictBlocked {
			continue
		}
		r.v.Verdict, r.v.Method = VerdictBlocked, o.v.Method
		r.v.Evidence += fmt.Sprintf("; port %d of the same address was reset on the server name while the control name worked: this is the residual block censors keep on a server after a trigger, reached first here", o.v.Port)
		return true
	}
	return false
}

var serverWideVerb = map[string]string{MethodTCPReset: "resets", MethodTCPRefused: "refuses", MethodTLSReset: "resets"}

// prefixOf names the /24 or /48 of a, the unit of "the same server".
func prefixOf(a netip.Addr) string {
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return a.String()
	}
	return p.String()
}
