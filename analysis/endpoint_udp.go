package analysis

import (
	"fmt"

	"github.com/reachprobe/reachprobe/measurements"
)

// Classes of QUIC and STUN tries, besides classOK and classCert.
const (
	classQUICVersion = "quic.version"
	classUDPSilence  = "udp.silence"
	classUDPRefused  = "udp.refused"
	classUDPOther    = "udp.other"
)

// failQUICVersion is the failure of a server that speaks no QUIC version
// the probe offers.
const failQUICVersion = "quic_incompatible_version"

func quicClass(o *measurements.Observation) string {
	if o.Failure == failQUICVersion {
		return classQUICVersion
	}
	return handshakeClass(o)
}

func (j *endpointJudge) judgeQUIC(r *judged) {
	var ts tries
	for _, a := range r.e.attempts {
		if a.main != nil {
			ts.classes = append(ts.classes, quicClass(a.main))
			ts.obs = append(ts.obs, a.main)
		}
	}
	if j.settleMixed(r, ts) {
		return
	}
	n := len(ts.classes)
	name := j.serverName(r, ts)
	switch ts.classes[0] {
	case classCert:
		j.judgeCert(r, ts)
	case classTLSTimeout:
		j.quicSilence(r, fmt.Sprintf("the QUIC handshake with %s at %s got no answer in %d of %d tries", name, hostPort(r.v.Address, r.v.Port), n, n))
	case classQUICVersion:
		r.v.Verdict = VerdictFailed
		r.v.Evidence = fmt.Sprintf("the server at %s speaks no QUIC version the probe offers: not blocking", hostPort(r.v.Address, r.v.Port))
	default:
		r.v.Verdict = VerdictInconclusive
		r.v.Evidence = fmt.Sprintf("the QUIC handshake with %s failed with %s in %d of %d tries", name, r.v.Failure, n, n)
	}
}

// quicSilence judges a QUIC endpoint whose handshakes all got no answer.
// Silence is QUIC's to this server when QUIC gets through elsewhere: to a
// control host (as udp.timeout stands on the STUN control), or to another
// server while TCP into the target's networks works; or when TCP to the
// same address works, unless QUIC to the control hosts fails too, which
// says QUIC is blocked or broken everywhere, not only to Apple.
func (j *endpointJudge) quicSilence(r *judged, what string) {
	r.lossLike = true
	if j.net.checks.QUIC == checkFailed {
		if j.ss.controlsAllFailed() {
			j.unattributable(r, what)
			return
		}
		r.v.Verdict = VerdictInconclusive
		r.v.Control = "no QUIC handshake with a control host got an answer"
		r.v.Evidence = what + "; " + r.v.Control + ": QUIC is blocked or broken on this network, not only to this server"
		return
	}
	if ref := j.ss.tcpAt(r.e.addr); ref != nil {
		r.candidate = MethodQUICTimeout
		r.v.Control = fmt.Sprintf("TCP to the same address (port %d) worked in %d of %d tries", ref.port, ref.successes, ref.attempts)
	} else if ctl := j.ss.controlQUIC(r.family); ctl != nil {
		r.candidate = MethodQUICTimeout
		r.v.Control = fmt.Sprintf("QUIC to control host %s (%s) worked in %d of %d tries", ctl.target.Host, hostPort(ctl.address, ctl.port), ctl.successes, ctl.attempts)
	} else if q, tcp := j.ss.otherQUIC(r.family, r.e.addr), j.ss.tcpInNetworks(r.e.target, r.family); q != nil && tcp != nil {
		r.candidate = MethodQUICTimeout
		r.v.Control = fmt.Sprintf("QUIC to %s and TCP to %s (the same operator's network) worked in every try", q.target.Host, tcp.target.Host)
	} else {
		j.unattributable(r, what)
		return
	}
	r.v.Evidence = what + "; " + r.v.Control
}

func udpClass(o *measurements.Observation) string {
	switch {
	case o.Failure == "" || o.STUN != nil && o.STUN.Responded:
		return classOK
	case o.Failure == failTimeout:
		return classUDPSilence
	case o.Failure == failRefused:
		return classUDPRefused
	}
	return classUDPOther
}

func (j *endpointJudge) judgeUDP(r *judged) {
	var ts tries
	expect := r.e.target.STUNAnswers
	for _, a := range r.e.attempts {
		if a.main == nil {
			continue
		}
		if a.main.STUN != nil {
			expect = a.main.STUN.ExpectAnswer
		}
		ts.classes = append(ts.classes, udpClass(a.main))
		ts.obs = append(ts.obs, a.main)
	}
	if j.settleMixed(r, ts) {
		return
	}
	n := len(ts.classes)
	where := hostPort(r.v.Address, r.v.Port)
	switch ts.classes[0] {
	case classUDPSilence:
		what := fmt.Sprintf("no STUN answer from %s in %d of %d tries", where, n, n)
		if !expect {
			r.v.Verdict = VerdictInconclusive
			r.v.Evidence = what + "; this server is not known to answer STUN, so its silence proves nothing"
			return
		}
		ref := j.ss.otherUDP(r.family, r.e.addr)
		if ref == nil {
			if j.ss.controlsAllFailed() {
				j.unattributable(r, what)
				return
			}
			r.v.Verdict = VerdictInconclusive
			r.v.Evidence = what + fmt.Sprintf("; no other UDP (control STUN server, QUIC) got an answer in every try over %s, so UDP may be blocked or lost everywhere", familyName(r.family))
			return
		}
		r.lossLike = true
		r.candidate = MethodUDPTimeout
		if ref.step == measurements.StepUDP {
			r.v.Control = fmt.Sprintf("STUN control %s answered in %d of %d tries", ref.target.Host, ref.successes, ref.attempts)
		} else {
			r.v.Control = fmt.Sprintf("QUIC to %s worked in %d of %d tries", ref.target.Host, ref.successes, ref.attempts)
		}
		r.v.Evidence = what + ", a server known to answer; " + r.v.Control
	case classUDPRefused:
		r.v.Verdict = VerdictFailed
		r.v.Evidence = fmt.Sprintf("%s answered that the port is closed (%s): a server problem, not blocking", where, r.v.Failure)
	default:
		r.v.Verdict = VerdictInconclusive
		r.v.Evidence = fmt.Sprintf("the STUN exchange with %s failed with %s", where, r.v.Failure)
	}
}

// judgeCert judges an endpoint whose handshakes completed with a chain that
// did not verify, in every try. What decides is whose key signed the leaf
// (certs.go), never the issuer's name:
//
//   - Apple's key, or another known one (a chain that lacks its
//     intermediate, a root this computer lacks, an authority other paths
//     verified): the chain is the server's, and the server was reached;
//   - no known key: interception when another path got a chain for the
//     same name that verifies, or when whoever answers at an address of
//     the target's own networks also made a certificate for the control
//     name of the SNI swap, a name that is not Apple's, with no known key
//     either, while control hosts' chains verify.
//     Otherwise it is only suspected: Apple may use an authority the
//     probe does not know, or this computer's roots may be out of date.
//
// The SNI swap's own chain is the server's default certificate for
// another name: that it differs from the target's proves nothing.
func (j *endpointJudge) judgeCert(r *judged, ts tries) {
	n := len(ts.obs)
	name := j.serverName(r, ts)
	var leaf leafInfo
	keys := map[int]int{}
	for i, o := range ts.obs {
		l, ok := parseLeaf(o.TLS.PeerCertificates)
		if !ok {
			r.v.Verdict = VerdictInconclusive
			r.v.Evidence = fmt.Sprintf("the chain for %s did not verify (%s) and could not be read", name, r.v.Failure)
			return
		}
		if i == 0 {
			leaf = l
		}
		keys[j.certs.keyOf(o)]++
	}
	r.v.Issuer = leaf.issuer
	what := fmt.Sprintf("the chain for %s did not verify in %d of %d tries (%s); it was issued by %s", name, n, n, r.v.Failure, leaf.issuer)
	switch {
	case keys[keyApple] == n:
		r.v.Verdict = VerdictOK
		r.v.Successes = n
		r.v.Evidence = what + "; it is signed by Apple's own key, so the server was reached, and this is not interception"
		return
	case keys[keyApple]+keys[keyKnown] == n && leaf.covers(name):
		r.v.Verdict = VerdictOK
		r.v.Successes = n
		r.v.Evidence = what + "; its key is one other paths or this computer's roots verify (a chain missing its intermediate, or a root this computer lacks), so the server was reached, and this is not interception"
		return
	case keys[keyUnknown] == 0:
		r.v.Verdict = VerdictInconclusive
		r.v.Evidence = what + fmt.Sprintf("; the certificate is from a known authority but not valid for %s: a misconfigured server or a redirect, which the chain alone does not tell from interception", name)
		return
	case keys[keyUnknown] < n:
		r.v.Verdict = VerdictInconclusive
		r.v.Evidence = what + fmt.Sprintf("; a known key signed it in %d of %d tries and no known key in the others", n-keys[keyUnknown], n)
		return
	}
	if a := j.certs.impersonated(leaf); a != nil {
		what += fmt.Sprintf(", which takes the name of the real %s without its key", a.Subject.CommonName)
	}
	intercepted := func(control string) {
		r.candidate = MethodTLSInterception
		r.v.Control = control
		r.v.Evidence = what + "; no key this probe knows signed it; " + control
	}
	if ref, ok := j.certs.verifiedFor(name, r.e); ok {
		ri := "an authority whose key this probe knows"
		if l, ok := parseLeaf(ref.TLS.PeerCertificates); ok {
			ri = l.issuer
		}
		intercepted(fmt.Sprintf("another path (%s) got a chain for %s issued by %s that verifies", hostPort(ref.Address, ref.Port), name, ri))
		return
	}
	// Only at an address inside the target's own networks: a shared
	// front (a CDN) may hold a genuine certificate for the control name,
	// under a root a stale store lacks; Apple's own servers never do.
	if j.net.checks.TLS == checkOK && inNetworks(r.e.target, r.e.addr) {
		if ctl, ok := j.certs.mintedAt(r.e); ok {
			intercepted(fmt.Sprintf("the handshake with %s on the same address got a certificate for that name, which is not Apple's, and no known key signed it either: what answers at this address makes certificates for the names it is asked; control hosts' chains verify", ctl.TLS.ServerName))
			return
		}
	}
	r.v.Verdict = VerdictInconclusive
	if j.net.checks.TLS == checkUnverified {
		r.v.Evidence = what + "; no key this probe knows signed it, and control hosts' chains do not verify either: this computer may lack root certificates, or the network intercepts all TLS, not Apple's alone"
		return
	}
	r.v.Suspected = MethodTLSInterception
	who := "the server may use an authority this computer's roots lack (they may be out of date)"
	if isAppleTarget(r.e.target) {
		who = "Apple may use an authority this probe does not know, or this computer's roots may be out of date"
	}
	r.v.Evidence = what + fmt.Sprintf("; no key this probe knows signed it (this computer's roots, Apple's roots and intermediates, chains verified on other paths), and no other path got a chain for %s that verifies: this may be interception, or %s", name, who)
}
