package analysis

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// A captive portal (hotel, airport, café Wi-Fi before login) answers for
// the whole internet: its resolver gives every name the portal's address,
// or its gateway answers every connection with the portal's HTTP page or
// certificate. That is a state of the network of its own, "log in to this
// network first", not blocking: nothing behind it can be judged.
//
// The signs are looked for across every host, the control hosts included,
// so a censor acting on Apple's names alone never shows them; and a
// control host's handshake that verified (the internet is reachable) rules
// a portal out.

// minPortalNames is the fewest names that must share the portal's sign:
// one control host and one Apple host at least, and one more, so that two
// names that happen to share a server are not a portal.
const minPortalNames = 3

// detectPortal returns, in words, the signs of a captive portal in the
// run, or "" when there are none.
func detectPortal(ix *index, sums map[string]*dnsSummary) string {
	if controlVerified(ix) {
		return ""
	}
	var signs []string
	if s := portalDNS(ix, sums); s != "" {
		signs = append(signs, s)
	}
	if s := portalHandshakes(ix); s != "" {
		signs = append(signs, s)
	}
	return strings.Join(signs, "; ")
}

// controlVerified reports whether any control host's handshake with its
// own name verified.
func controlVerified(ix *index) bool {
	for _, k := range ix.endpointIDs {
		e := ix.endpoints[k]
		if e.target.Group != measurements.GroupControl {
			continue
		}
		for _, a := range e.attempts {
			if verified(a.main) {
				return true
			}
		}
	}
	return false
}

// portalDNS is the DNS sign: the network's resolver gives every name it
// answers, control names included, the same addresses, none of them in
// the name's expected networks nor the unspecified address (a local
// blocklist's answer).
func portalDNS(ix *index, sums map[string]*dnsSummary) string {
	var key string
	names, controls, apple := 0, 0, 0
	var addrs []netip.Addr
	for _, t := range ix.orderedTargets() {
		s := sums[t.Name]
		if s == nil || len(s.resolverAddrs) == 0 {
			continue
		}
		k := fmt.Sprint(s.resolverAddrs)
		if key == "" {
			key, addrs = k, s.resolverAddrs
		} else if k != key {
			return ""
		}
		for _, a := range s.resolverAddrs {
			if a.IsUnspecified() || inNetworks(t, a) {
				return ""
			}
		}
		names++
		if t.Group == measurements.GroupControl {
			controls++
		} else {
			apple++
		}
	}
	if names < minPortalNames || controls == 0 || apple == 0 {
		return ""
	}
	return fmt.Sprintf("the network's resolver answers every name, control hosts' included, with the same address (%s)", addrList(addrs))
}

// portalHandshakes is the handshake sign: every TLS handshake that
// reached a peer, with any name, control hosts' included, got the same
// plaintext HTTP answer instead of TLS, or the same certificate, which
// does not verify.
func portalHandshakes(ix *index) string {
	var pages, certs, total, controls, apple int
	var page []byte
	var leaf []byte
	for _, k := range ix.endpointIDs {
		e := ix.endpoints[k]
		for _, a := range e.attempts {
			for _, o := range []*measurements.Observation{a.control, a.main} {
				if o == nil || o.Step != measurements.StepTLS || o.Operation == opConnect || o.Failure == failTimeout {
					continue
				}
				total++
				if e.target.Group == measurements.GroupControl {
					controls++
				} else {
					apple++
				}
				switch {
				case o.Failure == failHTTPToTLS:
					pages++
					if page == nil && o.TLS != nil {
						page = o.TLS.ServerBytes
					}
				case o.TLS != nil && !o.TLS.Verified && len(o.TLS.PeerCertificates) > 0:
					der := o.TLS.PeerCertificates[0]
					if leaf == nil {
						leaf = der
					}
					if bytes.Equal(der, leaf) {
						certs++
					}
				}
			}
		}
	}
	if total < minPortalNames || controls == 0 || apple == 0 {
		return ""
	}
	switch total {
	case pages:
		return fmt.Sprintf("every TLS handshake, control hosts' included, was answered with the same kind of plaintext HTTP page (%s)", quoteBytes(page))
	case certs:
		return "every TLS handshake, control hosts' included, met the same certificate, which does not verify"
	}
	return ""
}

// behindPortal rewrites a report judged behind a captive portal: the
// network says so, and no verdict claims more than "inconclusive".
func behindPortal(rep *Report, why string) {
	const behind = "behind a captive portal: log in to this network first (open any web page), then measure again"
	rep.Network.Status = NetworkCaptivePortal
	rep.Network.Reason = "a captive portal answers instead of the internet: " + why + "; nothing behind it is judged"
	for i := range rep.DNS {
		d := &rep.DNS[i]
		if d.Verdict == VerdictBlocked {
			d.Verdict, d.Suspected, d.Method = VerdictInconclusive, d.Method, ""
			d.Evidence += "; not called blocked: " + behind
		}
	}
	for i := range rep.Endpoints {
		e := &rep.Endpoints[i]
		if e.Verdict == VerdictBlocked {
			e.Verdict, e.Suspected, e.Method = VerdictInconclusive, e.Method, ""
			e.Evidence += "; not called blocked: " + behind
		}
	}
	for i := range rep.Services {
		sv := &rep.Services[i]
		for k := range sv.Targets {
			tv := &sv.Targets[k]
			if tv.Verdict != VerdictOK {
				tv.Verdict, tv.Method = VerdictInconclusive, ""
				tv.Reason = behind + "; " + tv.Reason
			}
		}
		if sv.Verdict == VerdictOK {
			continue
		}
		sv.Verdict, sv.Reason, sv.Methods = VerdictInconclusive, behind, []string{}
		sv.Confidence.Level = "low"
		sv.Confidence.TargetsAgreeing = 0
		sv.Confidence.EndpointsBlocked = 0
	}
	for i := range rep.Apps {
		a := &rep.Apps[i]
		if a.Verdict != AppWorking {
			a.Verdict, a.Reason = AppInconclusive, behind
		}
	}
}
