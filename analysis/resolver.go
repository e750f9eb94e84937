package analysis

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/reachprobe/reachprobe/measurements"
)

// The network's resolver as a whole. A resolver that gives no address for
// any name, control names included, is down or broken: no censor of
// Apple's services needs that, so it is an outage, never evidence of
// blocking. But apps on that network cannot look up Apple's servers, so
// they do not work, whatever the addresses encrypted DNS found do.

// resolverDownWhy says what the network's resolver does when it is down,
// and what that means.
const resolverDownWhy = "the network's resolver gives no address for any name, control names included (an outage or a broken resolver, not blocking)"

// publicAnswer reports whether q gave t's name an address that is not a
// bogon, or a local proxy's fake-ip address (the proxy carries the
// connection), in its first response or a later one.
func publicAnswer(t *measurements.Target, q dnsQuery) bool {
	addrs := slices.Clone(q.addrs)
	if q.obs.DNS != nil {
		for _, late := range q.obs.DNS.Late {
			addrs = append(addrs, answerAddrs(late.Answers)...)
		}
	}
	return slices.ContainsFunc(addrs, func(a netip.Addr) bool { return resolvesFor(t, a) })
}

// resolverAnswers reports whether the network's resolver (the system, plain
// UDP and TCP engines) gave the name a public address in any lookup.
func (s *dnsSummary) resolverAnswers() bool {
	return slices.ContainsFunc(s.resolver, func(q dnsQuery) bool { return publicAnswer(s.t, q) })
}

// resolverDown reports whether the network's resolver was asked for a
// control name and gave no public address for any name at all.
func resolverDown(sums map[string]*dnsSummary) bool {
	control := false
	for _, s := range sums {
		if s.resolverAnswers() {
			return false
		}
		control = control || s.t.Group == measurements.GroupControl && len(s.resolver) > 0
	}
	return control
}

// resolverCheck summarises the network's resolver on control names as a
// NetworkChecks value: "ok" when it gave a control name a public address
// in every try, "flaky" in some, "failed" in none.
func resolverCheck(sums map[string]*dnsSummary) string {
	out := checkNotMeasured
	for _, s := range sums {
		if s.t.Group != measurements.GroupControl || len(s.resolver) == 0 {
			continue
		}
		tries, answered := map[int]bool{}, map[int]bool{}
		for _, q := range s.resolver {
			tries[q.obs.Repeat] = true
			if publicAnswer(s.t, q) {
				answered[q.obs.Repeat] = true
			}
		}
		switch {
		case len(answered) == len(tries):
			return checkOK
		case len(answered) > 0:
			out = checkFlaky
		case out == checkNotMeasured:
			out = checkFailed
		}
	}
	return out
}

// referenceQueries returns the lookups that tell how much the network
// loses: every lookup, less the resolver's when it answers nothing (its
// silence is an outage, not loss).
func (s *dnsSummary) referenceQueries(down bool) []dnsQuery {
	if down {
		return s.doh
	}
	return append(slices.Clone(s.resolver), s.doh...)
}

// unresolvedEvidence says why a name the resolver cannot give counts as
// failed.
func unresolvedEvidence(s *dnsSummary) string {
	return fmt.Sprintf("the network's resolver gave no address for %s (%s), nor for any other name, control names included: it is down or broken, not blocking this name", s.t.Host, outcomeList(s.resolver))
}
