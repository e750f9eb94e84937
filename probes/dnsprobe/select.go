package dnsprobe

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
	"github.com/reachprobe/reachprobe/measurements"
)

// markOffChain marks the A and AAAA answers whose owner is neither qname
// nor a name of chain (the CNAME chain followed from qname) as
// measurements.UnusedOffChain: they are recorded, never measured.
func markOffChain(answers []measurements.DNSAnswer, qname string, chain []string) []measurements.DNSAnswer {
	for i := range answers {
		a := &answers[i]
		if a.Type != "A" && a.Type != "AAAA" {
			continue
		}
		if !onChain(a.Name, qname, chain) {
			a.Unused = measurements.UnusedOffChain
		}
	}
	return answers
}

// onChain reports whether owner is qname or one of chain's names.
func onChain(owner, qname string, chain []string) bool {
	owner = dns.Fqdn(owner)
	if strings.EqualFold(owner, dns.Fqdn(qname)) {
		return true
	}
	return slices.ContainsFunc(chain, func(c string) bool { return strings.EqualFold(owner, dns.Fqdn(c)) })
}

// Addresses returns the addresses to measure from the successful lookups
// among obs, sorted (IPv4 first), at most
// measurements.MaxAddressesPerFamily of each family. Only first responses
// count: a late response to a plain query is evidence of injection, kept
// in DNSDetails.Late for analysis, not an address to measure. Off-chain
// answers (marked by the lookup) are never measured.
//
// Over the cap, the lookups take turns: the first address of each lookup,
// then the second of each, and so on, so the addresses of every engine
// (the local resolver's and the encrypted control's) are measured whatever
// one of them returns. Every answer left out is marked
// measurements.UnusedOverCap in obs, so the observations record what was
// not contacted. Pass the observations whose addresses should be measured.
func Addresses(obs []*measurements.Observation) []netip.Addr {
	var lists [][]*measurements.DNSAnswer
	for _, o := range obs {
		if o.Step != measurements.StepDNS || o.DNS == nil || !o.Succeeded() {
			continue
		}
		var l []*measurements.DNSAnswer
		for i := range o.DNS.Answers {
			a := &o.DNS.Answers[i]
			if (a.Type == "A" || a.Type == "AAAA") && a.Unused == "" {
				l = append(l, a)
			}
		}
		lists = append(lists, l)
	}
	chosen := map[netip.Addr]bool{}
	perFamily := map[bool]int{} // keyed by Is4
	var out []netip.Addr
	for turn := 0; ; turn++ {
		more := false
		for _, l := range lists {
			if turn >= len(l) {
				continue
			}
			more = true
			ip, err := netip.ParseAddr(l[turn].Data)
			if err != nil || chosen[ip] || perFamily[ip.Is4()] >= measurements.MaxAddressesPerFamily {
				continue
			}
			chosen[ip] = true
			perFamily[ip.Is4()]++
			out = append(out, ip)
		}
		if !more {
			break
		}
	}
	for _, l := range lists {
		for _, a := range l {
			if ip, err := netip.ParseAddr(a.Data); err == nil && !chosen[ip] {
				a.Unused = measurements.UnusedOverCap
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
