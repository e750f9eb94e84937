//go:build lab

package lab

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/catalog"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// Addresses of the lab's two links. The client sits on a home LAN behind
// the censor, which routes it to the fake internet over a carrier link;
// the censor does no NAT, so the fake internet routes the LAN back.
const (
	clientAddr    = "192.168.77.2"
	censorLANAddr = "192.168.77.1"
	lanPrefix     = "192.168.77.0/24"
	lanBits       = 24
	censorWANAddr = "100.64.77.1"
	internetAddr  = "100.64.77.2"
	wanBits       = 30
)

// Interface names inside the namespaces. Each veth end is created directly
// in its namespace, so the names need only be unique there.
const (
	clientIface      = "eth0" // the client's end of client<->censor
	censorLANIface   = "lan0" // the censor's end of client<->censor
	censorWANIface   = "wan0" // the censor's end of censor<->internet
	internetLinkName = "eth0" // the internet's end of censor<->internet
)

// Public-looking addresses of the fake internet. They exist only inside
// the lab: the internet namespace routes their prefixes to its loopback
// and the lab has no link to the host.
const (
	// ResolverAddr is the network's resolver, the client's nameserver.
	ResolverAddr = "81.200.53.53"
	// DoHAddr is the encrypted DNS control, addressed by IP literal so
	// DNS tampering cannot take it down; its certificate names the IP.
	DoHAddr = "104.16.248.249"
	// dohBackendPort is where the DoH server listens: TCP 443 on every
	// address of the internet namespace belongs to the TLS servers bound
	// to 0.0.0.0, so a DNAT rule in the internet namespace sends
	// DoHAddr:443 here.
	dohBackendPort = 8443
	// InjectedAddr is the answer of the on-path DNS injector: a routable
	// foreign address that is not Apple's. The censor routes it to a
	// blackhole, as nothing answers there.
	InjectedAddr = "46.82.174.68"
)

// DoHURL is the probe's --control-doh.
var DoHURL = "https://" + DoHAddr + "/dns-query"

// internetPrefixes are routed to the internet namespace's loopback: Apple's
// 17.0.0.0/8 and ranges like those of the control hosts, the resolver and
// the DoH server.
var internetPrefixes = []string{
	"17.0.0.0/8",     // Apple
	"142.250.0.0/16", // www.google.com-like
	"104.16.0.0/12",  // www.cloudflare.com-like, and the DoH server
	"74.125.0.0/16",  // stun.l.google.com-like
	"81.200.53.0/24", // the network's resolver
}

// Blocks of Apple addresses by service, so that a censor's rule can name
// one service's addresses as real censors' address lists do; the
// addresses below keep to them (push's API is in 17.188.166.0/24, calls
// in 17.133.234.0/24, Private Relay in 17.248.190.0/24).
const (
	pushCourierBlock = "17.57.144.0/22" // Apple's APNs 17.57.144.0/22: couriers in four /24s, as real ones spread
	identityBlock    = "17.32.194.0/24"
	// callBlock holds Apple's call hosts, which in the lab speak QUIC as
	// FaceTime's relays do: they answer an unknown version with Version
	// Negotiation (InternetConfig.VNPrefixes).
	callBlock  = "17.133.234.0/24"
	appleBlock = "17.0.0.0/8"
)

// hostAddresses are the genuine addresses of every name the fake internet
// knows: the catalog's hosts and server names. IPv6 addresses are in
// Apple's published prefixes; the lab has no IPv6 route, and the zone
// carries them only when a scenario asks (see Plan.Zone).
var hostAddresses = map[string][]string{
	"courier.push.apple.com":       {"17.57.146.10", "2620:149:a44::10"},
	"1-courier.push.apple.com":     {"17.57.144.21", "2620:149:a44::21"},
	"17-courier.push.apple.com":    {"17.57.145.37", "2620:149:a44::37"},
	"33-courier.push.apple.com":    {"17.57.146.53", "2620:149:a44::53"},
	"50-courier.push.apple.com":    {"17.57.147.70", "2620:149:a44::70"},
	"init.push.apple.com":          {"17.188.166.30", "2620:149:a44::130"},
	"api.push.apple.com":           {"17.188.166.24", "2620:149:a44::124"},
	"init.ess.apple.com":           {"17.32.194.10", "2403:300:a42::10"},
	"query.ess.apple.com":          {"17.32.194.11", "2403:300:a42::11"},
	"identity.ess.apple.com":       {"17.32.194.13", "2403:300:a42::13"},
	"profile.ess.apple.com":        {"17.32.194.14", "2403:300:a42::14"},
	"static.ess.apple.com":         {"17.32.194.15", "2403:300:a42::15"},
	"idmsa.apple.com":              {"17.32.194.16", "2403:300:a42::16"},
	"appleid.apple.com":            {"17.32.194.17", "2403:300:a42::17"},
	"commnat-cohort.ess.apple.com": {"17.133.234.21", "2403:300:a51::21"},
	"gsa.apple.com":                {"17.32.194.12", "2403:300:a42::12"},
	"commnat-main.ess.apple.com":   {"17.133.234.20", "2403:300:a51::20"},
	"mask.icloud.com":              {"17.248.190.10", "2403:300:a42::190"},
	"mask-h2.icloud.com":           {"17.248.190.11", "2403:300:a42::191"},
	"www.google.com":               {"142.250.74.36", "2a00:1450:4001:81c::2004"},
	"www.cloudflare.com":           {"104.16.124.96", "2606:4700::6810:7c60"},
	"stun.l.google.com":            {"74.125.250.129", "2001:4860:4864:5:8000::1"},
	"stun.cloudflare.com":          {"104.22.40.3", "2606:4700:49::3"},
}

// controlServerName is the name of the SNI swap, which the TLS servers'
// certificate must cover too.
const controlServerName = catalog.DefaultControlServerName

// Plan is what the lab serves for a catalog: addresses, the zone, the
// certificate names and the ports of each kind of server.
type Plan struct {
	Catalog measurements.Catalog
}

// NewPlan checks that the lab knows an address for every host and server
// name of cat.
func NewPlan(cat measurements.Catalog) (*Plan, error) {
	for _, t := range cat.Targets {
		for _, name := range []string{t.Host, t.ServerName} {
			if _, ok := hostAddresses[name]; !ok {
				return nil, fmt.Errorf("lab: catalog %s: target %s: the lab has no address for %q (add it to hostAddresses)", cat.Name, t.Name, name)
			}
		}
	}
	return &Plan{Catalog: cat}, nil
}

// Zone is the genuine zone of the fake internet: every name with its IPv4
// address, and its IPv6 one too when withIPv6 is set.
func (p *Plan) Zone(withIPv6 bool) probetest.Zone {
	z := probetest.Zone{}
	for name, addrs := range hostAddresses {
		var e probetest.ZoneEntry
		for _, s := range addrs {
			a := netip.MustParseAddr(s)
			if a.Is6() && !withIPv6 {
				continue
			}
			e.Addrs = append(e.Addrs, a)
		}
		z[name] = e
	}
	return z
}

// Hosts returns the host names of the group's targets, sorted, without
// duplicates.
func (p *Plan) Hosts(group string) []string {
	var out []string
	for _, t := range p.Catalog.Targets {
		if t.Group == group && !slices.Contains(out, t.Host) {
			out = append(out, t.Host)
		}
	}
	slices.Sort(out)
	return out
}

// ServerNames returns the TLS server names of the group's TLS targets.
func (p *Plan) ServerNames(group string) []string {
	var out []string
	for _, t := range p.Catalog.Targets {
		if t.Group == group && t.Has("tls") && !slices.Contains(out, t.ServerName) {
			out = append(out, t.ServerName)
		}
	}
	slices.Sort(out)
	return out
}

// CertNames are the names the fake internet's certificate covers: every
// name it serves and the control server name of the SNI swap.
func (p *Plan) CertNames() []string {
	names := []string{controlServerName}
	for name := range hostAddresses {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// ports returns the ports of the targets measured over any of transports.
func (p *Plan) ports(transports ...string) []int {
	var out []int
	for _, t := range p.Catalog.Targets {
		if !slices.ContainsFunc(transports, t.Has) {
			continue
		}
		for _, port := range t.Ports {
			if !slices.Contains(out, port) {
				out = append(out, port)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TLSPorts are the TCP ports of the catalog's TCP and TLS targets.
func (p *Plan) TLSPorts() []int { return p.ports("tcp", "tls") }

// QUICPorts are the UDP ports of the catalog's QUIC targets.
func (p *Plan) QUICPorts() []int { return p.ports("quic") }

// faceTimePorts are the UDP ports Apple says FaceTime uses.
var faceTimePorts = func() []int {
	var out []int
	for _, r := range [][2]int{{3478, 3497}, {16384, 16387}, {16393, 16402}} {
		for p := r[0]; p <= r[1]; p++ {
			out = append(out, p)
		}
	}
	return out
}()

// STUNPorts are every FaceTime port and the UDP ports of the catalog's
// STUN targets.
func (p *Plan) STUNPorts() []int {
	out := slices.Clone(faceTimePorts)
	for _, port := range p.ports("udp") {
		if !slices.Contains(out, port) {
			out = append(out, port)
		}
	}
	slices.Sort(out)
	return out
}

// ALPNs are the protocols the catalog's targets offer, in catalog order,
// for servers that must accept any of them.
func (p *Plan) ALPNs(transport string) []string {
	var out []string
	for _, t := range p.Catalog.Targets {
		if !t.Has(transport) {
			continue
		}
		for _, a := range t.ALPN {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// dnsWireName is name in DNS wire format for an iptables --hex-string
// match: "push.apple.com" becomes "|04|push|05|apple|03|com|00|".
func dnsWireName(name string) string {
	var b strings.Builder
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		fmt.Fprintf(&b, "|%02x|%s", len(label), label)
	}
	b.WriteString("|00|")
	return b.String()
}
