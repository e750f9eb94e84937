package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// labASNEnv names the test hook that maps the hops of a trace to networks
// in a namespace lab, where routers have addresses no ASN database knows:
// "PREFIX ASN NAME; PREFIX ASN NAME; ...". Only trace hops use it: the
// run's own network identity and DNS answers keep the embedded database.
// It is for labs; a volunteer has no reason to set it.
const labASNEnv = "REACHPROBE_TEST_ASNS"

// maxLabASNs bounds the entries of the hook: a lab names a few routers.
const maxLabASNs = 64

// labASN is one entry of the hook.
type labASN struct {
	prefix netip.Prefix
	asn    uint
	name   string
}

// parseLabASNs parses the hook's value.
func parseLabASNs(v string) ([]labASN, error) {
	var out []labASN
	for _, entry := range strings.Split(v, ";") {
		f := strings.Fields(entry)
		if len(f) == 0 {
			continue
		}
		if len(out) == maxLabASNs {
			return nil, fmt.Errorf("%s: more than %d entries", labASNEnv, maxLabASNs)
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("%s: %q is not \"PREFIX ASN NAME\"", labASNEnv, entry)
		}
		p, err := netip.ParsePrefix(f[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", labASNEnv, err)
		}
		asn, err := strconv.ParseUint(strings.TrimPrefix(f[1], "AS"), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an AS number", labASNEnv, f[1])
		}
		out = append(out, labASN{prefix: p.Masked(), asn: uint(asn), name: strings.Join(f[2:], " ")})
	}
	return out, nil
}

// labASLookup returns a lookup of trace hops by the hook's entries, the
// longest prefix first, falling back to fallback.
func labASLookup(entries []labASN, fallback func(netip.Addr) (uint, string)) func(netip.Addr) (uint, string) {
	return func(a netip.Addr) (uint, string) {
		best := -1
		for i, e := range entries {
			if e.prefix.Contains(a.Unmap()) && (best < 0 || e.prefix.Bits() > entries[best].prefix.Bits()) {
				best = i
			}
		}
		if best >= 0 {
			return entries[best].asn, entries[best].name
		}
		return fallback(a)
	}
}
