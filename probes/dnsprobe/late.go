package dnsprobe

import (
	"net/netip"
	"slices"

	"github.com/reachprobe/reachprobe/measurements"
)

// MaxLateAddresses bounds the addresses LateAddresses returns for one
// name: a late response is a second opinion to check, and a forger
// listing hundreds of addresses must not multiply the run's connections.
const MaxLateAddresses = 4

// LateAddresses returns the A and AAAA addresses that only late responses
// to plain queries among obs gave (DNSDetails.Late), sorted, at most
// MaxLateAddresses. Applications use the first response, so these are not
// what a device connects to; they are measured so that a verified
// handshake can show a late answer is the name's too (a router forwarding
// to two resolvers answers twice) rather than a forger's.
func LateAddresses(obs []*measurements.Observation) []netip.Addr {
	first := map[netip.Addr]bool{}
	for _, a := range Addresses(obs) {
		first[a] = true
	}
	var out []netip.Addr
	for _, o := range obs {
		if o.Step != measurements.StepDNS || o.DNS == nil {
			continue
		}
		for _, late := range o.DNS.Late {
			for _, a := range late.Answers {
				if a.Type != "A" && a.Type != "AAAA" {
					continue
				}
				ip, err := netip.ParseAddr(a.Data)
				if err != nil || first[ip] || slices.Contains(out, ip) {
					continue
				}
				out = append(out, ip)
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	if len(out) > MaxLateAddresses {
		out = out[:MaxLateAddresses]
	}
	return out
}
