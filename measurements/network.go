package measurements

import (
	"fmt"
)

// UnknownCountry is the country code of a network that could not be
// located, as OONI writes it.
const UnknownCountry = "ZZ"

// Identity is the network a run was measured from, and the network of its
// DNS resolver: autonomous system number, the AS's name and its country.
// It never holds an IP address: the probe's public address is looked up
// and forgotten.
//
// An unknown network is AS 0 with country UnknownCountry and an empty
// name, as OONI records it.
type Identity struct {
	ProbeASN            uint   `json:"probe_asn"`
	ProbeNetworkName    string `json:"probe_network_name"`
	ProbeCC             string `json:"probe_cc"`
	ResolverASN         uint   `json:"resolver_asn"`
	ResolverNetworkName string `json:"resolver_network_name"`
	ResolverCC          string `json:"resolver_cc"`
}

// UnknownIdentity is the Identity of a run whose networks are unknown:
// AS0 in country ZZ for both the probe and its resolver.
func UnknownIdentity() Identity {
	return Identity{ProbeCC: UnknownCountry, ResolverCC: UnknownCountry}
}

// Normalized returns id with an empty country code replaced by
// UnknownCountry.
func (id Identity) Normalized() Identity {
	if id.ProbeCC == "" {
		id.ProbeCC = UnknownCountry
	}
	if id.ResolverCC == "" {
		id.ResolverCC = UnknownCountry
	}
	return id
}

// ASNString formats an AS number as OONI does: "AS1234", "AS0" when unknown.
func ASNString(asn uint) string { return fmt.Sprintf("AS%d", asn) }

// Scrubbed replaces an IP address in free text.
const Scrubbed = "[scrubbed]"

// Scrub replaces every IPv4 and IPv6 address in s with Scrubbed, as OONI
// does for free text (error messages, certificate errors).
func Scrub(s string) string { return ScrubExcept(s, nil) }
