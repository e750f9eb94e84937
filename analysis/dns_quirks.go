package analysis

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// Honest networks answer some names in ways a naive reading takes for a
// censor's: private addresses beside public ones (split-horizon records,
// DNS64 with a local prefix), a local proxy's fake addresses, the
// volunteer's own blocklist answering 0.0.0.0, the documented opt-out of
// iCloud Private Relay, a second answer from a second upstream, Apple's
// servers answered from another of Apple's networks. This file tells
// them apart from blocking.

// fakeIPRanges are the pools local proxies answer from in fake-ip mode:
// Clash and mihomo (198.18.0.1/16 by default) and sing-box (198.18.0.0/15
// and fc00::/18). The proxy gives each name its own address and carries
// connections to it to the real server, found by name.
var fakeIPRanges = mustPrefixes("198.18.0.0/15", "fc00::/18")

func isFakeIP(a netip.Addr) bool {
	a = measurements.UnwrapIPv4(a)
	return slices.ContainsFunc(fakeIPRanges, func(p netip.Prefix) bool { return p.Contains(a) })
}

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// appleASNs are Apple's own autonomous systems. An answer inside them for
// an Apple name leads to Apple, wherever geo-DNS sent it.
var appleASNs = map[uint]bool{714: true, 6185: true}

// privateRelayNames are the names Apple tells networks to deny (NXDOMAIN
// or an empty answer) to turn iCloud Private Relay off for their users
// ("Prepare your network or web server for iCloud Private Relay").
var privateRelayNames = []string{"mask.icloud.com", "mask-h2.icloud.com"}

// Words of the Private Relay opt-out, reused by the target and service.
const relayOptOutWords = "Private Relay turned off by this network (the opt-out Apple documents), not blocked"

func isPrivateRelayName(host string) bool {
	return slices.Contains(privateRelayNames, strings.ToLower(strings.TrimSuffix(host, ".")))
}

// resolvesFor reports whether a is an answer an application can use for
// t: not private or reserved, or a local proxy's fake address (the proxy
// carries the connection).
func resolvesFor(t *measurements.Target, a netip.Addr) bool {
	return !isBogonFor(t, a) || isFakeIP(a)
}

// sameAS reports whether addr's AS, as the probe recorded it, is Apple's
// for an Apple name, or that of one of encrypted DNS's answers (OONI's
// rule: an answer sharing an AS with the control's is consistent).
func (s *dnsSummary) sameAS(addr netip.Addr) bool {
	asn := s.asn[addr.Unmap()]
	if asn == 0 {
		return false
	}
	if appleASNs[asn] && s.t.Group != measurements.GroupControl {
		return true
	}
	return slices.ContainsFunc(s.dohAddrs, func(d netip.Addr) bool { return s.asn[d] == asn })
}

// sharedFakeIPs returns the fake-ip range addresses the network's
// resolver gave to more than one name: a censor's single answer, not a
// proxy's pool.
func sharedFakeIPs(sums map[string]*dnsSummary) map[netip.Addr]bool {
	hosts := map[netip.Addr]string{}
	out := map[netip.Addr]bool{}
	for _, s := range sums {
		for _, a := range s.resolverAddrs {
			if !isFakeIP(a) {
				continue
			}
			if h, ok := hosts[a]; ok && !strings.EqualFold(h, s.t.Host) {
				out[a] = true
			}
			hosts[a] = s.t.Host
		}
	}
	return out
}

// fakeIPs returns the name's fake-ip answers when every private or
// reserved answer it got is one of its own in a proxy's pool.
func (j *dnsJudge) fakeIPs(s *dnsSummary, bogons []netip.Addr) []netip.Addr {
	for _, a := range bogons {
		if !isFakeIP(a) || j.fakeShared[a] {
			return nil
		}
	}
	return bogons
}

// proxyEverywhere reports whether every name the network's resolver
// answered, a control name among them, got fake-ip answers only: a local
// proxy handles all of this machine's traffic.
func proxyEverywhere(sums map[string]*dnsSummary) bool {
	control := false
	for _, s := range sums {
		if len(s.resolverAddrs) == 0 {
			continue
		}
		if slices.ContainsFunc(s.resolverAddrs, func(a netip.Addr) bool { return !isFakeIP(a) }) {
			return false
		}
		control = control || s.t.Group == measurements.GroupControl
	}
	return control
}

// dns64Synthesized reports whether a is an IPv6 answer that carries, in
// its last 32 bits, an IPv4 address answered for the same name: DNS64
// with a network-specific prefix (RFC 6052 /96), such as a ULA or the
// documentation prefix.
func (s *dnsSummary) dns64Synthesized(a netip.Addr) bool {
	if !a.Is6() || a.Is4In6() {
		return false
	}
	b := a.As16()
	v4 := netip.AddrFrom4([4]byte(b[12:]))
	if isBogonFor(s.t, v4) {
		return false // :: is not DNS64 of 0.0.0.0
	}
	return slices.Contains(s.resolverAddrs, v4) || slices.Contains(s.dohAddrs, v4)
}

// usable reports whether a resolver's answer a is one applications on
// this machine can connect to: public (or in t's networks) and of a
// family the host has a route for, or synthesised by DNS64.
func (j *dnsJudge) usable(s *dnsSummary, a netip.Addr) bool {
	if isBogonFor(s.t, a) {
		return s.dns64Synthesized(a)
	}
	return !(j.noIPv6Route && a.Is6() && !a.Is4In6())
}

// resolverHost returns the address of the nameserver a plain lookup asked
// ("192.168.1.1:53", "[fe80::1%eth0]:53" or a bare address).
func resolverHost(q dnsQuery) (netip.Addr, bool) {
	if q.obs.DNS == nil || q.obs.DNS.Resolver == "" {
		return netip.Addr{}, false
	}
	if ap, err := netip.ParseAddrPort(q.obs.DNS.Resolver); err == nil {
		return ap.Addr().WithZone("").Unmap(), true
	}
	a, err := netip.ParseAddr(strings.Trim(q.obs.DNS.Resolver, "[]"))
	return a.WithZone("").Unmap(), err == nil
}

// insideNetwork reports whether a nameserver's address is in the
// volunteer's own network: private, loopback or link-local (not shared
// CGNAT space, which is the carrier's).
func insideNetwork(a netip.Addr) bool {
	return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast()
}

// localResolver reports whether every nameserver the plain engines asked
// in the run is inside the volunteer's network (and there was one): the
// system resolver, which does not say which it asked, uses those.
func localResolver(sums map[string]*dnsSummary) bool {
	seen := false
	for _, s := range sums {
		for _, q := range s.resolver {
			if q.engine == measurements.EngineSystem {
				continue
			}
			a, ok := resolverHost(q)
			if !ok || !insideNetwork(a) {
				return false
			}
			seen = true
		}
	}
	return seen
}

// isNameserver reports whether a is the address of a nameserver the
// plain engines asked in the run.
func (j *dnsJudge) isNameserver(a netip.Addr) bool {
	for _, s := range j.summaries {
		for _, q := range s.resolver {
			if server, ok := resolverHost(q); ok && server == a.Unmap() {
				return true
			}
		}
	}
	return false
}

// localFilter returns the nameservers behind the bogons when they are the
// mark of a DNS filter in the volunteer's own network: every private
// answer is 0.0.0.0, :: or the nameserver's own address (Pi-hole,
// AdGuard Home and router blocklists answer so), from nameservers inside
// the network.
func (j *dnsJudge) localFilter(s *dnsSummary) ([]string, bool) {
	var servers []string
	found := false
	for _, q := range s.resolver {
		var bogons []netip.Addr
		for _, a := range q.addrs {
			if isBogonFor(s.t, a) {
				bogons = append(bogons, a)
			}
		}
		if len(bogons) == 0 {
			continue
		}
		server, known := resolverHost(q)
		inside := known && insideNetwork(server) || !known && q.engine == measurements.EngineSystem && j.localResolver
		if !inside {
			return nil, false
		}
		for _, a := range bogons {
			own := known && a == server || !known && j.isNameserver(a)
			if !a.IsUnspecified() && !own {
				return nil, false
			}
		}
		found = true
		if known && !slices.Contains(servers, server.String()) {
			servers = append(servers, server.String())
		}
	}
	slices.Sort(servers)
	return servers, found
}

// relayOptOut judges a Private Relay name the network's resolver denies
// with NXDOMAIN or an empty answer, and gives no address for: Apple's
// documented way for a network to turn Private Relay off, whatever
// encrypted DNS finds from elsewhere.
func (j *dnsJudge) relayOptOut(s *dnsSummary, undecided undecidedFunc) (dnsResult, bool) {
	if !isPrivateRelayName(s.t.Host) || j.resolverDown || s.resolverAnswers() || len(s.resolverAddrs) > 0 || s.dohSays() == "nxdomain" {
		return dnsResult{}, false
	}
	denied, nx := 0, 0
	for _, q := range s.resolver {
		switch q.outcome {
		case dnsNXDomain:
			denied++
			nx++
		case dnsNoAnswer:
			denied++
		case dnsTimeout, dnsOther:
			// lost or garbled: says nothing either way
		default:
			return dnsResult{}, false
		}
	}
	if denied == 0 {
		return dnsResult{}, false
	}
	answer := "NXDOMAIN"
	switch {
	case nx == 0:
		answer = "no address (an empty answer)"
	case nx < denied:
		answer = "NXDOMAIN or no address"
	}
	r := undecided(VerdictFailed, "", fmt.Sprintf("%s: the network's resolver answers %s with %s in %d of %d lookups; that encrypted DNS, from elsewhere, finds %s is no evidence of a block (Private Relay may also not be offered in this region)",
		relayOptOutWords, s.t.Host, answer, denied, len(s.resolver), addrListOr(s.dohAddrs, "no address either")))
	r.scope = ScopeNetworkPolicy
	r.verdict.Scope = ScopeNetworkPolicy
	return r, true
}

// bogon judges private and reserved answers. A name gets dns.bogon only
// when the resolver gave it no usable address; private answers beside
// usable ones (split-horizon, DNS64 with a local prefix) are noted, a
// proxy's fake-ip answers and a local blocklist's 0.0.0.0 named as such.
func (j *dnsJudge) bogon(s *dnsSummary, block blockFunc, undecided undecidedFunc) (dnsResult, bool) {
	var bogons []netip.Addr
	engines := map[string]bool{}
	for _, q := range s.resolver {
		for _, a := range q.addrs {
			if isBogonFor(s.t, a) {
				bogons = append(bogons, a)
				engines[q.engine] = true
			}
		}
	}
	if len(bogons) == 0 {
		return dnsResult{}, false
	}
	bogons = sortedAddrs(bogons)
	host := s.t.Host
	if fake := j.fakeIPs(s, bogons); len(fake) > 0 {
		r := undecided(VerdictInconclusive, "", fmt.Sprintf("a local proxy answers %s with %s, from the fake-ip range that Clash and sing-box use (198.18.0.0/15): applications connect through the proxy, which looks the name up itself, so this lookup cannot show blocking; not blocked",
			host, addrList(fake)))
		r.verdict.Scope = ScopeLocalProxy
		return r, true
	}
	if slices.ContainsFunc(s.dohAddrs, func(a netip.Addr) bool { return isBogonFor(s.t, a) }) {
		return undecided(VerdictInconclusive, MethodDNSBogon, fmt.Sprintf("%s resolves to a private address (%s) through encrypted DNS as well", host, addrList(bogons))), true
	}
	if slices.ContainsFunc(s.resolverAddrs, func(a netip.Addr) bool { return j.usable(s, a) }) {
		kind := "private or reserved (a split-horizon record?)"
		if !slices.ContainsFunc(bogons, func(a netip.Addr) bool { return !s.dns64Synthesized(a) }) {
			kind = "synthesised by DNS64 with this network's own prefix"
		}
		verb := "are"
		if len(bogons) == 1 {
			verb = "is"
		}
		s.notes = append(s.notes, fmt.Sprintf("; of these, %s %s %s, which is not a block: the name has usable addresses", addrList(bogons), verb, kind))
		return dnsResult{}, false
	}
	healthy := false
	for e := range engines {
		healthy = healthy || j.engineAnswersOthers(e, s.t)
	}
	if !healthy {
		return undecided(VerdictInconclusive, MethodDNSBogon, fmt.Sprintf("the network's resolver answered %s with %s, but it gives no public address for any name (a captive portal or a broken resolver)", host, addrList(bogons))), true
	}
	if servers, ok := j.localFilter(s); ok {
		at := "this computer's resolver, which asks one inside this network,"
		if len(servers) > 0 {
			at = "the resolver at " + strings.Join(servers, ", ") + ", inside this network,"
		}
		r := undecided(VerdictFailed, "", fmt.Sprintf("a DNS filter inside this network blocks %s: %s answers %s, as blocklists such as Pi-hole's and AdGuard Home's do (this network's own filter, not a censor)",
			host, at, strings.Join(addrStrings(bogons), " and ")))
		r.scope = ScopeLocalFilter
		r.verdict.Scope = ScopeLocalFilter
		return r, true
	}
	return block(MethodDNSBogon, bogons, fmt.Sprintf("the network's resolver answered %s with %s, a private or reserved address, and no usable one; encrypted DNS gave %s",
		host, addrList(bogons), addrListOr(s.dohAddrs, "no answer"))), true
}

// lateOnlyAddrs returns, per target, the addresses only late responses
// gave, in no first response of any engine: applications never connect
// there, so their endpoints count for nothing.
func lateOnlyAddrs(sums map[string]*dnsSummary) map[string]map[netip.Addr]bool {
	out := map[string]map[netip.Addr]bool{}
	for name, s := range sums {
		for _, a := range s.lateAddrs() {
			if slices.Contains(s.dohAddrs, a) {
				continue
			}
			if out[name] == nil {
				out[name] = map[netip.Addr]bool{}
			}
			out[name][a] = true
		}
	}
	return out
}

// judgeLateOnly judges an endpoint at an address only a late DNS response
// gave. Applications connect to the first response's addresses, so it
// does not count for its port or service; a handshake that verified there
// shows the late answer was the name's too.
func judgeLateOnly(r *judged) {
	r.countAttempts()
	ok := false
	for _, a := range r.e.attempts {
		ok = ok || verified(a.main)
	}
	if ok {
		r.v.Verdict = VerdictOK
		r.v.Evidence = fmt.Sprintf("only a late DNS response gave %s, and a handshake for %s verified there: the late answer is the name's too", r.e.key.address, r.e.target.ServerName)
		return
	}
	r.v.Verdict = VerdictInconclusive
	r.v.Evidence = fmt.Sprintf("only a late DNS response gave %s; applications use the first response, so it is not counted", r.e.key.address)
}
