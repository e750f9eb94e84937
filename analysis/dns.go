package analysis

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// Outcomes of one DNS query (its first response).
const (
	dnsAnswer   = "answer"   // addresses
	dnsNoAnswer = "noanswer" // NOERROR without addresses (normal for many AAAA queries)
	dnsNXDomain = "nxdomain"
	dnsRefused  = "refused"
	dnsServfail = "servfail"
	dnsTimeout  = "timeout"
	dnsOther    = "other"
)

// denialMethods maps a denying outcome to its method.
var denialMethods = map[string]string{
	dnsNXDomain: MethodDNSNXDomain,
	dnsRefused:  MethodDNSRefused,
	dnsServfail: MethodDNSServfail,
	dnsTimeout:  MethodDNSTimeout,
}

// dnsQuery is one lookup as analysis sees it.
type dnsQuery struct {
	obs     *measurements.Observation
	engine  string
	qtype   string
	outcome string
	addrs   []netip.Addr
}

// classifyRcode returns the outcome of a response or a failed lookup.
func classifyRcode(rcode, fail string, naddrs int) string {
	switch {
	case rcode == "NXDOMAIN" || fail == failDNSNXDomain:
		return dnsNXDomain
	case rcode == "REFUSED" || fail == failDNSRefused:
		return dnsRefused
	case rcode == "SERVFAIL" || fail == failDNSServfail:
		return dnsServfail
	case naddrs > 0:
		return dnsAnswer
	case fail == failTimeout:
		return dnsTimeout
	case fail == "" || fail == failDNSNoAnswer:
		return dnsNoAnswer
	}
	return dnsOther
}

// answerAddrs returns the A and AAAA addresses of answers, in order,
// leaving out records off the query name's CNAME chain: a record owned by
// a name off the chain is not the name's address, and the probe never
// connected to it.
func answerAddrs(answers []measurements.DNSAnswer) []netip.Addr {
	return measurements.AnswerAddrs(answers)
}

func newDNSQuery(o *measurements.Observation) dnsQuery {
	q := dnsQuery{obs: o, engine: measurements.EngineSystem}
	if o.DNS != nil {
		q.engine, q.qtype = o.DNS.Engine, o.DNS.QueryType
		q.addrs = answerAddrs(o.DNS.Answers)
		q.outcome = classifyRcode(o.DNS.Rcode, o.Failure, len(q.addrs))
	} else {
		q.outcome = classifyRcode("", o.Failure, 0)
	}
	if o.Control {
		q.engine = measurements.EngineDoH
	}
	return q
}

// dnsSummary is what one target's lookups gave.
type dnsSummary struct {
	t             *measurements.Target
	resolver      []dnsQuery // system, plain UDP and TCP engines
	doh           []dnsQuery // encrypted control
	resolverAddrs []netip.Addr
	dohAddrs      []netip.Addr
	// asn is the AS the probe recorded for each address answered, in
	// first and late responses of every engine (0: unknown).
	asn map[netip.Addr]uint
	// notes are remarks an ok verdict carries: private addresses beside
	// usable ones, a late second answer.
	notes []string
}

func summarizeDNS(t *measurements.Target, obs []*measurements.Observation) *dnsSummary {
	s := &dnsSummary{t: t, asn: map[netip.Addr]uint{}}
	for _, o := range obs {
		q := newDNSQuery(o)
		if q.engine == measurements.EngineDoH {
			s.doh = append(s.doh, q)
			s.dohAddrs = append(s.dohAddrs, q.addrs...)
		} else {
			s.resolver = append(s.resolver, q)
			s.resolverAddrs = append(s.resolverAddrs, q.addrs...)
		}
		if o.DNS != nil {
			s.noteASNs(o.DNS.Answers)
			for _, late := range o.DNS.Late {
				s.noteASNs(late.Answers)
			}
		}
	}
	s.resolverAddrs = sortedAddrs(s.resolverAddrs)
	s.dohAddrs = sortedAddrs(s.dohAddrs)
	return s
}

func (s *dnsSummary) noteASNs(answers []measurements.DNSAnswer) {
	for _, a := range answers {
		if ip, err := netip.ParseAddr(a.Data); err == nil && a.ASN != 0 {
			s.asn[ip.Unmap()] = a.ASN
		}
	}
}

func sortedAddrs(in []netip.Addr) []netip.Addr {
	out := slices.Clone(in)
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// engineAddrs returns the addresses engine gave for the name.
func (s *dnsSummary) engineAddrs(engine string) []netip.Addr {
	var out []netip.Addr
	for _, q := range s.resolver {
		if q.engine == engine {
			out = append(out, q.addrs...)
		}
	}
	return sortedAddrs(out)
}

// dohSays is what encrypted DNS says of the name: "resolves", "nxdomain"
// (every answered query denied it) or "unknown".
func (s *dnsSummary) dohSays() string {
	if len(s.dohAddrs) > 0 {
		return "resolves"
	}
	denied, answered := 0, 0
	for _, q := range s.doh {
		if q.outcome == dnsNXDomain {
			denied++
		}
		if q.outcome != dnsTimeout && q.outcome != dnsOther {
			answered++
		}
	}
	if denied > 0 && denied == answered {
		return "nxdomain"
	}
	return "unknown"
}

// dnsJudge judges every target's lookups against each other.
type dnsJudge struct {
	summaries map[string]*dnsSummary
	// verifiedAt holds "address|server name" for every handshake that
	// verified: an address where the name's chain verifies is the name's.
	verifiedAt map[string]bool
	unstable   bool
	// resolverDown: the network's resolver gives no address for any name,
	// control names included.
	resolverDown bool
	// noIPv6Route: the probe's host has no IPv6 route, so an IPv6 answer
	// is no address it can use.
	noIPv6Route bool
	// fakeShared holds the fake-ip range addresses the resolver gave to
	// more than one name: a proxy's pool gives each name its own.
	fakeShared map[netip.Addr]bool
	// localResolver: every nameserver the plain engines asked is inside
	// this network (private, loopback or link-local address).
	localResolver bool
}

// consistent reports whether a resolver's answer addr is plausible for t:
// inside t's networks, sharing an address, a prefix or an AS with
// encrypted DNS's answers, inside Apple's own AS for an Apple name, or an
// address where a handshake for t's name verified.
func (j *dnsJudge) consistent(s *dnsSummary, addr netip.Addr) bool {
	return j.consistentWhy(s, addr) != ""
}

// consistentWhy says why addr is plausible for t, in words, or "" when
// nothing shows it is (see consistent).
func (j *dnsJudge) consistentWhy(s *dnsSummary, addr netip.Addr) string {
	switch {
	case inNetworks(s.t, addr):
		return "inside its expected networks"
	case j.verifiedAt[addr.String()+"|"+s.t.ServerName]:
		return "a handshake for " + s.t.ServerName + " verified there"
	case slices.ContainsFunc(s.dohAddrs, func(d netip.Addr) bool { return d == addr || samePrefix(d, addr) }):
		return "next to encrypted DNS's answers"
	case s.sameAS(addr):
		if asn := s.asn[addr.Unmap()]; appleASNs[asn] && s.t.Group != measurements.GroupControl {
			return fmt.Sprintf("in Apple's own network, AS%d", asn)
		}
		return fmt.Sprintf("in the network of encrypted DNS's answers, AS%d", s.asn[addr.Unmap()])
	}
	return ""
}

// engineAnswersOthers reports whether engine gave public addresses for a
// name other than t's: the resolver works, so a denial is about the name.
func (j *dnsJudge) engineAnswersOthers(engine string, t *measurements.Target) bool {
	for name, s := range j.summaries {
		if name == t.Name {
			continue
		}
		for _, q := range s.resolver {
			if q.engine == engine && q.outcome == dnsAnswer && slices.ContainsFunc(q.addrs, func(a netip.Addr) bool { return resolvesFor(s.t, a) }) {
				return true
			}
		}
	}
	return false
}

// dnsResult is the verdict on one target's name and the addresses judged
// forged.
type dnsResult struct {
	verdict DNSVerdict
	forged  []netip.Addr
	// absent: the name does not exist, encrypted DNS agreeing.
	absent bool
	// unresolved: the network's resolver, which apps use, gives no
	// address for any name, this one included.
	unresolved bool
	// scope, when set, says the name fails by this network's own choice
	// (Scope* values), not a censor's: its target fails whatever the
	// addresses encrypted DNS found did, as apps use the network's
	// resolver.
	scope string
}

func (j *dnsJudge) judge(s *dnsSummary) dnsResult {
	t := s.t
	v := DNSVerdict{
		Target: t.Name, Group: t.Group, Host: t.Host,
		ResolverAnswers: addrStrings(s.resolverAddrs), ControlAnswers: addrStrings(s.dohAddrs),
		Queries: len(s.resolver) + len(s.doh),
	}
	if late := s.lateAddrs(); len(late) > 0 {
		v.LateAnswers = addrStrings(late)
	}
	// Failure is the first failure of the resolver's lookups; an empty
	// answer (many names have no AAAA record) is not one.
	for _, q := range s.resolver {
		if f := q.obs.Failure; f != "" && f != failDNSNoAnswer && v.Failure == "" {
			v.Failure = f
		}
	}
	res := dnsResult{}
	block := func(method string, forged []netip.Addr, evidence string) dnsResult {
		if !spansRepeats(s.resolver) {
			// A moment's answer is not a block: the run's confirmation
			// pass looks the name up again after a pause.
			v.Verdict, v.Suspected = VerdictInconclusive, method
			v.Evidence = evidence + "; not called blocked: seen in one pass only, and a block must still hold when the name is looked up again after a pause"
			return dnsResult{verdict: v}
		}
		v.Verdict, v.Method, v.Evidence = VerdictBlocked, method, evidence
		v.Forged = addrStrings(forged)
		return dnsResult{verdict: v, forged: forged}
	}
	undecided := func(verdict, suspected, evidence string) dnsResult {
		v.Verdict, v.Suspected, v.Evidence = verdict, suspected, evidence
		if verdict == VerdictOK {
			v.Failure = ""
			v.Evidence += strings.Join(s.notes, "")
			if q, cut := j.cutTooSoon(s); cut {
				// Nothing raced the first response only as far as the
				// probe listened.
				v.Verdict, v.Suspected = VerdictInconclusive, MethodDNSInjection
				v.Evidence += cutEvidence(s, q)
			}
		}
		res.verdict = v
		return res
	}
	if len(s.resolver) == 0 {
		return undecided(VerdictInconclusive, "", "no lookup through the network's resolver was recorded")
	}
	if forged, ev := j.injection(s); ev != "" {
		return block(MethodDNSInjection, forged, ev)
	}
	if r, done := j.relayOptOut(s, undecided); done {
		return r
	}
	if r, done := j.bogon(s, block, undecided); done {
		return r
	}
	if j.resolverDown && !s.resolverAnswers() && s.dohSays() != "nxdomain" {
		// Nothing about this name: the resolver answers no name at all.
		return undecided(VerdictFailed, "", unresolvedEvidence(s))
	}
	if r, done := j.denial(s, block, undecided); done {
		return r
	}
	if r, done := j.inconsistency(s, block, undecided); done {
		return r
	}
	if len(s.resolverAddrs) > 0 {
		return undecided(VerdictOK, "", fmt.Sprintf("the network's resolver answered %s with %s", t.Host, addrList(s.resolverAddrs)))
	}
	if s.dohSays() == "nxdomain" {
		r := undecided(VerdictFailed, "", fmt.Sprintf("%s does not exist: encrypted DNS does not find it either", t.Host))
		r.absent = true
		return r
	}
	return undecided(VerdictInconclusive, "", fmt.Sprintf("the network's resolver gave no address for %s (%s)", t.Host, outcomeList(s.resolver)))
}

type blockFunc func(method string, forged []netip.Addr, evidence string) dnsResult
type undecidedFunc func(verdict, suspected, evidence string) dnsResult

// denial judges NXDOMAIN, REFUSED, SERVFAIL and silence from the network's
// resolver, engine by engine (plain UDP and TCP first: they show the
// resolver's own rcode).
func (j *dnsJudge) denial(s *dnsSummary, block blockFunc, undecided undecidedFunc) (dnsResult, bool) {
	for _, engine := range []string{measurements.EngineUDP, measurements.EngineTCP, measurements.EngineSystem} {
		var all, typeA []dnsQuery
		gaveAddrs := false
		for _, q := range s.resolver {
			if q.engine != engine {
				continue
			}
			all = append(all, q)
			gaveAddrs = gaveAddrs || len(q.addrs) > 0
			if q.qtype == "A" {
				typeA = append(typeA, q)
			}
		}
		if len(typeA) == 0 {
			typeA = all
		}
		if len(all) == 0 || gaveAddrs {
			if len(all) > 0 {
				return dnsResult{}, false // this engine resolved the name: no denial
			}
			continue
		}
		outcome := typeA[0].outcome
		method, denying := denialMethods[outcome]
		if !denying || slices.ContainsFunc(typeA, func(q dnsQuery) bool { return q.outcome != outcome }) {
			continue
		}
		// Silence and SERVFAIL also come from loss and overloaded
		// resolvers: they count only when every query of the engine, in
		// more than one try, got them.
		transient := outcome == dnsServfail || outcome == dnsTimeout
		host := s.t.Host
		what := fmt.Sprintf("the %s resolver %s for %s in %d of %d lookups", engineName(engine), outcomeVerb(outcome), host, len(typeA), len(typeA))
		if sys := s.engineAddrs(measurements.EngineSystem); engine != measurements.EngineSystem && len(sys) > 0 {
			// Apps use the system resolver, and it answers: whatever the
			// network's resolver does, the name resolves for them.
			return undecided(VerdictOK, method, what+fmt.Sprintf(", but this computer's resolver answers %s", addrList(sys))), true
		}
		switch {
		case s.dohSays() == "nxdomain":
			r := undecided(VerdictFailed, "", fmt.Sprintf("%s does not exist: encrypted DNS does not find it either", host))
			r.absent = true
			return r, true
		case s.dohSays() != "resolves":
			return undecided(VerdictInconclusive, method, what+"; encrypted DNS could not check it"), true
		case !j.engineAnswersOthers(engine, s.t):
			return undecided(VerdictFailed, "", what+", and it answers no other name either: the resolver is broken"), true
		case transient && slices.ContainsFunc(all, func(q dnsQuery) bool { return q.outcome != outcome }):
			return undecided(VerdictInconclusive, method, what+fmt.Sprintf("; its other queries got %s", outcomeList(all))), true
		case transient && !spansRepeats(all):
			return undecided(VerdictInconclusive, method, what+"; one try is not enough to tell"), true
		case outcome == dnsTimeout && j.unstable:
			return undecided(VerdictInconclusive, method, what+"; the network loses packets, so silence proves little"), true
		}
		return block(method, nil, fmt.Sprintf("%s, while it answers other names and encrypted DNS resolves it to %s", what, addrList(s.dohAddrs))), true
	}
	return dnsResult{}, false
}

// inconsistency judges answers outside the expected networks while
// encrypted DNS gives addresses inside them.
func (j *dnsJudge) inconsistency(s *dnsSummary, block blockFunc, undecided undecidedFunc) (dnsResult, bool) {
	if len(s.t.Networks) == 0 || !slices.ContainsFunc(s.dohAddrs, func(a netip.Addr) bool { return inNetworks(s.t, a) }) {
		return dnsResult{}, false
	}
	var bad, good []netip.Addr
	for _, a := range s.resolverAddrs {
		if isBogonFor(s.t, a) {
			continue // judged by bogon
		}
		switch why := j.consistentWhy(s, a); {
		case why == "":
			bad = append(bad, a)
		case !inNetworks(s.t, a) && s.sameAS(a) && !slices.Contains(s.dohAddrs, a):
			// Geo-DNS: another server of the same operator.
			s.notes = append(s.notes, fmt.Sprintf("; %s is outside its expected networks and unlike encrypted DNS's answers, but %s (geo-DNS), which is not a block", a, why))
			good = append(good, a)
		default:
			good = append(good, a)
		}
	}
	if len(bad) == 0 {
		return dnsResult{}, false
	}
	ev := fmt.Sprintf("the network's resolver answered %s with %s, outside its expected networks and unlike encrypted DNS's %s, and no handshake there verified",
		s.t.Host, addrList(bad), addrList(s.dohAddrs))
	if len(good) > 0 {
		return undecided(VerdictInconclusive, MethodDNSInconsistent, ev+fmt.Sprintf("; it also gave %s, which is consistent", addrList(good))), true
	}
	return block(MethodDNSInconsistent, bad, ev), true
}

// spansRepeats reports whether qs come from more than one repetition.
func spansRepeats(qs []dnsQuery) bool {
	for _, q := range qs {
		if q.obs.Repeat != qs[0].obs.Repeat {
			return true
		}
	}
	return false
}
