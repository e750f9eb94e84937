//go:build lab

package lab

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/reachprobe/reachprobe/probes/failure"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// Honest networks whose answers the classifier keeps apart: a captive
// portal before login, and Apple's call hosts with nothing listening on
// the call ports. No verdict of these may be blocked.

// networkCaptivePortal is analyze's status for a run behind a portal.
const networkCaptivePortal = "captive_portal"

// portalPort is where the captive portal's server listens in the censor's
// namespace; DNAT sends every TCP connection from the LAN there.
const portalPort = 8080

// callPorts are the UDP ports Apple says FaceTime uses, as an iptables
// multiport list.
const callPorts = "3478:3497,16384:16387,16393:16402"

var (
	behindPortal = serviceWant{verdict: oneOf(verdictInconclusive, verdictOK)}
	appsBehind   = map[string]string{"imessage": appInconclusive, "facetime": appInconclusive}
)

func init() {
	scenarios = append(scenarios,
		scenario{
			name: "honest-captive-portal",
			censor: func(l *lab) {
				// Before login the portal's resolver answers every name
				// with the portal (a private address, as most are), it
				// takes every TCP connection, encrypted DNS's included,
				// and lets no other UDP out.
				l.lyingResolver(l.portalZone())
				l.portal()
			},
			signs: []sign{
				{target: "courier-1", kind: "dns/udp", result: "ok", answer: censorLANAddr},
				{target: "control-google", kind: "dns/udp", result: "ok", answer: censorLANAddr},
				{target: "courier-1", kind: "dns/doh", result: failure.HTTPResponseToTLS},
			},
			want: want{network: networkCaptivePortal, services: allServices(behindPortal, nil), apps: appsBehind},
		},
		scenario{
			name: "honest-captive-portal-transparent",
			censor: func(l *lab) {
				// A portal that leaves DNS alone and takes over every TCP
				// connection, answering the ClientHello with its redirect.
				l.portal()
			},
			signs: []sign{
				{target: "courier-1", kind: "dns/udp", result: "ok", answer: "17.57.144.21"},
				{target: "courier-1", kind: "tls", port: 5223, result: failure.HTTPResponseToTLS},
				{target: "control-google", kind: "tls", port: 443, result: failure.HTTPResponseToTLS},
			},
			want: want{network: networkCaptivePortal, services: allServices(behindPortal, nil), apps: appsBehind},
		},
		scenario{
			name: "honest-call-port-unreachable",
			censor: func(l *lab) {
				// Nothing listens on the call ports of Apple's hosts: each
				// answers ICMP port unreachable from its own address. A
				// reject in the internet's INPUT chain makes exactly the
				// kernel's answer for a closed port (type 3 code 3, from
				// the address the datagram went to), while the control
				// STUN servers, on other addresses, still answer. The
				// internet does not rate-limit its ICMP here, so every
				// exchange gets its answer.
				l.must("ip", "netns", "exec", l.internet, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")
				l.iptablesIn(l.internet, "-A", "INPUT", "-d", appleBlock, "-p", "udp", "-m", "multiport", "--dports", callPorts,
					"-j", "REJECT", "--reject-with", "icmp-port-unreachable")
			},
			signs: []sign{
				{target: "commnat-main", kind: "udp", port: 3478, result: failure.ConnectionRefused},
				{target: "control-stun-google", kind: "udp", port: 19302, result: "ok"},
			},
			// The datagrams reached Apple's hosts: the call path works.
			want: want{network: networkOK, services: allServices(svcOK, nil), apps: appsWorking},
		},
		scenario{
			name: "honest-call-port-unreachable-ratelimited",
			censor: func(l *lab) {
				// The same, with the kernel's default ICMP rate limit, as
				// real hosts have: some requests may get no answer, and
				// still nothing may be called down or blocked.
				l.iptablesIn(l.internet, "-A", "INPUT", "-d", appleBlock, "-p", "udp", "-m", "multiport", "--dports", callPorts,
					"-j", "REJECT", "--reject-with", "icmp-port-unreachable")
			},
			signs: []sign{
				{target: "commnat-main", kind: "udp", result: failure.ConnectionRefused},
				{target: "control-stun-google", kind: "udp", port: 19302, result: "ok"},
			},
			want: want{network: networkOK, services: allServices(svcOK, nil), apps: appsWorking},
		},
	)
}

// portalZone answers every name of the fake internet with the portal's
// address.
func (l *lab) portalZone() probetest.Zone {
	z := l.plan.Zone(false)
	for name := range z {
		z[name] = probetest.ZoneEntry{Addrs: []netip.Addr{netip.MustParseAddr(censorLANAddr)}}
	}
	return z
}

// portal starts the captive portal's server in the censor's namespace and
// sends it every TCP connection from the LAN but DNS; other UDP than DNS
// is dropped.
func (l *lab) portal() {
	l.t.Helper()
	listen := net.JoinHostPort(censorLANAddr, strconv.Itoa(portalPort))
	l.start(l.censor, RolePortal, PortalConfig{Listen: listen})
	l.prerouting("-i", censorLANIface, "-p", "tcp", "!", "--dport", "53", "-j", "DNAT", "--to-destination", listen)
	l.forward("-i", censorLANIface, "-p", "udp", "!", "--dport", "53", "-j", "DROP")
}
