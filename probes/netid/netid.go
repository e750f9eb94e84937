// Package netid finds which network a run was measured from: the probe's
// autonomous system (AS number, AS name) and country, and its DNS
// resolver's, as OONI records them with every measurement. Without them a
// report cannot say "blocked in AS3320, Germany".
//
// # Design
//
// The AS and country come from an offline database: OONI's
// github.com/ooni/probe-assets, a MaxMind-format file of about 16 MB made
// from DB-IP's free data and embedded in the binary, read with
// github.com/oschwald/maxminddb-golang. Looking an address up sends
// nothing anywhere. The probe's public address comes from one STUN binding
// request (probes/stunprobe.PublicAddress) to a server the user can
// choose; Discover looks it up and drops it: the address never leaves
// this package, so it cannot reach the database or an export.
//
// Everything here degrades to "unknown" (AS0, country ZZ, no name) rather
// than failing: a private or unlisted address, a STUN server that does not
// answer, a name that does not resolve. Network identity labels a run; it
// must never stop one.
//
// The package does not measure reachability and does not store anything.
package netid

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/ooni/probe-assets/assets"
	"github.com/oschwald/maxminddb-golang"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/stunprobe"
)

// DiscoverTimeout bounds Discover: resolving the STUN server's name (a few
// seconds on a slow resolver) and one STUN exchange, which gives up after
// stunprobe.BindingTimeout (3.5 s) of silence. It runs after a run's
// measurements, so it delays the end of the command, never a measurement.
const DiscoverTimeout = 10 * time.Second

// database is the embedded ASN and country database, opened on first use.
// Opening reads only its metadata; lookups walk the embedded bytes.
var database = sync.OnceValues(func() (*maxminddb.Reader, error) {
	return maxminddb.FromBytes(assets.OOMMDBDatabaseBytes)
})

// Lookup returns the AS number, the AS organisation's name and the ISO
// country code of addr from the embedded database: 0, "" and "ZZ" for an
// address it does not list, a private or reserved one (measurements.IsBogon),
// or an invalid one.
func Lookup(addr netip.Addr) (asn uint, name, cc string) {
	// A NAT64 address (64:ff9b::/96) leads to the IPv4 address it carries.
	addr = measurements.UnwrapIPv4(addr.WithZone(""))
	if !addr.IsValid() || measurements.IsBogon(addr) {
		return 0, "", measurements.UnknownCountry
	}
	db, err := database()
	if err != nil {
		return 0, "", measurements.UnknownCountry
	}
	var rec assets.OOMMDBRecord
	if err := db.Lookup(net.IP(addr.AsSlice()), &rec); err != nil {
		return 0, "", measurements.UnknownCountry
	}
	cc = rec.Country.IsoCode
	if cc == "" {
		cc = measurements.UnknownCountry
	}
	if rec.AutonomousSystemNumber == 0 {
		return 0, "", cc
	}
	return rec.AutonomousSystemNumber, rec.AutonomousSystemOrganization, cc
}

// AnnotateAnswers sets the AS number and organisation of every A and AAAA
// answer of the DNS observations among obs, first and late responses, from
// the embedded database (Lookup): what the analysis needs to tell an answer
// in the server's own network (Apple's AS714 and AS6185, a CDN's) from a
// stranger's, as OONI's answers carry asn and as_org_name. It adds no
// address to what is stored, and private or reserved answers (a device of
// the volunteer's network) are not looked up: they stay 0 and "".
func AnnotateAnswers(obs []*measurements.Observation) {
	annotate(obs, true)
}

// AnnotateFirstAnswers is AnnotateAnswers for the first responses only:
// it leaves DNSDetails.Late alone, which a lookup still listening fills.
func AnnotateFirstAnswers(obs []*measurements.Observation) {
	annotate(obs, false)
}

func annotate(obs []*measurements.Observation, late bool) {
	each := func(answers []measurements.DNSAnswer) {
		for i := range answers {
			a := &answers[i]
			if a.Type != "A" && a.Type != "AAAA" {
				continue
			}
			if addr, err := netip.ParseAddr(a.Data); err == nil {
				a.ASN, a.ASOrgName, _ = Lookup(addr)
			}
		}
	}
	for _, o := range obs {
		if o == nil || o.DNS == nil {
			continue
		}
		each(o.DNS.Answers)
		if !late {
			continue
		}
		for i := range o.DNS.Late {
			each(o.DNS.Late[i].Answers)
		}
	}
}

// Discover returns the networks of the probe and of resolver. It asks the
// STUN server stunServer ("host:port"; the host is resolved with the
// system resolver, IPv4 addresses first) for the probe's public address,
// looks it up and forgets it; resolver, the address of the nameserver the
// probe uses, is looked up directly (an invalid Addr is unknown). Any
// failure gives AS0 and ZZ for the part it concerns, never an error. It
// returns within DiscoverTimeout.
func Discover(ctx context.Context, stunServer string, resolver netip.Addr) measurements.Identity {
	id := measurements.UnknownIdentity()
	id.ResolverASN, id.ResolverNetworkName, id.ResolverCC = Lookup(resolver)
	ctx, cancel := context.WithTimeout(ctx, DiscoverTimeout)
	defer cancel()
	if public, ok := publicAddress(ctx, stunServer); ok {
		id.ProbeASN, id.ProbeNetworkName, id.ProbeCC = Lookup(public)
	}
	return id
}

// publicAddress asks the STUN server at hostPort for the probe's public
// address, trying its addresses in turn (IPv4 first, as OONI locates the
// probe by its IPv4 address when it has one) until one answers.
func publicAddress(ctx context.Context, hostPort string) (netip.Addr, bool) {
	host, portText, err := net.SplitHostPort(hostPort)
	if err != nil {
		return netip.Addr{}, false
	}
	port, err := net.LookupPort("udp", portText)
	if err != nil {
		return netip.Addr{}, false
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, false
	}
	var v4, v6 []netip.Addr
	for _, a := range addrs {
		if a = a.Unmap(); a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	for _, a := range append(v4, v6...) {
		public, err := stunprobe.PublicAddress(ctx, netip.AddrPortFrom(a, uint16(port)))
		if err == nil && public.IsValid() {
			return public, true
		}
		if ctx.Err() != nil {
			break
		}
	}
	return netip.Addr{}, false
}
