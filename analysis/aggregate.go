package analysis

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// targetJudgement is one target's verdict and what it rests on.
type targetJudgement struct {
	t  *measurements.Target
	tv TargetVerdict
	// absent: the name does not exist (encrypted DNS agrees), so the
	// target says nothing about its service.
	absent bool
	// unresolved: failed because the network's resolver gives no address
	// for any name (resolverDown), whatever the addresses did.
	unresolved bool
	endpoints  []*judged
}

// judgeScoped judges a target whose name fails by this network's own
// choice (dnsResult.scope): failed, with that scope, whatever the
// addresses encrypted DNS found did, since apps use the network's
// resolver. It reports false when the DNS verdict has no scope or a port
// is blocked.
func judgeScoped(tj *targetJudgement, d *dnsResult, okPorts, blockedPorts []string) bool {
	if d == nil || d.scope == "" || d.absent || d.verdict.Verdict != VerdictFailed || len(blockedPorts) > 0 {
		return false
	}
	tv := &tj.tv
	tv.Verdict, tv.Scope, tv.Reason = VerdictFailed, d.scope, "DNS: "+d.verdict.Evidence
	if len(okPorts) > 0 {
		tv.Reason += fmt.Sprintf("; its servers, found through encrypted DNS, are reachable on %s", strings.Join(okPorts, ", "))
	}
	return true
}

// scopedService returns the scope of a service whose failed targets all
// fail by one choice of this network, and its words (for some of its
// servers when some is set), or "".
func scopedService(group string, tjs []*targetJudgement, some bool) (scope, reason string) {
	for _, tj := range tjs {
		if tj.absent || tj.tv.Verdict != VerdictFailed {
			continue
		}
		if tj.tv.Scope == "" || scope != "" && tj.tv.Scope != scope {
			return "", ""
		}
		scope = tj.tv.Scope
	}
	servers := "its servers"
	if some {
		servers = "some of its servers"
	}
	switch {
	case scope == ScopeNetworkPolicy && group == measurements.GroupQUIC:
		return scope, relayOptOutWords
	case scope == ScopeLocalFilter:
		return scope, "a DNS filter inside this network, its own blocklist, blocks " + servers + "; not a censor"
	case scope != "":
		return scope, "this network's own choice, not blocking"
	}
	return "", ""
}

// judgeTarget combines a target's DNS verdict and its endpoints. A DNS
// block blocks the target whatever its addresses did (apps use the
// network's resolver). Otherwise each port (and transport) is ok when one
// address worked, blocked when its blocked addresses outnumber the
// undecided ones; a target with some ports ok and others blocked is
// degraded. When the network's resolver gives no address for any name,
// a target none of whose ports is blocked has failed: apps cannot look it
// up, though the addresses encrypted DNS found may work.
func judgeTarget(t *measurements.Target, d *dnsResult, eps []*judged) *targetJudgement {
	tj := &targetJudgement{t: t, endpoints: eps, tv: TargetVerdict{Target: t.Name, Host: t.Host}}
	tv := &tj.tv
	if d != nil && d.verdict.Verdict == VerdictBlocked {
		tv.Verdict, tv.Method, tv.Reason = VerdictBlocked, d.verdict.Method, "DNS: "+d.verdict.Evidence
		return tj
	}
	byPort := map[portKey][]*judged{}
	var ports []portKey
	for _, r := range eps {
		if !r.counted {
			continue
		}
		k := portKey{r.v.Port, r.v.Transport}
		if byPort[k] == nil {
			ports = append(ports, k)
		}
		byPort[k] = append(byPort[k], r)
	}
	slices.SortFunc(ports, func(a, b portKey) int { return cmp.Or(a.port-b.port, strings.Compare(a.kind, b.kind)) })
	var okPorts, blockedPorts, failedPorts, otherPorts, unreachablePorts, restrictedPorts []string
	methods := map[string]int{}
	for _, k := range ports {
		label := fmt.Sprintf("%d/%s", k.port, k.kind)
		n := map[string]int{}
		for _, r := range byPort[k] {
			n[r.v.Verdict]++
			if r.v.Verdict == VerdictBlocked {
				methods[r.v.Method]++
			}
		}
		undecided := n[VerdictInconclusive] + n[VerdictFailed] + n[VerdictUnreachable] + n[VerdictRestricted]
		switch {
		case n[VerdictOK] > 0:
			okPorts = append(okPorts, label)
		case n[VerdictBlocked] > 0 && n[VerdictBlocked] > undecided:
			blockedPorts = append(blockedPorts, label)
		case n[VerdictRestricted] > 0 && n[VerdictRestricted]*2 >= len(byPort[k]):
			restrictedPorts = append(restrictedPorts, label)
		case n[VerdictUnreachable] > 0 && n[VerdictUnreachable]*2 >= len(byPort[k]):
			unreachablePorts = append(unreachablePorts, label)
		case n[VerdictFailed] == len(byPort[k]):
			failedPorts = append(failedPorts, label)
		default:
			otherPorts = append(otherPorts, label)
		}
	}
	method := dominant(methods)
	if judgeScoped(tj, d, okPorts, blockedPorts) {
		return tj
	}
	if d != nil && d.unresolved && !d.absent && len(blockedPorts) == 0 {
		tj.unresolved = true
		tv.Verdict = VerdictFailed
		tv.Reason = fmt.Sprintf("DNS: apps cannot look up %s: %s", t.Host, resolverDownWhy)
		if len(okPorts) > 0 {
			tv.Reason += fmt.Sprintf("; its servers, found through encrypted DNS, are reachable on %s", strings.Join(okPorts, ", "))
		}
		return tj
	}
	dnsNote := ""
	if d != nil && d.verdict.Verdict != VerdictOK {
		dnsNote = "; DNS " + d.verdict.Verdict + ": " + d.verdict.Evidence
	}
	if d != nil && d.verdict.Verdict != VerdictOK && len(d.verdict.ResolverAnswers) == 0 && len(okPorts) > 0 && len(blockedPorts) == 0 {
		// The servers work, but only at addresses encrypted DNS found:
		// apps use the network's resolver, which gave none, so the name
		// does not work for them whatever the servers do.
		tv.Verdict = VerdictInconclusive
		if d.verdict.Verdict == VerdictFailed {
			tv.Verdict = VerdictFailed
		}
		tv.Reason = fmt.Sprintf("apps cannot look up %s through this network's resolver (DNS %s: %s); its servers, found through encrypted DNS only, are reachable on %s, which apps do not use",
			t.Host, d.verdict.Verdict, d.verdict.Evidence, strings.Join(okPorts, ", "))
		return tj
	}
	switch {
	case len(ports) == 0:
		tv.Verdict, tv.Reason = VerdictInconclusive, "no address was measured"
		switch {
		case d != nil && d.absent:
			tv.Verdict, tv.Reason, tj.absent = VerdictFailed, d.verdict.Evidence, true
		case d != nil && d.verdict.Verdict == VerdictFailed:
			tv.Verdict, tv.Reason = VerdictFailed, "DNS: "+d.verdict.Evidence
		case d != nil:
			tv.Reason += dnsNote
		}
	case len(okPorts) > 0 && len(blockedPorts) == 0:
		tv.Verdict, tv.Reason = VerdictOK, "reachable on "+strings.Join(okPorts, ", ")+dnsNote
		if len(restrictedPorts) > 0 {
			tv.Reason += "; " + strings.Join(restrictedPorts, ", ") + " closed by this network for every destination (its policy)"
		}
		if len(unreachablePorts) > 0 {
			tv.Reason += "; unreachable on " + strings.Join(unreachablePorts, ", ")
		}
	case len(okPorts) > 0:
		tv.Verdict, tv.Method = VerdictDegraded, method
		tv.Reason = fmt.Sprintf("blocked on %s (%s), reachable on %s", strings.Join(blockedPorts, ", "), method, strings.Join(okPorts, ", "))
	case len(blockedPorts) > 0 && len(blockedPorts) > len(failedPorts)+len(otherPorts):
		tv.Verdict, tv.Method = VerdictBlocked, method
		tv.Reason = fmt.Sprintf("blocked on %s (%s)", strings.Join(blockedPorts, ", "), method)
	case len(unreachablePorts) > 0 && len(unreachablePorts) >= len(failedPorts)+len(otherPorts)+len(restrictedPorts):
		tv.Verdict = VerdictUnreachable
		tv.Reason = fmt.Sprintf("unreachable on %s in every pass while control hosts answered: a block or an outage, and nothing measured tells which", strings.Join(unreachablePorts, ", "))
	case len(restrictedPorts) > 0 && len(unreachablePorts) == 0:
		// No port works and none is blocked: the ports this network is
		// seen to close for everyone decide, the rest being undecided.
		tv.Verdict, tv.Scope = VerdictRestricted, ScopeNetworkPolicy
		tv.Reason = fmt.Sprintf("%s closed by this network for every destination: its policy, not a block aimed at Apple", strings.Join(restrictedPorts, ", "))
		if rest := append(slices.Clone(otherPorts), failedPorts...); len(rest) > 0 {
			tv.Reason += "; undecided on " + strings.Join(rest, ", ")
		}
	case len(failedPorts) == len(ports):
		tv.Verdict, tv.Reason = VerdictFailed, "failed on "+strings.Join(failedPorts, ", ")+", not in a way that points at blocking"
	default:
		tv.Verdict = VerdictInconclusive
		tv.Reason = "undecided on " + strings.Join(append(append(otherPorts, failedPorts...), blockedPorts...), ", ")
	}
	if tv.Verdict == VerdictInconclusive && len(ports) > 0 {
		tv.Reason += firstEvidence(eps)
	}
	return tj
}

// firstEvidence returns "; " and the evidence of the first endpoint that
// is not ok, to say why a target is undecided.
func firstEvidence(eps []*judged) string {
	for _, r := range eps {
		if r.counted && r.v.Verdict != VerdictOK {
			return "; " + r.v.Evidence
		}
	}
	return ""
}

// firstUndecided returns the reason of the first inconclusive target.
func firstUndecided(tjs []*targetJudgement) string {
	for _, tj := range tjs {
		if tj.tv.Verdict == VerdictInconclusive {
			return tj.t.Host + ": " + tj.tv.Reason
		}
	}
	return ""
}

// dominant returns the most common key, ties broken by name; "" for none.
func dominant(counts map[string]int) string {
	best, n := "", 0
	for k, c := range counts {
		if c > n || c == n && k < best {
			best, n = k, c
		}
	}
	return best
}

// rankedMethods returns the keys most common first.
func rankedMethods(counts map[string]int) []string {
	out := make([]string, 0, len(counts))
	for k := range counts {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b string) int { return cmp.Or(counts[b]-counts[a], strings.Compare(a, b)) })
	return out
}

// judgeService combines a group's targets. It is blocked when blocked
// targets are a majority of the judged ones and either most share one
// method or none works; degraded when some are blocked or degraded and
// others work; ok when the rest work. Names that do not exist are left
// out.
func judgeService(group string, tjs []*targetJudgement, ns *netState, repeats int) ServiceVerdict {
	sv := ServiceVerdict{Service: group, Title: serviceTitles[group], Methods: []string{}, Evidence: []string{}}
	n := map[string]int{}
	methods := map[string]int{}
	unresolved := 0 // targets failed because the resolver answers no name
	conf := Confidence{Repeats: repeats}
	for _, tj := range tjs {
		sv.Targets = append(sv.Targets, tj.tv)
		for _, r := range tj.endpoints {
			if r.v.Verdict == VerdictSkipped {
				continue
			}
			conf.Endpoints++
			switch r.v.Verdict {
			case VerdictOK:
				conf.EndpointsOK++
			case VerdictBlocked:
				conf.EndpointsBlocked++
			}
		}
		if tj.absent {
			sv.Evidence = append(sv.Evidence, fmt.Sprintf("%s: not used (%s)", tj.t.Host, tj.tv.Reason))
			continue
		}
		if tj.t.Provider {
			// Devices never use it: what it shows is reported, not counted.
			if tj.tv.Verdict != VerdictOK {
				sv.Evidence = append(sv.Evidence, fmt.Sprintf("%s (used by app providers' servers, not by devices; not counted): %s: %s", tj.t.Host, tj.tv.Verdict, tj.tv.Reason))
			}
			continue
		}
		conf.Targets++
		n[tj.tv.Verdict]++
		if tj.unresolved {
			unresolved++
		}
		if tj.tv.Method != "" {
			methods[tj.tv.Method]++
		}
		if tj.tv.Verdict != VerdictOK {
			sv.Evidence = append(sv.Evidence, fmt.Sprintf("%s: %s: %s", tj.t.Host, tj.tv.Verdict, tj.tv.Reason))
		}
	}
	ok, deg, blk := n[VerdictOK], n[VerdictDegraded], n[VerdictBlocked]
	unr, rst := n[VerdictUnreachable], n[VerdictRestricted]
	base := ok + deg + blk + n[VerdictInconclusive] + unr + rst
	top := dominant(methods)
	switch {
	case ns.noConnectivity:
		sv.Verdict, sv.Reason = VerdictInconclusive, "nothing could be reached, not even the control hosts: no connectivity"
	case conf.Targets == 0:
		sv.Verdict, sv.Reason = VerdictInconclusive, "no host of this service could be measured"
	case blk > 0 && blk*2 > base && (methods[top]*2 > base || ok+deg == 0):
		sv.Verdict, sv.Reason = VerdictBlocked, blockedReason(group, rankedMethods(methods))
	case (blk > 0 || deg > 0) && ok+deg > 0:
		sv.Verdict, sv.Reason = VerdictDegraded, degradedReason(group, top, blk+deg, conf.Targets)
	case ok > 0:
		sv.Verdict, sv.Reason = VerdictOK, fmt.Sprintf("%d of %d hosts reachable", ok, conf.Targets)
		if left := conf.Targets - ok; left > 0 {
			sv.Reason += fmt.Sprintf("; %d could not be judged or failed", left)
			if scope, why := scopedService(group, tjs, true); scope != "" {
				sv.Reason += "; " + why
			}
		}
	case unr > 0 && unr >= n[VerdictInconclusive]+n[VerdictFailed]+rst:
		sv.Verdict = VerdictUnreachable
		sv.Reason = fmt.Sprintf("%s: %d of %d hosts could not be reached in any pass while control hosts answered; a block or an outage between this network and Apple, and nothing measured tells which", unreachableWhat[group], unr, conf.Targets)
	case rst > 0 && unr == 0:
		sv.Verdict, sv.Scope = VerdictRestricted, ScopeNetworkPolicy
		sv.Reason = restrictedReason(group, tjs)
	case n[VerdictFailed] > 0 && n[VerdictFailed] >= n[VerdictInconclusive]+blk:
		sv.Verdict, sv.Reason = VerdictFailed, fmt.Sprintf("%d of %d hosts fail, in ways that do not point at blocking (an outage?)", n[VerdictFailed], conf.Targets)
		if unresolved == n[VerdictFailed] {
			sv.Reason = "apps cannot look up its servers: " + resolverDownWhy
		}
		if scope, why := scopedService(group, tjs, false); scope != "" {
			sv.Scope, sv.Reason = scope, why
		}
	default:
		sv.Verdict, sv.Reason = VerdictInconclusive, "the measurements do not decide"
		if blk > 0 {
			sv.Reason += fmt.Sprintf(": %d of %d hosts look blocked, too few to say", blk, conf.Targets)
		} else if why := firstUndecided(tjs); why != "" {
			sv.Reason += ": " + why
		}
	}
	if sv.Verdict == VerdictBlocked || sv.Verdict == VerdictDegraded {
		// The targets' methods, most common first, then any other method
		// seen on the service's blocked endpoints (a name blocked by DNS
		// may also be filtered by server name at its real address).
		sv.Methods = rankedMethods(methods)
		var more []string
		for _, tj := range tjs {
			for _, r := range tj.endpoints {
				if r.v.Verdict == VerdictBlocked && !slices.Contains(sv.Methods, r.v.Method) && !slices.Contains(more, r.v.Method) {
					more = append(more, r.v.Method)
				}
			}
		}
		slices.Sort(more)
		sv.Methods = append(sv.Methods, more...)
	}
	conf.TargetsAgreeing = n[sv.Verdict]
	conf.Level = confidenceLevel(sv.Verdict, conf, ns, base)
	sv.Confidence = conf
	return sv
}

// confidenceLevel grades a service verdict: high when it was repeated on a
// steady network and every judged host agrees, low for undecided verdicts,
// medium otherwise.
func confidenceLevel(verdict string, c Confidence, ns *netState, base int) string {
	switch verdict {
	case VerdictInconclusive, VerdictFailed:
		return "low"
	case VerdictDegraded:
		return "medium"
	}
	if c.Repeats > 1 && ns.status == NetworkOK && c.TargetsAgreeing == base {
		return "high"
	}
	return "medium"
}

// judgeApps derives app verdicts from the services each needs.
func judgeApps(services []ServiceVerdict) []AppVerdict {
	by := map[string]ServiceVerdict{}
	for _, s := range services {
		by[s.Service] = s
	}
	var out []AppVerdict
	for _, app := range []string{AppIMessage, AppFaceTime} {
		av := AppVerdict{App: app, Title: appTitles[app], Needs: appNeeds[app]}
		var blocked, unreachable, restricted, down, undecided, degraded *ServiceVerdict
		for _, need := range appNeeds[app] {
			s, ok := by[need]
			if !ok {
				s = ServiceVerdict{Service: need, Title: serviceTitles[need], Verdict: VerdictInconclusive, Reason: "not measured (the catalog has no such host)"}
			}
			pick := func(p **ServiceVerdict) {
				if *p == nil {
					*p = &s
				}
			}
			switch s.Verdict {
			case VerdictBlocked:
				pick(&blocked)
			case VerdictUnreachable:
				pick(&unreachable)
			case VerdictRestricted:
				pick(&restricted)
			case VerdictFailed:
				pick(&down)
			case VerdictInconclusive:
				pick(&undecided)
			case VerdictDegraded:
				pick(&degraded)
			}
		}
		switch {
		case blocked != nil:
			av.Verdict, av.Reason = AppBlocked, blocked.Reason
		case unreachable != nil:
			av.Verdict, av.Reason = AppUnreachable, unreachable.Reason
		case restricted != nil:
			av.Verdict, av.Reason, av.Scope = AppRestricted, restricted.Reason, restricted.Scope
		case down != nil:
			av.Verdict, av.Reason = AppDown, fmt.Sprintf("%s fails, but not because of blocking: %s", down.Title, down.Reason)
		case undecided != nil:
			av.Verdict, av.Reason = AppInconclusive, fmt.Sprintf("%s could not be judged: %s", undecided.Title, undecided.Reason)
		case degraded != nil:
			av.Verdict, av.Reason = AppDegraded, degraded.Reason
		default:
			av.Verdict, av.Reason = AppWorking, workingReasons[app]
		}
		out = append(out, av)
	}
	return out
}
