package analysis

import (
	"net/netip"
	"slices"

	"github.com/reachprobe/reachprobe/measurements"
)

// Analyze judges one run. It is a pure function of in: the same input
// gives the same report, byte for byte once encoded.
func Analyze(in Input) Report {
	return analyze(in).report
}

// judgement is one run's analysis with what it rests on.
type judgement struct {
	ix       *index
	report   Report
	judged   []*judged
	dns      map[string]dnsResult
	suspectN []string // targets whose DNS verdict is not ok, catalog order
}

func analyze(in Input) *judgement {
	ix := buildIndex(in)
	ss := buildSeries(ix)

	sums := map[string]*dnsSummary{}
	for _, t := range ix.orderedTargets() {
		if obs := ix.dns[t.Name]; len(obs) > 0 {
			sums[t.Name] = summarizeDNS(t, obs)
		}
	}
	down := resolverDown(sums)
	// Addresses only late DNS responses gave are not what applications
	// use: no reference, not counted.
	lateOnly := lateOnlyAddrs(sums)
	for name, addrs := range lateOnly {
		for a := range addrs {
			ss.taint(name, a)
		}
	}
	flaky, unstable, why := measureFlakiness(ix, ss, sums, down)

	judge := &dnsJudge{summaries: sums, verifiedAt: verifiedAddresses(ix), unstable: unstable, resolverDown: down,
		noIPv6Route: noIPv6Route(ix), fakeShared: sharedFakeIPs(sums), localResolver: localResolver(sums)}
	dnsResults := map[string]dnsResult{}
	forged := map[string]map[netip.Addr]bool{}
	for _, t := range ix.orderedTargets() {
		s := sums[t.Name]
		if s == nil {
			continue
		}
		res := judge.judge(s)
		res.unresolved = down && !s.resolverAnswers()
		dnsResults[t.Name] = res
		for _, a := range res.forged {
			if slices.Contains(s.dohAddrs, a) {
				continue // encrypted DNS gave it too: measured as a real address
			}
			if forged[t.Name] == nil {
				forged[t.Name] = map[netip.Addr]bool{}
			}
			forged[t.Name][a] = true
			ss.taint(t.Name, a)
		}
	}

	ns := assessNetwork(ix, ss, sums, down, flaky, unstable, why)
	ej := &endpointJudge{ix: ix, ss: ss, certs: buildCertBook(ix), net: ns, dns: dnsResults, forged: forged, lateOnly: lateOnly}
	var judgedAll []*judged
	byTarget := map[string][]*judged{}
	for _, k := range ix.endpointIDs {
		r := ej.judge(ix.endpoints[k])
		judgedAll = append(judgedAll, r)
		byTarget[k.target] = append(byTarget[k.target], r)
	}
	corroborate(judgedAll, ns, ix.confirmed)

	rep := Report{
		FormatVersion: FormatVersion,
		RunID:         in.Run.ID,
		RunStarted:    in.Run.Started,
		RunStatus:     in.Run.Status,
		Catalog:       in.Run.CatalogName,
		Repeats:       ix.repeats,
		Network:       ns.network(),
		DNS:           []DNSVerdict{},
		Endpoints:     []EndpointVerdict{},
		Notes:         ix.notes,
	}
	if proxyEverywhere(sums) {
		rep.Network.Resolver = ScopeLocalProxy
		rep.Notes = append(rep.Notes, "a local proxy answers every name, control names included, with fake-ip addresses (198.18.0.0/15, as Clash and sing-box do): applications connect through it, so DNS shows nothing about this network; a property of this network, not blocking.")
	}
	if in.Run.Status == measurements.RunInterrupted || in.Run.Status == measurements.RunFailed {
		rep.Notes = append(rep.Notes, "the run did not finish ("+in.Run.Status+"): steps it did not reach are missing, not failed.")
	}
	for _, t := range ix.orderedTargets() {
		if d, ok := dnsResults[t.Name]; ok {
			if ns.noConnectivity {
				demoteDNS(&d.verdict)
				dnsResults[t.Name] = d
			}
			rep.DNS = append(rep.DNS, d.verdict)
		}
	}
	for _, r := range judgedAll {
		if ns.noConnectivity && (r.v.Verdict == VerdictBlocked || r.v.Verdict == VerdictUnreachable) {
			r.v.Verdict, r.v.Suspected, r.v.Method = VerdictInconclusive, r.v.Method, ""
			r.v.Evidence += "; not called blocked: nothing could be reached at all"
		}
		rep.Endpoints = append(rep.Endpoints, r.v)
	}

	tjs := map[string][]*targetJudgement{}
	for _, t := range ix.orderedTargets() {
		var d *dnsResult
		if res, ok := dnsResults[t.Name]; ok {
			d = &res
		}
		tjs[t.Group] = append(tjs[t.Group], judgeTarget(t, d, byTarget[t.Name]))
	}
	for _, g := range Services {
		if len(tjs[g]) > 0 {
			rep.Services = append(rep.Services, judgeService(g, tjs[g], ns, ix.repeats))
		}
	}
	if rep.Services == nil {
		rep.Services = []ServiceVerdict{}
	}
	for i := range rep.Services {
		s := &rep.Services[i]
		if s.Verdict != VerdictBlocked && s.Verdict != VerdictDegraded {
			continue
		}
		for _, e := range rep.Endpoints {
			if e.Group == s.Service && e.Verdict == VerdictBlocked && e.Path != nil {
				s.Path = e.Path
				where := "; where: "
				if e.Path.Kind == PlaceReset {
					where = "; where the reset is injected: "
				}
				s.Reason += where + pathPhrase(e.Path)
				break
			}
		}
	}
	explainLocalPolicy(rep.Services, judgedAll)
	rep.Apps = judgeApps(rep.Services)
	if why := detectPortal(ix, sums); why != "" {
		behindPortal(&rep, why)
	}
	out := &judgement{ix: ix, report: rep, judged: judgedAll, dns: dnsResults}
	for _, t := range ix.orderedTargets() {
		if d, ok := dnsResults[t.Name]; ok && t.Group != measurements.GroupControl &&
			(d.verdict.Verdict == VerdictBlocked || d.verdict.Suspected != "") {
			out.suspectN = append(out.suspectN, t.Name)
		}
	}
	return out
}

func demoteDNS(v *DNSVerdict) {
	if v.Verdict != VerdictBlocked {
		return
	}
	v.Verdict, v.Suspected, v.Method = VerdictInconclusive, v.Method, ""
	v.Evidence += "; not called blocked: nothing could be reached at all"
}

// verifiedAddresses returns "address|server name" for every handshake with
// the target name that verified.
func verifiedAddresses(ix *index) map[string]bool {
	out := map[string]bool{}
	for _, k := range ix.endpointIDs {
		for _, a := range ix.endpoints[k].attempts {
			if o := a.main; verified(o) {
				out[k.address+"|"+o.TLS.ServerName] = true
			}
		}
	}
	return out
}

// noIPv6Route reports whether the probe recorded an IPv6 address as
// skipped for want of a route: this machine cannot use IPv6 answers.
func noIPv6Route(ix *index) bool {
	for _, e := range ix.endpoints {
		if e.skipped == measurements.SkipNoIPv6Route {
			return true
		}
	}
	return false
}
