package analysis

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// Plain words for people: titles of services and apps, and what each
// method means for the user.

var serviceTitles = map[string]string{
	measurements.GroupPush:     "Push notifications (APNs)",
	measurements.GroupIdentity: "Identity (IDS, Apple ID)",
	measurements.GroupCall:     "FaceTime calls",
	measurements.GroupQUIC:     "QUIC (iCloud Private Relay)",
}

var appTitles = map[string]string{
	AppIMessage: "iMessage",
	AppFaceTime: "FaceTime",
}

// methodPhrases say what a method does to the user's traffic.
var methodPhrases = map[string]string{
	MethodDNSNXDomain:     "the network's DNS says Apple's servers do not exist, while encrypted DNS finds them",
	MethodDNSRefused:      "the network's DNS refuses to look up Apple's servers, while encrypted DNS finds them",
	MethodDNSServfail:     "the network's DNS fails on Apple's servers every time, while encrypted DNS finds them",
	MethodDNSTimeout:      "the network's DNS never answers for Apple's servers, though it answers for other names",
	MethodDNSBogon:        "the network's DNS answers with private addresses instead of Apple's",
	MethodDNSInjection:    "forged DNS answers arrive before the real ones",
	MethodDNSInconsistent: "the network's DNS answers with addresses that are not Apple's",
	MethodTCPTimeout:      "connections to Apple's servers get no answer, while other hosts answer",
	MethodTCPReset:        "connections to Apple's servers are reset, while other hosts connect",
	MethodTCPRefused:      "connections to Apple's servers are refused, while other hosts connect",
	MethodTLSReset:        "secure connections to Apple's servers are reset during the handshake",
	MethodTLSTimeout:      "secure connections to Apple's servers stall during the handshake",
	MethodSNIFiltering:    "connections are cut when they name Apple's server, while another name on the same server works",
	MethodPortFiltering:   "a port is blocked while another port of the same servers works",
	MethodTLSInterception: "connections are intercepted: the certificate is not Apple's",
	MethodQUICTimeout:     "QUIC to Apple's servers gets no answer, while TCP to them or QUIC to other hosts works",
	MethodUDPTimeout:      "UDP to Apple's servers gets no answer while other UDP does",
	MethodUDPPathDrop:     "UDP to Apple's call servers is dropped on the way, at a router that lets UDP to other addresses through",
	MethodUDPPayload:      "the kinds of datagram FaceTime sends are dropped on the way to Apple's servers, while other datagrams of the same size reach them",
	MethodUDPRejected:     "a firewall rejects UDP to Apple's servers while other UDP gets through",
	MethodTLSBlockPage:    "secure connections to Apple's servers are answered with a web page (a block page) instead of Apple's server",
}

func methodPhrase(m string) string {
	if p, ok := methodPhrases[m]; ok {
		return p
	}
	return m
}

// blockedWhat says what a blocked service means for the user.
var blockedWhat = map[string]string{
	measurements.GroupPush:     "notifications cannot arrive",
	measurements.GroupIdentity: "devices cannot register or look up contacts",
	measurements.GroupCall:     "calls cannot connect",
	measurements.GroupQUIC:     "Private Relay cannot use QUIC",
}

// unreachableWhat says what an unreachable service means for the user.
var unreachableWhat = map[string]string{
	measurements.GroupPush:     "notifications cannot arrive",
	measurements.GroupIdentity: "devices cannot register or look up contacts",
	measurements.GroupCall:     "calls cannot connect",
	measurements.GroupQUIC:     "Private Relay cannot connect",
}

// restrictedReason says why a service is closed by the network's policy,
// naming the ports closed for every destination.
func restrictedReason(service string, tjs []*targetJudgement) string {
	var ports []string
	for _, tj := range tjs {
		for _, r := range tj.endpoints {
			if r.v.Verdict == VerdictRestricted {
				ports = append(ports, fmt.Sprintf("%s %d", strings.ToUpper(transportOfPort(r.v.Transport)), r.v.Port))
			}
		}
	}
	slices.Sort(ports)
	ports = slices.Compact(ports)
	return fmt.Sprintf("%s here: this network closes %s for every destination, not only toward Apple (its own policy, not a block aimed at Apple)", blockedWhat[service], strings.Join(ports, ", "))
}

// transportOfPort names the IP transport of a measured transport.
func transportOfPort(kind string) string {
	if kind == transportUDP || kind == transportQUIC {
		return "udp"
	}
	return "tcp"
}

// blockedReason says why a service is blocked, for the user; methods are
// the blocked targets' methods, most common first.
func blockedReason(service string, methods []string) string {
	method := ""
	if len(methods) > 0 {
		method = methods[0]
	}
	switch {
	case service == measurements.GroupCall && method == MethodUDPTimeout:
		return "calls cannot connect: UDP to Apple's call ports gets no answer while other UDP does"
	case service == measurements.GroupQUIC && len(methods) > 1:
		// QUIC and the TCP fallback both blocked, each its own way.
		phrases := make([]string, 0, len(methods))
		for _, m := range methods {
			phrases = append(phrases, methodPhrase(m))
		}
		return "Private Relay cannot connect, over QUIC or its TCP fallback: " + strings.Join(phrases, "; ")
	}
	return blockedWhat[service] + ": " + methodPhrase(method)
}

// degradedReason says what a degraded service means for the user.
func degradedReason(service, method string, blocked, total int) string {
	if service == measurements.GroupPush && method == MethodPortFiltering {
		return "notifications have to use the fallback port 443 because port 5223 is blocked; they may be delayed"
	}
	return pluralHosts(blocked, total) + " blocked (" + methodPhrase(method) + "), the others work"
}

func pluralHosts(n, total int) string {
	if total == 1 {
		return "its only host is"
	}
	return strconv.Itoa(n) + " of " + strconv.Itoa(total) + " hosts are"
}

// workingReasons say what a working app can do.
var workingReasons = map[string]string{
	AppIMessage: "push notifications and identity services are reachable",
	AppFaceTime: "push notifications, identity services and the call path are reachable",
}

// Words for DNS evidence and address lists.

func engineName(e string) string {
	switch e {
	case measurements.EngineSystem:
		return "system"
	case measurements.EngineUDP:
		return "network's (UDP)"
	case measurements.EngineTCP:
		return "network's (TCP)"
	}
	return e
}

func outcomeVerb(outcome string) string {
	switch outcome {
	case dnsNXDomain:
		return "said the name does not exist (NXDOMAIN)"
	case dnsRefused:
		return "refused the query (REFUSED)"
	case dnsServfail:
		return "failed (SERVFAIL)"
	case dnsTimeout:
		return "never answered"
	}
	return outcome
}

func responseText(outcome string, addrs []netip.Addr) string {
	if len(addrs) > 0 {
		return addrList(sortedAddrs(addrs))
	}
	return strings.ToUpper(outcome)
}

func outcomeList(qs []dnsQuery) string {
	counts := map[string]int{}
	for _, q := range qs {
		counts[q.outcome]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// maxListed is how many addresses a sentence names before "and N more".
const maxListed = 3

func addrList(as []netip.Addr) string {
	s := addrStrings(as)
	if len(s) > maxListed {
		return strings.Join(s[:maxListed], ", ") + fmt.Sprintf(" and %d more", len(s)-maxListed)
	}
	return strings.Join(s, ", ")
}

func addrListOr(as []netip.Addr, none string) string {
	if len(as) == 0 {
		return none
	}
	return addrList(as)
}
