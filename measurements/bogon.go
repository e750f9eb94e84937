package measurements

import "net/netip"

// bogons are the prefixes no public host is reachable at: private,
// loopback, link-local, shared (CGNAT), documentation, benchmarking,
// multicast and reserved space. A DNS answer inside them for a public name
// is a classic censor's answer (dns_bogon_error in OONI's vocabulary).
var bogons = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "2001:db8::/32", "100::/64",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// NAT64Prefix is the well-known prefix of NAT64 (RFC 6052): a DNS64
// resolver on an IPv6-only network answers 64:ff9b::a.b.c.d for a name
// whose only address is the IPv4 a.b.c.d, and the network's NAT64 gateway
// carries the connection to a.b.c.d.
var NAT64Prefix = netip.MustParsePrefix("64:ff9b::/96")

// UnwrapIPv4 returns the IPv4 address addr carries when it is an
// IPv4-mapped IPv6 address (::ffff:a.b.c.d) or a NAT64 address of the
// well-known prefix (64:ff9b::a.b.c.d), and addr otherwise. Addresses are
// judged (bogon, expected networks, AS) as the IPv4 address they carry: a
// NAT64 address of 10.0.0.1 leads to a private host, one of 17.57.146.20
// to Apple.
func UnwrapIPv4(addr netip.Addr) netip.Addr {
	addr = addr.Unmap()
	if addr.Is6() && NAT64Prefix.Contains(addr.WithZone("")) {
		b := addr.As16()
		return netip.AddrFrom4([4]byte(b[12:]))
	}
	return addr
}

// IsBogon reports whether addr lies in space no public host can have.
// IPv4-mapped and NAT64 (64:ff9b::/96) IPv6 addresses are judged as the
// IPv4 address they carry.
func IsBogon(addr netip.Addr) bool {
	addr = UnwrapIPv4(addr)
	if !addr.IsValid() {
		return true
	}
	for _, p := range bogons {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
