package analysis

import (
	"fmt"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// flakyShare is the share of repeated measurements that may succeed only
// sometimes before the network is called unstable. Censorship is steady
// (a block holds for every try) while loss is scattered; a few flaky series
// can be a residual block after a trigger, a handful more is loss.
const flakyShare = 0.05

// minFlaky is the fewest flaky series that make a network unstable on
// their own, whatever the share: one flaky series is too little to judge
// the network by.
const minFlaky = 2

// netState is the network's verdict and what other verdicts need of it.
type netState struct {
	status         string
	reasons        []string
	checks         NetworkChecks
	unstable       bool
	noConnectivity bool
	// resolverDown: the network's resolver gives no address for any
	// name, control names included.
	resolverDown bool
	// lossRate is the share of reference steps (control hosts' steps and
	// DNS lookups) that timed out: an estimate of loss.
	lossRate float64
}

// referenceLoss returns the share of reference steps that timed out:
// control hosts' steps and every DNS lookup, where a censor of Apple's
// services has no reason to act (less the resolver's when it is down:
// see referenceQueries).
func referenceLoss(ix *index, sums map[string]*dnsSummary, down bool) float64 {
	total, timeouts := 0, 0
	for _, k := range ix.endpointIDs {
		e := ix.endpoints[k]
		if e.target.Group != measurements.GroupControl {
			continue
		}
		for _, a := range e.attempts {
			for _, o := range []*measurements.Observation{a.connect, a.control, a.main} {
				if o == nil {
					continue
				}
				total++
				if o.Failure == failTimeout {
					timeouts++
				}
			}
		}
	}
	for _, s := range sums {
		for _, q := range s.referenceQueries(down) {
			total++
			if q.outcome == dnsTimeout {
				timeouts++
			}
		}
	}
	if total == 0 {
		return 0
	}
	return float64(timeouts) / float64(total)
}

// measureFlakiness counts the series that succeeded only in some tries and
// says whether the network loses packets: a control host or encrypted DNS
// flaky, or flaky series beyond minFlaky and flakyShare. In a run without
// repeats, a control host timing out while another answers counts as loss.
// down says the network's resolver answers no name: its silence is an
// outage, not loss.
func measureFlakiness(ix *index, ss *seriesSet, sums map[string]*dnsSummary, down bool) (flaky int, unstable bool, why string) {
	multi, controlFlaky := 0, false
	for _, s := range ss.all {
		if s.attempts > 1 {
			multi++
		}
		if s.flaky() {
			flaky++
			controlFlaky = controlFlaky || s.target.Group == measurements.GroupControl
		}
	}
	type dnsKey struct{ target, engine, qtype, resolver string }
	dnsSeries := map[dnsKey][2]int{} // attempts, answered
	for _, s := range sums {
		for _, q := range s.referenceQueries(down) {
			k := dnsKey{s.t.Name, q.engine, q.qtype, ""}
			if q.obs.DNS != nil {
				k.resolver = q.obs.DNS.Resolver
			}
			c := dnsSeries[k]
			c[0]++
			if q.outcome != dnsTimeout && q.outcome != dnsOther {
				c[1]++
			}
			dnsSeries[k] = c
		}
	}
	for k, c := range dnsSeries {
		if c[0] > 1 {
			multi++
		}
		if c[0] > 1 && c[1] > 0 && c[1] < c[0] {
			flaky++
			controlFlaky = controlFlaky || k.engine == measurements.EngineDoH
		}
	}
	switch {
	case controlFlaky:
		return flaky, true, fmt.Sprintf("%d measurements succeeded in some tries and failed in others, control hosts among them (packet loss?), so single failures are not counted as blocking", flaky)
	case flaky >= minFlaky && float64(flaky) >= flakyShare*float64(multi):
		return flaky, true, fmt.Sprintf("%d measurements succeeded in some tries and failed in others (packet loss?), so single failures are not counted as blocking", flaky)
	}
	if ix.repeats > 1 {
		return flaky, false, ""
	}
	// Measured once, loss cannot show as flakiness; it shows as failures
	// where censorship has no reason to act: control hosts, DNS lookups.
	for _, s := range ss.all {
		if s.target.Group == measurements.GroupControl && s.successes < s.attempts {
			return flaky, true, "a control host failed in a run without repeats: the network may lose packets, so silence counts only when every endpoint of a service is silent"
		}
	}
	for _, s := range sums {
		for _, q := range s.referenceQueries(down) {
			if q.outcome == dnsTimeout {
				return flaky, true, "DNS lookups timed out in a run without repeats: the network may lose packets, so silence counts only when every endpoint of a service is silent"
			}
		}
	}
	return flaky, false, ""
}

// assessNetwork judges the network from the control hosts, the network's
// resolver (down: it answers no name), encrypted DNS and whether anything
// at all answered.
func assessNetwork(ix *index, ss *seriesSet, sums map[string]*dnsSummary, down bool, flaky int, unstable bool, why string) *netState {
	ns := &netState{unstable: unstable, lossRate: referenceLoss(ix, sums, down), resolverDown: down}
	c := &ns.checks
	c.FlakySeries = flaky
	c.TCP = ss.check(func(s *series) bool { return s.step == measurements.StepTCP })
	c.TLS = tlsCheck(ss)
	c.QUIC = ss.check(func(s *series) bool { return s.step == measurements.StepQUIC })
	c.UDP = ss.check(func(s *series) bool { return s.step == measurements.StepUDP })
	c.DNS = resolverCheck(sums)
	c.DoH, c.IPv6 = checkNotMeasured, checkNotMeasured
	dohAnswered := false
	for _, s := range sums {
		for _, q := range s.doh {
			if c.DoH == checkNotMeasured {
				c.DoH = checkFailed
			}
			if q.outcome != dnsTimeout && q.outcome != dnsOther {
				dohAnswered = true
			}
			if q.outcome == dnsAnswer {
				c.DoH = checkOK
			}
		}
	}
	anyReached, anyMeasured := false, len(sums) > 0
	for _, k := range ix.endpointIDs {
		e := ix.endpoints[k]
		anyMeasured = true
		if e.skipped == measurements.SkipNoIPv6Route {
			c.IPv6 = checkNoRoute
		}
	}
	for _, s := range ss.all {
		anyReached = anyReached || s.successes > 0
		if family(s.addr) == familyIPv6 && c.IPv6 != checkNoRoute && c.IPv6 != checkOK {
			c.IPv6 = checkFailed
			if s.successes > 0 {
				c.IPv6 = checkOK
			}
		}
	}
	switch {
	case !anyMeasured:
		ns.status, ns.reasons = NetworkUnknown, []string{"the run recorded no observations"}
		return ns
	case !anyReached && !dohAnswered:
		ns.status, ns.noConnectivity = NetworkNoConnectivity, true
		ns.reasons = []string{"nothing answered, not the control hosts, not encrypted DNS, not Apple's servers: the network is down or offline, and nothing is called blocked"}
		return ns
	}
	var partial []string
	switch {
	case c.TCP == checkNotMeasured && c.UDP == checkNotMeasured && c.QUIC == checkNotMeasured:
		partial = append(partial, "the catalog has no control hosts, so failures cannot be told from outages")
	case ss.controlsAllFailed():
		partial = append(partial, "no control host could be reached, so failures without a control on the same server are not attributed to blocking")
	default:
		if c.TCP == checkFailed {
			partial = append(partial, "control hosts did not connect over TCP")
		}
		if c.TLS == checkUnverified {
			partial = append(partial, "control hosts' certificates did not verify: this computer may lack root certificates, or the network intercepts all TLS")
		}
		if c.UDP == checkFailed && c.QUIC != checkOK {
			partial = append(partial, "no control host answered over UDP (STUN, QUIC), so UDP silence is not attributed to blocking")
		}
	}
	if c.DoH == checkFailed {
		partial = append(partial, "encrypted DNS failed, so the network's DNS answers cannot be checked")
	}
	if down {
		partial = append(partial, "apps cannot look up any server: "+resolverDownWhy)
	}
	switch {
	case len(partial) > 0:
		ns.status, ns.reasons = NetworkPartial, partial
		if unstable {
			ns.reasons = append(ns.reasons, why)
		}
	case unstable:
		ns.status, ns.reasons = NetworkUnstable, []string{why}
	default:
		ns.status = NetworkOK
		if ix.repeats > 1 {
			ns.reasons = []string{"control hosts answered in every try"}
		} else {
			ns.reasons = []string{"control hosts answered; measured once, so a failure counts as blocking only when it held when measured again after a pause and independent servers agree"}
			if ix.confirmed {
				ns.reasons[0] += " (this run measured what looked blocked again after a pause)"
			}
		}
	}
	if c.IPv6 == checkNoRoute {
		ns.reasons = append(ns.reasons, "this network has no IPv6 route, so IPv6 was not measured (not a failure)")
	}
	return ns
}

// tlsCheck summarises control hosts' handshakes with their own names:
// "ok" when one verified in every try, "unverified" when they completed but
// no chain verified.
func tlsCheck(ss *seriesSet) string {
	out := checkNotMeasured
	for _, s := range ss.all {
		if s.tainted || s.target.Group != measurements.GroupControl || s.step != measurements.StepTLS || s.control {
			continue
		}
		switch {
		case s.attempts > 0 && s.verified == s.attempts:
			return checkOK
		case s.verified > 0:
			out = checkFlaky
		case s.successes > 0 && out != checkFlaky:
			out = checkUnverified
		case out == checkNotMeasured:
			out = checkFailed
		}
	}
	return out
}

func (ns *netState) network() Network {
	return Network{Status: ns.status, Reason: strings.Join(ns.reasons, "; "), Checks: ns.checks}
}
