//go:build lab

package lab

import (
	"fmt"
	"testing"
)

// The ISP path: two routers between the censor (the volunteer's home
// router, hop 1) and the fake internet, so that a path has several hops
// and a drop can sit past the first:
//
//	client — censor (hop 1, 192.168.77.1) — isp (hop 2, 81.200.60.2, AS64500)
//	       — transit (hop 3, 62.115.60.2, AS64510) — internet (hop 4)
//
// A router answers an expired TTL from the address of its interface
// toward the client; those addresses are public-looking, so that the
// ASN test hook (REACHPROBE_TEST_ASNS, passed to the probe) names their
// networks the way the embedded database names real routers'.
const (
	ispCensorAddr  = "81.200.60.1" // the censor's end of censor<->isp
	ispAddr        = "81.200.60.2" // the isp's end, its answering address
	ispUpAddr      = "62.115.60.1" // the isp's end of isp<->transit
	transitAddr    = "62.115.60.2" // the transit's end, its answering address
	transitUpAddr  = "62.115.61.1" // the transit's end of transit<->internet
	ispInternet    = "62.115.61.2" // the internet's end
	ispLinkBits    = 30
	ispASN         = 64500
	transitASN     = 64510
	ispDownIface   = "down0"
	ispUpIface     = "up0"
	ispCensorIface = "isp0" // the censor's link to the isp
)

// labASNs is the ASN test hook's value for the ISP path.
var labASNs = fmt.Sprintf("81.200.60.0/24 %d Lab ISP; 62.115.60.0/23 %d Lab Transit", ispASN, transitASN)

// newISPLab builds a lab whose censor reaches the internet through the
// isp and transit routers instead of its direct link. The censor's
// direct link stays, unused: the default route goes through the isp.
func newISPLab(t *testing.T, plan *Plan) *lab {
	t.Helper()
	l := newLab(t, plan)
	l.isp, l.transit = l.client[:len(l.client)-len("client")]+"isp", l.client[:len(l.client)-len("client")]+"transit"
	for _, ns := range []string{l.isp, l.transit} {
		l.must("ip", "netns", "add", ns)
		l.must("ip", "-n", ns, "link", "set", "lo", "up")
		l.must("ip", "netns", "exec", ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	}
	link := func(a, aIface, aAddr, b, bIface, bAddr string) {
		l.must("ip", "-n", a, "link", "add", aIface, "type", "veth", "peer", "name", bIface, "netns", b)
		l.must("ip", "-n", a, "addr", "add", fmt.Sprintf("%s/%d", aAddr, ispLinkBits), "dev", aIface)
		l.must("ip", "-n", b, "addr", "add", fmt.Sprintf("%s/%d", bAddr, ispLinkBits), "dev", bIface)
		l.must("ip", "-n", a, "link", "set", aIface, "up")
		l.must("ip", "-n", b, "link", "set", bIface, "up")
	}
	link(l.censor, ispCensorIface, ispCensorAddr, l.isp, ispDownIface, ispAddr)
	link(l.isp, ispUpIface, ispUpAddr, l.transit, ispDownIface, transitAddr)
	link(l.transit, ispUpIface, transitUpAddr, l.internet, "isp1", ispInternet)

	l.must("ip", "-n", l.censor, "route", "replace", "default", "via", ispAddr)
	l.must("ip", "-n", l.isp, "route", "add", "default", "via", transitAddr)
	l.must("ip", "-n", l.isp, "route", "add", lanPrefix, "via", ispCensorAddr)
	l.must("ip", "-n", l.transit, "route", "add", "default", "via", ispInternet)
	l.must("ip", "-n", l.transit, "route", "add", lanPrefix, "via", ispUpAddr)
	l.must("ip", "-n", l.internet, "route", "replace", lanPrefix, "via", transitUpAddr)
	l.env = append(l.env, "REACHPROBE_TEST_ASNS="+labASNs)
	return l
}

// ispForward appends a rule to the isp router's FORWARD chain: a censor
// inside the ISP, one hop past the volunteer's home router.
func (l *lab) ispForward(rule ...string) {
	l.t.Helper()
	l.iptablesIn(l.isp, append([]string{"-A", "FORWARD"}, rule...)...)
}
