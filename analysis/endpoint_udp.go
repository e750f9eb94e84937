package analysis

import (
	"fmt"

	"github.com/reachprobe/reachprobe/measurements"
)

// Classes of QUIC and STUN tries, besides classOK and classCert.
const (
	classQUICVersion = "quic.version"
	classUDPSilence  = "udp.silence"
	classUDPRefused  = "udp.refused"  // port unreachable from an address the probe could not read
	classUDPArrived  = "udp.arrived"  // port unreachable from the target itself: the datagram arrived
	classUDPRejected = "udp.rejected" // a firewall's reject: admin prohibited, or unreachable from elsewhere
	classUDPOther    = "udp.other"
)

// failQUICVersion is the failure of a server that speaks no QUIC version
// the probe offers.
const failQUICVersion = "quic_incompatible_version"

// failQUICReset is the failure of a QUIC connection the peer ended with
// a stateless reset.
const failQUICReset = "quic_stateless_reset"

// classQUICReset: a stateless reset, which only a holder of the server's
// reset key can make (its token came from the server, encrypted).
const classQUICReset = "quic.reset"

func quicClass(o *measurements.Observation) string {
	if o.Failure == failQUICVersion {
		return classQUICVersion
	}
	if o.Failure == failQUICReset {
		return classQUICReset
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
	case classQUICReset:
		r.v.Verdict = VerdictFailed
		r.v.Evidence = fmt.Sprintf("the server at %s ended the connection with a QUIC stateless reset in %d of %d tries: the datagrams arrived, and the server had no state for the connection; a server problem, not blocking", hostPort(r.v.Address, r.v.Port), n, n)
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
		if j.quicPolicy(r, what) {
			return
		}
		r.v.Verdict = VerdictInconclusive
		r.v.Control = "no QUIC handshake with a control host got an answer"
		r.v.Evidence = what + "; " + r.v.Control + ": QUIC is blocked or broken on this network, not only to this server"
		if s := traceUnknown(r.e); s != "" {
			r.v.Evidence += "; " + s
		}
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
	r.bare = j.ss.tcpAt(r.e.addr) == nil && j.ss.tcpInNetworks(r.e.target, r.family) == nil
	r.v.Evidence = what + "; " + r.v.Control
	j.placeQUIC(r)
}

func udpClass(o *measurements.Observation) string {
	switch {
	case o.Failure == "" || o.STUN != nil && o.STUN.Responded:
		return classOK
	case o.Failure == failTimeout:
		return classUDPSilence
	case o.Failure == failLocalFirewall:
		return classLocal
	case o.Failure == failAdminProhib:
		return classUDPRejected
	case o.Failure == failRefused:
		switch icmp := icmpOf(o); {
		case icmp == nil:
			return classUDPRefused
		case icmp.FromTarget:
			return classUDPArrived
		}
		return classUDPRejected
	}
	return classUDPOther
}

func icmpOf(o *measurements.Observation) *measurements.ICMPDetails {
	if o.STUN == nil {
		return nil
	}
	return o.STUN.ICMP
}

func (j *endpointJudge) judgeUDP(r *judged) {
	var ts tries
	arrived := 0
	expect := r.e.target.STUNAnswers
	for _, a := range r.e.attempts {
		if a.main == nil {
			continue
		}
		if a.main.STUN != nil {
			expect = a.main.STUN.ExpectAnswer
		}
		c := udpClass(a.main)
		if c == classUDPArrived {
			// The datagram reached the host: the UDP path works, which
			// is what the call service needs of this endpoint.
			arrived++
			c = classOK
		}
		ts.classes = append(ts.classes, c)
		ts.obs = append(ts.obs, a.main)
	}
	n := len(ts.classes)
	where := hostPort(r.v.Address, r.v.Port)
	if ts.count(classOK) < n || n == 0 {
		if j.judgeArrival(r, ts) {
			return
		}
	}
	if j.settleMixed(r, ts) {
		if r.v.Verdict == VerdictOK && arrived > 0 {
			r.v.Evidence = fmt.Sprintf("the datagram reached %s, whose host answered port unreachable itself (ICMP from the target address) in %d of %d tries: the UDP path to it works, nothing listens on this port", where, arrived, n)
			if ok := r.v.Successes - arrived; ok > 0 {
				r.v.Evidence += fmt.Sprintf("; STUN answered in %d", ok)
			}
		}
		return
	}
	switch ts.classes[0] {
	case classLocal:
		j.localPolicy(r)
	case classUDPRejected:
		j.udpRejected(r, ts)
	case classUDPSilence:
		what := fmt.Sprintf("no STUN answer from %s in %d of %d tries", where, n, n)
		if j.judgeTrace(r, what) {
			return
		}
		if j.udpPortScope(r, what) {
			return
		}
		if j.judgeTracePeer(r, what) {
			return
		}
		if !expect {
			r.v.Verdict = VerdictInconclusive
			r.v.Evidence = what + "; this server is not known to answer STUN, so its silence proves nothing"
			if s := arrivalSilence(r.e); s != "" {
				r.v.Evidence += "; " + s + ": Apple's hosts may ignore datagrams they do not expect, and without path evidence silence says nothing of a block"
			}
			if s := traceUnknown(r.e); s != "" {
				r.v.Evidence += "; " + s
			}
			return
		}
		ref := j.udpReference(r, what, MethodUDPTimeout, "got an answer in every try over %s, so UDP may be blocked or lost everywhere")
		if ref == nil {
			return
		}
		r.lossLike = true
		r.candidate = MethodUDPTimeout
		r.bare = j.ss.tcpAt(r.e.addr) == nil && j.ss.tcpInNetworks(r.e.target, r.family) == nil
		r.v.Control = udpControlWords(ref)
		r.v.Evidence = what + ", a server known to answer; " + r.v.Control
	case classUDPRefused:
		// Port unreachable from an address the probe could not read (a
		// run stored before it read ICMP errors, or not on Linux): the
		// host itself, nothing listening, or a firewall's reject.
		r.v.Verdict = VerdictInconclusive
		r.v.Evidence = fmt.Sprintf("%s answered port unreachable (%s) in %d of %d tries, from an address the probe could not read: either the datagram reached the host and nothing listens on the port, or a firewall on the path rejected it; neither is called down or blocked", where, r.v.Failure, n, n)
	default:
		r.v.Verdict = VerdictInconclusive
		r.v.Evidence = fmt.Sprintf("the STUN exchange with %s failed with %s", where, r.v.Failure)
	}
}

// onlyWebUDP closes r as inconclusive when the only UDP seen getting
// through (ref) is QUIC on port 443: a network that lets nothing but web
// ports out, for every destination, looks the same as a block aimed at
// Apple. It returns true when it did.
func onlyWebUDP(r *judged, ref *series, what, method string) bool {
	if ref == nil || ref.step != measurements.StepQUIC || ref.port != 443 {
		return false
	}
	r.v.Verdict, r.v.Suspected = VerdictInconclusive, method
	r.v.Evidence = what + fmt.Sprintf("; the only UDP seen getting through is QUIC on port 443 (%s), and no STUN server on another port answered, so this network may let only web ports out for every destination: a block aimed at Apple cannot be told from that policy", ref.target.Host)
	return true
}

// udpPortScope judges a silent UDP endpoint against a control STUN server
// known to answer on the same port: silent too, while other UDP gets
// through, the port is closed by this network for every destination (its
// policy, whatever Apple's server would do); answering, the port is open
// toward other destinations. It returns true when it decided.
func (j *endpointJudge) udpPortScope(r *judged, what string) bool {
	ctl := j.ss.controlSTUNOn(r.family, r.v.Port)
	if ctl == nil || ctl.successes > 0 {
		return false
	}
	other := j.ss.otherUDP(r.family, r.e.addr)
	if other == nil {
		return false // no UDP gets through at all: said elsewhere
	}
	r.v.Verdict, r.v.Scope = VerdictRestricted, ScopeNetworkPolicy
	r.v.Control = fmt.Sprintf("STUN server %s, not Apple's and known to answer, was silent on the same port %d in %d of %d tries, while UDP to %s (port %d) got through", ctl.target.Host, r.v.Port, ctl.attempts-ctl.successes, ctl.attempts, other.target.Host, other.port)
	r.v.Evidence = what + "; " + r.v.Control + ": this network closes UDP port " + fmt.Sprint(r.v.Port) + " for every destination (its policy, not a block aimed at Apple)"
	return true
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

// udpRejected judges a UDP endpoint whose every try met a firewall's
// explicit reject: an ICMP administratively prohibited, or a port
// unreachable from an address other than the target's. A reject is not
// silence: loss cannot make it. Whose policy it is needs the same
// comparison as any port block: UDP getting through to others while it
// is rejected here.
func (j *endpointJudge) udpRejected(r *judged, ts tries) {
	n := len(ts.classes)
	where := hostPort(r.v.Address, r.v.Port)
	what := fmt.Sprintf("UDP to %s was rejected (%s) in %d of %d tries", where, r.v.Failure, n, n)
	fromTarget := 0
	for _, o := range ts.obs {
		if icmp := icmpOf(o); icmp != nil && icmp.FromTarget {
			fromTarget++
		}
	}
	if fromTarget == n {
		r.v.Verdict = VerdictInconclusive
		r.v.Evidence = what + ", by the target address itself: its own firewall, or a censor answering in its name; not called blocked"
		return
	}
	// A reject for every destination is this network's policy: the
	// same port toward a control STUN server, and UDP that gets through
	// only on web ports, tell it as for silence.
	if j.udpPortScope(r, what) {
		return
	}
	ref := j.udpReference(r, what, MethodUDPRejected, "got through in every try over %s, so it may be this network's policy for all UDP")
	if ref == nil {
		return
	}
	r.candidate = MethodUDPRejected
	r.v.Control = udpControlWords(ref)
	r.v.Evidence = what + ", by a firewall on the path; " + r.v.Control
}

// udpReference returns the other UDP of r's family that got through (a
// control STUN server, a QUIC handshake): what a silent or rejected UDP
// endpoint is judged against. It returns nil when it has closed r: when
// only QUIC on port 443 got through (onlyWebUDP), when every control
// failed, or when no other UDP did (noRef, given the family's name, says
// what that may mean).
func (j *endpointJudge) udpReference(r *judged, what, method, noRef string) *series {
	ref := j.ss.otherUDP(r.family, r.e.addr)
	if onlyWebUDP(r, ref, what, method) {
		return nil
	}
	if ref == nil {
		if j.ss.controlsAllFailed() {
			j.unattributable(r, what)
			return nil
		}
		r.v.Verdict = VerdictInconclusive
		r.v.Evidence = what + "; no other UDP (control STUN server, QUIC) " + fmt.Sprintf(noRef, familyName(r.family))
	}
	return ref
}

// udpControlWords says what the UDP that got through (ref, a control STUN
// server or a QUIC handshake) showed: the control of a silent or rejected
// UDP endpoint.
func udpControlWords(ref *series) string {
	if ref.step == measurements.StepUDP {
		return fmt.Sprintf("STUN control %s answered in %d of %d tries", ref.target.Host, ref.successes, ref.attempts)
	}
	return fmt.Sprintf("QUIC to %s worked in %d of %d tries", ref.target.Host, ref.successes, ref.attempts)
}
