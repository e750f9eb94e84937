package analysis

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/reachprobe/reachprobe/measurements"
)

// Two responses to one query: an on-path injector racing the resolver
// when the first is forged; a router forwarding to two resolvers, or an
// injector that lost the race, when the first is the name's.

// injection looks for queries answered twice, differently, with the
// first answer, the one applications use, not t's: the signature of an
// on-path injector racing the resolver. A first answer that is t's
// followed by a different one (a router forwarding to two resolvers, or
// an injector that lost the race) is no block: the later one is noted,
// and cleared when it is t's too.
func (j *dnsJudge) injection(s *dnsSummary) ([]netip.Addr, string) {
	if len(s.dohAddrs) == 0 && len(s.t.Networks) == 0 {
		return nil, "" // nothing tells which answer is the name's
	}
	var forged, lateBad, lateGood []netip.Addr
	evidence := ""
	for _, q := range s.resolver {
		if q.obs.DNS == nil {
			continue
		}
		for _, late := range q.obs.DNS.Late {
			lateAddrs := answerAddrs(late.Answers)
			lateOutcome := classifyRcode(late.Rcode, "", len(lateAddrs))
			if lateOutcome == q.outcome && slices.Equal(sortedAddrs(lateAddrs), sortedAddrs(q.addrs)) {
				continue // a duplicate, not a second opinion
			}
			var bad []netip.Addr
			for _, a := range q.addrs {
				if !j.consistent(s, a) {
					bad = append(bad, a)
				}
			}
			var laterBad []netip.Addr
			for _, a := range lateAddrs {
				if !j.consistent(s, a) {
					laterBad = append(laterBad, a)
				}
			}
			// A denial racing a consistent answer is forged too.
			deniedFirst := q.outcome != dnsAnswer && q.outcome != dnsNoAnswer && len(lateAddrs) > 0 && len(laterBad) == 0
			if len(bad) == 0 && !deniedFirst {
				// The first answer is the name's: what came later is
				// not what applications use.
				if q.outcome == dnsAnswer {
					lateBad = append(lateBad, laterBad...)
					for _, a := range lateAddrs {
						if !slices.Contains(laterBad, a) && !slices.Contains(q.addrs, a) {
							lateGood = append(lateGood, a)
						}
					}
				}
				continue
			}
			forged = append(forged, bad...)
			forged = append(forged, laterBad...)
			if evidence == "" {
				evidence = fmt.Sprintf("one %s query for %s got two different answers (%s, then %s after %s); ",
					q.qtype, s.t.Host, responseText(q.outcome, q.addrs), responseText(lateOutcome, lateAddrs), late.Delay)
				if len(bad) > 0 {
					evidence += fmt.Sprintf("the first, which applications use, gave %s, not %s's address (encrypted DNS: %s)",
						addrList(sortedAddrs(bad)), s.t.Host, addrListOr(s.dohAddrs, "no answer"))
				} else {
					evidence += "the first one denies a name that exists"
				}
			}
		}
	}
	if evidence == "" {
		j.noteLate(s, sortedAddrs(lateGood), sortedAddrs(lateBad))
	}
	return sortedAddrs(forged), evidence
}

// noteLate words the later answers that followed a first answer that is
// the name's: good ones are the name's too, bad ones no check shows to
// be.
func (j *dnsJudge) noteLate(s *dnsSummary, good, bad []netip.Addr) {
	for _, a := range good {
		s.notes = append(s.notes, fmt.Sprintf("; a later second response gave %s, also %s's (%s)", a, s.t.Host, j.consistentWhy(s, a)))
	}
	if len(bad) > 0 {
		s.notes = append(s.notes, fmt.Sprintf("; a later second response gave %s, which nothing shows to be %s's (outside its networks, unlike encrypted DNS's %s, no verified handshake there); applications use the first response",
			addrList(bad), s.t.Host, addrListOr(s.dohAddrs, "no answer")))
	}
}

// lateAddrs returns the addresses only late responses of the network's
// resolver gave.
func (s *dnsSummary) lateAddrs() []netip.Addr {
	var out []netip.Addr
	for _, q := range s.resolver {
		if q.obs.DNS == nil {
			continue
		}
		for _, late := range q.obs.DNS.Late {
			for _, a := range answerAddrs(late.Answers) {
				if !slices.Contains(s.resolverAddrs, a) {
					out = append(out, a)
				}
			}
		}
	}
	return sortedAddrs(out)
}

// cutTooSoon returns the first of the resolver's queries whose listening
// window the probe cut short (ListenCut) though its first response is not
// shown here to be the name's: an answer not consistent with the name, or
// a denial. A cut is the probe's claim that a later response could only
// be one applications do not use; where this analysis cannot confirm the
// claim, the silence after the cut says nothing about an injector racing
// the resolver, and the name is not judged ok on it. A first response
// that is the name's, or that has no address, lets no late one make an
// injection (see injection), so its cut hides nothing.
func (j *dnsJudge) cutTooSoon(s *dnsSummary) (dnsQuery, bool) {
	for _, q := range s.resolver {
		if q.obs.DNS == nil || q.obs.DNS.ListenCut == "" {
			continue
		}
		switch q.outcome {
		case dnsNoAnswer:
			continue
		case dnsAnswer:
			if !slices.ContainsFunc(q.addrs, func(a netip.Addr) bool { return !j.consistent(s, a) }) {
				continue
			}
		}
		return q, true
	}
	return dnsQuery{}, false
}

// cutWords words why a query's window was cut, for evidence.
func cutWords(reason string) string {
	switch reason {
	case measurements.ListenCutControlAgrees:
		return "its first response agreeing with encrypted DNS"
	case measurements.ListenCutHandshakeVerified:
		return "a handshake for the name verifying at its addresses"
	}
	return "a reason this analysis does not know"
}

// cutEvidence is what an ok verdict becomes when cutTooSoon found q.
func cutEvidence(s *dnsSummary, q dnsQuery) string {
	return fmt.Sprintf("; but the probe stopped listening for a second response to its %s query %s after the first, on %s, which is not borne out here: the first response gave %s, which nothing shows to be %s's, so an injector racing the resolver may have gone unheard",
		q.qtype, q.obs.DNS.Listened, cutWords(q.obs.DNS.ListenCut), responseText(q.outcome, q.addrs), s.t.Host)
}
