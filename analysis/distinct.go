package analysis

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// This file judges the answers the probes' classifier keeps apart because
// they mean different things: this machine's own firewall refusing to
// send (local_firewall_error), a middlebox answering a ClientHello with an
// HTTP page (http_response_to_tls), and, for UDP, an ICMP error that came
// from the target itself (the datagram arrived) or from a firewall.

// maxQuoted is how many bytes of a peer's answer an evidence sentence
// quotes; the observation keeps up to 512.
const maxQuoted = 96

// quoteBytes quotes the first bytes of a peer's answer for evidence:
// escaped to printable ASCII (the bytes are hostile: no control
// characters or markup reach a terminal or a page raw), cut at maxQuoted.
func quoteBytes(b []byte) string {
	cut := len(b) > maxQuoted
	if cut {
		b = b[:maxQuoted]
	}
	q := strconv.QuoteToASCII(string(b))
	if cut {
		q += "..."
	}
	return q
}

// localPolicy closes an endpoint whose tries this machine refused to send:
// its own firewall's policy, which says nothing about the network.
func (j *endpointJudge) localPolicy(r *judged) {
	r.v.Verdict = VerdictFailed
	r.v.Evidence = fmt.Sprintf("this computer refused to send to %s (%s): its own firewall or routing policy, not the network's; not blocking",
		hostPort(r.v.Address, r.v.Port), r.v.Failure)
}

// blockPage judges a TLS endpoint whose handshakes with the target name
// were answered with plaintext HTTP (or other bytes that are not TLS) in
// every try. No TLS server does
// that; a middlebox does. It is SNI filtering when the control name
// completed a handshake on the same address and port, a block page
// answering the address when control hosts' handshakes verify elsewhere.
// When the control hosts meet pages too, the network answers everything
// with a page (a captive portal, see portal.go), and nothing is judged.
func (j *endpointJudge) blockPage(r *judged, ts tries) {
	n := len(ts.classes)
	name := j.controlName(r)
	page, kind := pageBytes(ts.obs), "plaintext HTTP"
	if r.v.Failure != failHTTPToTLS {
		kind = "bytes that are not TLS"
	}
	what := fmt.Sprintf("the handshake with %s was answered with %s instead of TLS in %d of %d tries: a middlebox, not a TLS server, sent %s",
		j.serverName(r, ts), kind, n, n, page)
	switch {
	case allEqual(ts.controls, classReached):
		r.candidate = MethodSNIFiltering
		r.v.Control = fmt.Sprintf("the same address and port completed a handshake with %s in %d of %d tries", name, n, n)
	case ts.countControls(classReached) == 0:
		ref := j.ss.controlTLS(r.family)
		if ref == nil {
			j.unattributable(r, what)
			return
		}
		r.candidate = MethodTLSBlockPage
		r.v.Control = fmt.Sprintf("control host %s completed a verified handshake in %d of %d tries", ref.target.Host, ref.verified, ref.attempts)
	default:
		r.v.Verdict = VerdictInconclusive
		r.v.Control = fmt.Sprintf("the handshake with %s gave mixed results (%s)", name, strings.Join(ts.controls, ", "))
	}
	r.v.Evidence = what + "; " + r.v.Control
}

// alertNote names the TLS alert among obs, as " (handshake_failure)", or
// "" when none was recorded.
func alertNote(obs []*measurements.Observation) string {
	for _, o := range obs {
		if o != nil && o.TLS != nil && o.TLS.Alert != "" {
			return " (" + o.TLS.Alert + ")"
		}
	}
	return ""
}

// pageBytes quotes the first non-TLS answer among obs.
func pageBytes(obs []*measurements.Observation) string {
	for _, o := range obs {
		if o != nil && o.TLS != nil && len(o.TLS.ServerBytes) > 0 {
			return quoteBytes(o.TLS.ServerBytes)
		}
	}
	return "an answer whose bytes were not kept"
}

// explainLocalPolicy rewords the services and targets that failed only
// because this machine refused to send: it is the volunteer's own policy,
// and the verdict says so instead of suggesting an outage.
func explainLocalPolicy(services []ServiceVerdict, rs []*judged) {
	local := map[string]bool{} // targets with a local refusal
	other := map[string]bool{} // targets failed otherwise
	for _, r := range rs {
		if r.v.Verdict != VerdictFailed {
			continue
		}
		if r.v.Failure == failLocalFirewall {
			local[r.v.Target] = true
		} else {
			other[r.v.Target] = true
		}
	}
	const why = "this computer's own firewall or routing policy refuses to send to these servers: this machine's policy, not the network's, and not blocking"
	for i := range services {
		sv := &services[i]
		all, any := sv.Verdict == VerdictFailed, false
		for k := range sv.Targets {
			tv := &sv.Targets[k]
			switch {
			case tv.Verdict != VerdictFailed:
			case local[tv.Target] && !other[tv.Target]:
				tv.Reason += ": " + why
				any = true
			default:
				all = false
			}
		}
		if all && any {
			sv.Reason = why
		}
	}
}
