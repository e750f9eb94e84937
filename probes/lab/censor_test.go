//go:build lab

package lab

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/reachprobe/reachprobe/probes/probetest"
)

// interceptPort is where the censor's TLS middlebox listens; DNAT sends
// the intercepted connections there.
const interceptPort = 8443

// The censor's techniques, applied the way real censors apply them: rules
// in the FORWARD chain or nat PREROUTING of the censor's namespace, and
// servers of its own in that namespace.

// forward appends a rule to the censor's FORWARD chain.
func (l *lab) forward(rule ...string) {
	l.t.Helper()
	l.iptablesIn(l.censor, append([]string{"-A", "FORWARD"}, rule...)...)
}

// prerouting appends a rule to the censor's nat PREROUTING chain.
func (l *lab) prerouting(rule ...string) {
	l.t.Helper()
	l.iptablesIn(l.censor, append([]string{"-t", "nat", "-A", "PREROUTING"}, rule...)...)
}

// resetOnString resets TCP flows whose packet carries s (a server name or
// an ALPN protocol in a ClientHello), as an SNI-filtering DPI box does.
func (l *lab) resetOnString(s string) {
	l.t.Helper()
	l.forward("-p", "tcp", "-m", "string", "--algo", "bm", "--string", s, "-j", "REJECT", "--reject-with", "tcp-reset")
}

// dropOnString silently drops TCP packets carrying s: the handshake stalls.
func (l *lab) dropOnString(s string) {
	l.t.Helper()
	l.forward("-p", "tcp", "-m", "string", "--algo", "bm", "--string", s, "-j", "DROP")
}

// lyingResolver answers the client's DNS (UDP and TCP 53, whatever
// resolver it asks) from zone, with a resolver in the censor's namespace.
func (l *lab) lyingResolver(zone probetest.Zone) {
	l.t.Helper()
	listen := net.JoinHostPort(censorLANAddr, "53")
	l.start(l.censor, RoleResolver, ResolverConfig{Listen: listen, Zone: zone})
	for _, proto := range []string{"udp", "tcp"} {
		l.prerouting("-i", censorLANIface, "-p", proto, "--dport", "53", "-j", "DNAT", "--to-destination", listen)
	}
}

// injectDNS answers the client's A queries for names under suffix with
// InjectedAddr ahead of the real resolver (see Injector).
func (l *lab) injectDNS(suffix string) {
	l.t.Helper()
	l.injectDNSWith(InjectorConfig{Suffix: suffix})
}

// injectDNSWith runs an injector configured by cfg (its interface and
// forged address filled in): ahead of the real resolver, or behind it
// when cfg.ForgeAfter is set.
func (l *lab) injectDNSWith(cfg InjectorConfig) {
	l.t.Helper()
	if cfg.ForgeAfter == 0 {
		// Hold the genuine query back: the same match as the
		// injector's, the name in wire format followed by type A (00 01).
		wire := dnsWireName(cfg.Suffix)
		l.forward("-i", censorLANIface, "-p", "udp", "--dport", "53", "-m", "string", "--algo", "bm",
			"--hex-string", wire[:len(wire)-1]+" 00 01|", "-j", "DROP")
	}
	cfg.Interface, cfg.Forged = censorLANIface, InjectedAddr
	l.start(l.censor, RoleInjector, cfg)
}

// intercept sends TCP 443 to the addresses of prefix to a TLS middlebox
// in the censor's namespace that presents, for names, certificates of an
// untrusted CA (as Kazakhstan's national root did).
func (l *lab) intercept(prefix string, names []string) {
	l.t.Helper()
	listen := net.JoinHostPort(censorLANAddr, strconv.Itoa(interceptPort))
	l.start(l.censor, RoleInterceptor, InterceptorConfig{
		Listen:    listen,
		CertNames: append([]string{controlServerName}, names...),
		ALPN:      l.plan.ALPNs("tls"),
	})
	l.prerouting("-i", censorLANIface, "-d", prefix, "-p", "tcp", "--dport", "443", "-j", "DNAT", "--to-destination", listen)
}

// uplinkDown takes the censor's link to the internet down: the network
// has no connectivity at all.
func (l *lab) uplinkDown() {
	l.t.Helper()
	l.must("ip", "-n", l.censor, "link", "set", censorWANIface, "down")
}

// randomLoss drops each forwarded packet with probability p, both ways
// (the kernel has no netem here).
func (l *lab) randomLoss(p float64) {
	l.t.Helper()
	l.forward("-m", "statistic", "--mode", "random", "--probability", strconv.FormatFloat(p, 'f', -1, 64), "-j", "DROP")
}

// residualReset resets TCP flows carrying s and then, for residual, every
// TCP packet to the same server address, as the Great Firewall's residual
// blocking does after a trigger.
func (l *lab) residualReset(s string, residual time.Duration) {
	l.t.Helper()
	seconds := strconv.Itoa(int(residual.Seconds()))
	l.forward("-p", "tcp", "-m", "recent", "--name", "residual", "--rdest", "--rcheck", "--seconds", seconds,
		"-j", "REJECT", "--reject-with", "tcp-reset")
	l.forward("-p", "tcp", "-m", "string", "--algo", "bm", "--string", s, "-m", "recent", "--name", "residual", "--rdest", "--set",
		"-j", "REJECT", "--reject-with", "tcp-reset")
}

// shape limits the censor's links to rate (tc's syntax, "256kbit") both
// ways with a token bucket that queues at most latency: a slow, congested
// link that drops what overflows.
func (l *lab) shape(rate string, latency time.Duration) {
	l.t.Helper()
	for _, iface := range []string{censorLANIface, censorWANIface} {
		l.must("ip", "netns", "exec", l.censor, "tc", "qdisc", "add", "dev", iface, "root", "tbf",
			"rate", rate, "burst", "16kb", "latency", fmt.Sprintf("%dms", latency.Milliseconds()))
	}
}

// lyingZone returns the genuine zone with edit applied to the entries of
// hosts.
func (l *lab) lyingZone(hosts []string, edit func(host string, e *probetest.ZoneEntry)) probetest.Zone {
	z := l.plan.Zone(false)
	for _, h := range hosts {
		e, ok := z[h]
		if !ok {
			panic(fmt.Sprintf("lab: no zone entry for %s", h))
		}
		edit(h, &e)
		z[h] = e
	}
	return z
}

// nxdomain makes a zone entry answer NXDOMAIN.
func nxdomain(_ string, e *probetest.ZoneEntry) { e.Behavior = probetest.DNSNXDomain }

// bogons makes each name answer one of addrs in turn.
func bogons(addrs ...string) func(string, *probetest.ZoneEntry) {
	i := 0
	return func(_ string, e *probetest.ZoneEntry) {
		e.Addrs = []netip.Addr{netip.MustParseAddr(addrs[i%len(addrs)])}
		i++
	}
}
