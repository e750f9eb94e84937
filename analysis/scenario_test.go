package analysis

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// This file synthesises the observations a run of the probe would store on
// a network with a given censor or fault, for a catalog shaped like the
// default one. Hooks play the censor: resolve rewrites what the network's
// resolver answers, step turns a successful step into what the censor
// makes of it. The generator follows the runner's order and conventions
// (connect, control handshake on that connection, target handshake on a
// new one; no TLS step after a failed connect; skipped addresses recorded
// once per port).

// runStart is when every synthetic run starts.
var runStart = time.Date(2025, 11, 3, 10, 0, 0, 0, time.UTC)

const (
	controlName  = "www.example.com"
	dohURL       = "https://doh.example/dns-query"
	ispResolver  = "192.168.1.1:53"
	stepDuration = 40 * time.Millisecond
	stepTimeout  = 10 * time.Second
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

var (
	pushNets  = prefixes("17.0.0.0/8", "2620:149:a44::/48", "2403:300:a42::/48", "2403:300:a51::/48", "2a01:b740:a42::/48")
	appleNets = prefixes("17.0.0.0/8", "2620:149::/32", "2403:300::/32", "2a01:b740::/32")
)

// testCatalog is the default catalog in miniature: two couriers, the
// provider API, two identity hosts, a call relay known to answer STUN,
// Private Relay over QUIC and three control hosts.
func testCatalog() []measurements.Target {
	tls := []string{"tcp", "tls"}
	return []measurements.Target{
		{Name: "courier-1", Group: "push", Host: "1-courier.push.apple.com", Ports: []int{5223, 443}, Transports: tls,
			ServerName: "courier.push.apple.com", ALPN: []string{"apns-security-v3"}, Networks: pushNets},
		{Name: "courier-17", Group: "push", Host: "17-courier.push.apple.com", Ports: []int{5223, 443}, Transports: tls,
			ServerName: "courier.push.apple.com", ALPN: []string{"apns-security-v3"}, Networks: pushNets},
		{Name: "api-push", Group: "push", Host: "api.push.apple.com", Ports: []int{443, 2197}, Transports: tls,
			ServerName: "api.push.apple.com", ALPN: []string{"h2"}, Networks: pushNets, Provider: true},
		{Name: "identity-ess", Group: "identity", Host: "identity.ess.apple.com", Ports: []int{443}, Transports: tls,
			ServerName: "identity.ess.apple.com", ALPN: []string{"h2", "http/1.1"}, Networks: appleNets},
		{Name: "gsa", Group: "identity", Host: "gsa.apple.com", Ports: []int{443}, Transports: tls,
			ServerName: "gsa.apple.com", ALPN: []string{"h2", "http/1.1"}, Networks: appleNets},
		{Name: "facetime-relay", Group: "call", Host: "commnat-main.ess.apple.com", Ports: []int{3478, 16384}, Transports: []string{"udp"},
			ServerName: "commnat-main.ess.apple.com", Networks: appleNets, STUNAnswers: true},
		{Name: "mask", Group: "quic", Host: "mask.icloud.com", Ports: []int{443}, Transports: []string{"quic"},
			ServerName: "mask.icloud.com", ALPN: []string{"h3"}, Networks: appleNets},
		{Name: "control-tls", Group: "control", Host: "www.cloudflare.com", Ports: []int{443}, Transports: tls,
			ServerName: "www.cloudflare.com", ALPN: []string{"h2", "http/1.1"}},
		{Name: "control-quic", Group: "control", Host: "www.google.com", Ports: []int{443}, Transports: []string{"quic"},
			ServerName: "www.google.com", ALPN: []string{"h3"}},
		{Name: "control-stun", Group: "control", Host: "stun.cloudflare.com", Ports: []int{3478}, Transports: []string{"udp"},
			ServerName: "stun.cloudflare.com", STUNAnswers: true},
	}
}

// realAddrs are the hosts' real addresses; IPv6 ones are used only when a
// scenario enables IPv6.
var realAddrs = map[string][]string{
	"1-courier.push.apple.com":   {"17.57.146.20", "17.57.146.21", "2620:149:a44::20"},
	"17-courier.push.apple.com":  {"17.57.146.52", "17.57.146.53", "2620:149:a44::52"},
	"api.push.apple.com":         {"17.188.128.10", "17.188.128.11", "2620:149:a44::100"},
	"identity.ess.apple.com":     {"17.32.194.5", "17.32.194.6", "2403:300:a42::5"},
	"gsa.apple.com":              {"17.32.195.40", "17.32.195.41", "2403:300:a42::40"},
	"commnat-main.ess.apple.com": {"17.173.254.10", "17.173.254.11", "2403:300:a51::10"},
	"mask.icloud.com":            {"17.248.180.10", "2403:300:a51::180"},
	"mask-h2.icloud.com":         {"17.248.180.11", "2403:300:a51::181"},
	"www.cloudflare.com":         {"104.16.123.96", "2606:4700::6810:7b60"},
	"www.google.com":             {"142.250.74.36", "2a00:1450:4001:82b::2004"},
	"stun.cloudflare.com":        {"162.159.207.0", "2606:4700:49::"},
}

// catalogWithFallback is testCatalog with Private Relay's TCP fallback
// (mask-h2) in the QUIC group, as the default catalog has it.
func catalogWithFallback() []measurements.Target {
	var out []measurements.Target
	for _, t := range testCatalog() {
		out = append(out, t)
		if t.Name == "mask" {
			out = append(out, measurements.Target{Name: "mask-h2", Group: "quic", Host: "mask-h2.icloud.com", Ports: []int{443},
				Transports: []string{"tcp", "tls"}, ServerName: "mask-h2.icloud.com", ALPN: []string{"h2"}, Networks: appleNets})
		}
	}
	return out
}

// world is one synthetic network.
type world struct {
	repeats   int
	targets   []measurements.Target
	ipv6      bool // hosts have AAAA records
	ipv6Route bool // the probe's host can reach them
	// resolve rewrites a lookup; nil leaves it as the real answer.
	resolve func(l *lookup)
	// step rewrites a step's observation, prefilled as a success (or as a
	// timeout at an address no real server has); nil leaves it.
	step func(s *stepCtx)
	// noConfirm leaves out the confirmation pass, as runs stored before
	// it existed (and runs with --confirm-delay 0) have none.
	noConfirm bool
	// portCheck rewrites a connect to a control host on a suspect port,
	// prefilled as refused (the host listens on no such port); nil leaves
	// it.
	portCheck func(s *stepCtx)
	rng       *mrand.Rand
	// arrival, when set, makes the generator record an arrival step after
	// the STUN step of every call endpoint and of a control STUN server
	// on a call port, as the runner does, and rewrites each kind's
	// evidence: prefilled as silence, a control known to answer STUN
	// answering the STUN kind.
	arrival func(s *stepCtx, k *measurements.ArrivalKind)
	// path, when set, synthesises the traces the confirmation pass makes
	// for the trace requests of Candidates; nil records none (a system
	// that cannot read ICMP errors).
	path *pathWorld
	// confirming is set while the confirmation pass is synthesised.
	confirming bool

	obs  []measurements.Observation
	tick time.Duration
}

// lookup is one DNS query being synthesised.
type lookup struct {
	t      *measurements.Target
	engine string
	qtype  string
	repeat int
	o      *measurements.Observation
}

func (l *lookup) rcode(rcode, failure string) {
	l.o.DNS.Rcode, l.o.DNS.Answers = rcode, nil
	l.o.Failure, l.o.Operation = failure, "resolve"
	if l.engine == measurements.EngineSystem {
		l.o.DNS.Rcode = "" // the system resolver hides the rcode
	}
}

func (l *lookup) timeout() {
	l.o.DNS.Rcode, l.o.DNS.Answers = "", nil
	l.o.Failure, l.o.Operation, l.o.Duration = failTimeout, "resolve", stepTimeout
}

// answer replaces the answers with addrs of the query's type.
func (l *lookup) answer(addrs ...string) {
	l.o.DNS.Rcode, l.o.Failure, l.o.Operation = "NOERROR", "", ""
	l.o.DNS.Answers = answersFor(l.t.Host, l.qtype, addrs)
	if len(l.o.DNS.Answers) == 0 {
		l.o.Failure, l.o.Operation = failDNSNoAnswer, "resolve"
	}
}

// late adds a second response that arrived after the first.
func (l *lookup) late(addrs ...string) {
	l.o.DNS.Late = append(l.o.DNS.Late, measurements.DNSResponse{Rcode: "NOERROR", Answers: answersFor(l.t.Host, l.qtype, addrs), Delay: 38 * time.Millisecond})
}

func answersFor(host, qtype string, addrs []string) []measurements.DNSAnswer {
	var out []measurements.DNSAnswer
	for _, s := range addrs {
		a := netip.MustParseAddr(s)
		if (qtype == "A") != a.Is4() {
			continue
		}
		out = append(out, measurements.DNSAnswer{Name: host + ".", Type: qtype, Data: s, TTL: 300})
	}
	return out
}

// stepCtx is one connection step being synthesised.
type stepCtx struct {
	t      *measurements.Target
	repeat int
	// confirm: the step belongs to the confirmation pass.
	confirm bool
	addr    netip.Addr
	real    bool // a real server of some host has this address
	o       *measurements.Observation
}

// fail records a failure, dropping what only a success records.
func (s *stepCtx) fail(failure, op string) {
	s.o.Failure, s.o.Operation = failure, op
	if failure == failTimeout {
		s.o.Duration = stepTimeout
	}
	if s.o.TLS != nil {
		d := s.o.TLS
		d.PeerCertificates, d.Verified, d.VerifyFailure = nil, false, ""
		d.NegotiatedProtocol, d.TLSVersion, d.CipherSuite = "", "", ""
	}
	if s.o.STUN != nil {
		s.o.STUN.Responded, s.o.STUN.Class, s.o.STUN.MappedAddressSeen, s.o.STUN.ResponseBytes = false, "", false, 0
		s.o.STUN.Attempts = 4
	}
}

// chain replaces a completed handshake's chain by one that does not verify.
func (s *stepCtx) chain(der []byte, failure, why string) {
	s.o.Failure, s.o.Operation = failure, "tls_handshake"
	if s.o.Step == measurements.StepQUIC {
		s.o.Operation = "quic_handshake"
	}
	s.o.TLS.PeerCertificates = [][]byte{der}
	s.o.TLS.Verified, s.o.TLS.VerifyFailure = false, why
}

func (s *stepCtx) isApple() bool {
	return netip.MustParsePrefix("17.0.0.0/8").Contains(s.addr) || inNetworks(s.t, s.addr)
}

func (w *world) record(o measurements.Observation) *measurements.Observation {
	o.ID = int64(len(w.obs) + 1)
	o.RunID = 1
	o.Confirmation = w.confirming
	o.Started = runStart.Add(w.tick)
	w.tick += 5 * time.Millisecond
	if o.Duration == 0 {
		o.Duration = stepDuration
	}
	w.obs = append(w.obs, o)
	return &w.obs[len(w.obs)-1]
}

// build runs the synthetic probe and returns what Analyze gets.
func (w *world) build() Input {
	if w.repeats == 0 {
		w.repeats = 1
	}
	if w.targets == nil {
		w.targets = testCatalog()
	}
	for i := range w.targets {
		if w.targets[i].ControlServerName == "" {
			w.targets[i].ControlServerName = controlName
		}
		w.targets[i].Line = 1 + 10*i
	}
	for r := 0; r < w.repeats; r++ {
		for i := range w.targets {
			w.measure(&w.targets[i], r)
		}
	}
	if !w.noConfirm {
		w.confirm()
	}
	return w.input()
}

func (w *world) input() Input {
	run := measurements.Run{ID: 1, Started: runStart, Ended: runStart.Add(w.tick + time.Second), Status: measurements.RunComplete,
		SoftwareVersion: "test", CatalogDigest: "0000", CatalogName: "test", Observations: len(w.obs)}
	return Input{Run: run, Targets: w.targets, Observations: slices.Clone(w.obs)}
}

// confirm synthesises the confirmation pass the runner makes: what
// Candidates asks for, measured again after the delay.
func (w *world) confirm() {
	c := Candidates(w.input())
	if c.Empty() {
		return
	}
	w.confirming = true
	defer func() { w.confirming = false }()
	w.tick += 30 * time.Second
	target := func(name string) *measurements.Target {
		for i := range w.targets {
			if w.targets[i].Name == name {
				return &w.targets[i]
			}
		}
		panic("no target " + name)
	}
	for _, name := range c.Names {
		t := target(name)
		for _, qtype := range []string{"A", "AAAA"} {
			for _, engine := range []string{measurements.EngineSystem, measurements.EngineUDP, measurements.EngineDoH} {
				w.record(*w.lookup(t, engine, qtype, w.repeats).o)
			}
		}
	}
	for _, e := range c.Endpoints {
		w.endpoint(target(e.Target), w.repeats, netip.MustParseAddr(e.Address), e.Port)
	}
	for _, tr := range c.Traces {
		if w.path == nil {
			break
		}
		t := target(tr.Target)
		// What the runner's probes carry: QUIC v1 Initials for a QUIC
		// endpoint; for a payload trace the silent kind, against a
		// reserved-version Initial to the same address and port.
		sameNet, samePort, test, samePayload, otherPayload := "tcp", tr.TCPPort, "", "", ""
		switch {
		case tr.Transport == "quic":
			test, otherPayload = measurements.ArrivalQUICv1, measurements.ArrivalQUICv1
		case tr.Payload != "":
			test, samePayload, otherPayload = tr.Payload, measurements.ArrivalQUICReserved, tr.Payload
			sameNet, samePort = "udp", tr.Port
		}
		same := w.path.trace(tr.Address, tr.Port, sameNet, tr.Address, samePort, t.Name, 0, test, samePayload)
		w.recordTrace(t, same)
		if tr.ControlAddress == "" {
			continue
		}
		dest := same.Stop.DestinationHop
		if dest == 0 && tr.ReferenceAddress != "" {
			// As the runner: the hop where another server of Apple's
			// answers stands in for the address's.
			ref := w.path.trace(tr.Address, tr.Port, "tcp", tr.ReferenceAddress, tr.ReferencePort, tr.ReferenceTarget, 0, test, "")
			w.recordTrace(t, ref)
			for _, h := range ref.Hops {
				if h.Role == "control" && h.Reply == measurements.TraceReplyDestination {
					dest = h.TTL
					break
				}
			}
		}
		w.recordTrace(t, w.path.trace(tr.Address, tr.Port, "udp", tr.ControlAddress, tr.Port, tr.ControlTarget, dest, test, otherPayload))
	}
	for _, rt := range c.ResetTraces {
		if w.path == nil {
			break
		}
		t := target(rt.Target)
		w.recordTrace(t, w.path.resetTrace(rt.Address, rt.Port, t.Name))
	}
	for _, tr := range c.TCPTraces {
		if w.path == nil {
			break
		}
		t := target(tr.Target)
		same := w.path.traceNet("tcp", tr.Address, tr.Port, "tcp", tr.Address, tr.OpenPort, t.Name, 0, "", "")
		w.recordTrace(t, same)
		if tr.ControlAddress != "" {
			w.recordTrace(t, w.path.traceNet("tcp", tr.Address, tr.Port, "tcp", tr.ControlAddress, tr.Port, tr.ControlTarget, same.Stop.DestinationHop, "", ""))
		}
	}
	for _, pc := range c.PortChecks {
		t := target(pc.Target)
		o := measurements.Observation{Step: measurements.StepTCP, Group: t.Group, Target: t.Name, Host: t.Host, Address: pc.Address,
			Port: pc.Port, Transport: "tcp", Repeat: w.repeats, Control: true, PortCheck: true, TCP: &measurements.TCPDetails{Family: "ipv4"}}
		s := &stepCtx{t: t, repeat: w.repeats, confirm: true, addr: netip.MustParseAddr(pc.Address), real: true, o: &o}
		s.fail(failRefused, "connect")
		if w.portCheck != nil {
			w.portCheck(s)
		}
		w.record(o)
	}
}

func (w *world) measure(t *measurements.Target, repeat int) {
	var addrs []netip.Addr
	for _, qtype := range []string{"A", "AAAA"} {
		for _, engine := range []string{measurements.EngineSystem, measurements.EngineUDP, measurements.EngineDoH} {
			l := w.lookup(t, engine, qtype, repeat)
			o := w.record(*l.o)
			if o.Failure == "" || len(o.DNS.Answers) > 0 {
				addrs = append(addrs, answerAddrs(o.DNS.Answers)...)
			}
			// The runner measures late responses' addresses too.
			for _, late := range o.DNS.Late {
				addrs = append(addrs, answerAddrs(late.Answers)...)
			}
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, addr := range slices.Compact(addrs) {
		skip := ""
		switch {
		case isBogonFor(t, addr):
			skip = measurements.SkipBogon
		case addr.Is6() && !w.ipv6Route:
			skip = measurements.SkipNoIPv6Route
		}
		for _, port := range t.Ports {
			if skip != "" {
				step, transport := measurements.StepTCP, "tcp"
				if !t.Has("tcp") && !t.Has("tls") {
					step, transport = measurements.Step(map[bool]string{true: "quic", false: "udp"}[t.Has("quic")]), "udp"
				}
				w.record(measurements.Observation{Step: step, Group: t.Group, Target: t.Name, Host: t.Host, Address: addr.String(),
					Port: port, Transport: transport, Repeat: repeat, Skipped: skip, Duration: time.Nanosecond})
				continue
			}
			w.endpoint(t, repeat, addr, port)
		}
	}
}

func (w *world) lookup(t *measurements.Target, engine, qtype string, repeat int) *lookup {
	o := &measurements.Observation{Step: measurements.StepDNS, Group: t.Group, Target: t.Name, Host: t.Host, Repeat: repeat,
		Transport: "udp", DNS: &measurements.DNSDetails{Engine: engine, QueryType: qtype}}
	switch engine {
	case measurements.EngineDoH:
		o.Control, o.Transport, o.DNS.Resolver = true, "tcp", dohURL
	case measurements.EngineUDP:
		o.DNS.Resolver, o.DNS.TransactionID = ispResolver, uint16(0x1000+len(w.obs))
	}
	l := &lookup{t: t, engine: engine, qtype: qtype, repeat: repeat, o: o}
	var real []string
	if qtype == "A" || w.ipv6 {
		real = realAddrs[t.Host]
	}
	l.answer(real...)
	if w.resolve != nil {
		w.resolve(l)
	}
	return l
}

func (w *world) endpoint(t *measurements.Target, repeat int, addr netip.Addr, port int) {
	real := isRealAddr(addr)
	fam := "ipv4"
	if addr.Is6() {
		fam = "ipv6"
	}
	base := measurements.Observation{Group: t.Group, Target: t.Name, Host: t.Host, Address: addr.String(), Port: port, Repeat: repeat}
	run := func(o measurements.Observation) *measurements.Observation {
		s := &stepCtx{t: t, repeat: repeat, confirm: w.confirming, addr: addr, real: real, o: &o}
		if !real {
			op := map[measurements.Step]string{measurements.StepTCP: "connect", measurements.StepTLS: "tls_handshake",
				measurements.StepQUIC: "quic_handshake", measurements.StepUDP: "read"}[o.Step]
			s.fail(failTimeout, op)
		}
		if w.step != nil {
			w.step(s)
		}
		return w.record(o)
	}
	if t.Has("tcp") || t.Has("tls") {
		c := base
		c.Step, c.Transport, c.TCP = measurements.StepTCP, "tcp", &measurements.TCPDetails{Family: fam}
		if conn := run(c); conn.Failure == "" && t.Has("tls") {
			ctl := base
			ctl.Step, ctl.Transport, ctl.Control = measurements.StepTLS, "tcp", true
			ctl.TLS = tlsDetails(t, "tcp", controlName, true)
			ctl.Failure, ctl.Operation = failSSLHostname, "tls_handshake"
			run(ctl)
			tgt := base
			tgt.Step, tgt.Transport = measurements.StepTLS, "tcp"
			tgt.TLS = tlsDetails(t, "tcp", t.ServerName, false)
			run(tgt)
		}
	}
	if t.Has("quic") {
		q := base
		q.Step, q.Transport, q.TLS = measurements.StepQUIC, "udp", tlsDetails(t, "udp", t.ServerName, false)
		run(q)
	}
	if t.Has("udp") {
		u := base
		u.Step, u.Transport = measurements.StepUDP, "udp"
		u.STUN = &measurements.STUNDetails{TransactionID: []byte("0123456789ab"), ExpectAnswer: t.STUNAnswers, Attempts: 1}
		if t.STUNAnswers {
			u.STUN.Responded, u.STUN.Class, u.STUN.MappedAddressSeen, u.STUN.ResponseBytes = true, "success", true, 32
		} else {
			// A server not known to answer STUN stays silent.
			u.Failure, u.Operation, u.Duration, u.STUN.Attempts = failTimeout, "read", stepTimeout, 4
		}
		run(u)
		if w.arrival != nil && w.wantsArrival(t, port) {
			a := base
			a.Step, a.Transport, a.Duration = measurements.StepArrival, "udp", 3500*time.Millisecond
			a.Arrival = &measurements.ArrivalDetails{}
			s := &stepCtx{t: t, repeat: repeat, confirm: w.confirming, addr: addr, real: real, o: &a}
			for _, kind := range []string{measurements.ArrivalSTUN, measurements.ArrivalQUICReserved, measurements.ArrivalQUICv1, measurements.ArrivalRandom} {
				k := measurements.ArrivalKind{Kind: kind, Sent: 3, Size: 1200, Evidence: measurements.ArrivalSilence}
				if real && t.STUNAnswers && kind == measurements.ArrivalSTUN {
					k.Sent, k.Evidence, k.Answers, k.AnswerBytes, k.STUNClass = 1, measurements.ArrivalAnswer, 1, 32, "success"
				}
				if real {
					w.arrival(s, &k)
				}
				a.Arrival.Kinds = append(a.Arrival.Kinds, k)
			}
			w.record(a)
		}
	}
}

// wantsArrival mirrors the runner: call endpoints, and control STUN
// servers on a port of a call target.
func (w *world) wantsArrival(t *measurements.Target, port int) bool {
	switch t.Group {
	case measurements.GroupCall:
		return true
	case measurements.GroupControl:
		for _, c := range w.targets {
			if c.Group == measurements.GroupCall && slices.Contains(c.Ports, port) {
				return true
			}
		}
	}
	return false
}

// Arrival hooks: what Apple's host does with each kind of datagram.

// kindPortUnreachable makes k draw an ICMP port unreachable from the target.
func kindPortUnreachable(k *measurements.ArrivalKind) {
	k.Sent, k.Evidence = 1, measurements.ArrivalPortUnreachable
	k.ICMP = &measurements.ICMPDetails{Type: 3, Code: 3, FromTarget: true}
}

// kindAnswered makes k draw an answer; a reserved QUIC version's is a valid
// Version Negotiation.
func kindAnswered(k *measurements.ArrivalKind) {
	k.Sent, k.Evidence, k.Answers, k.AnswerBytes = 1, measurements.ArrivalAnswer, 1, 1200
	if k.Kind == measurements.ArrivalQUICReserved {
		k.VersionNegotiation, k.AnswerBytes = "valid", 43
	}
}

// tlsDetails is a completed handshake with the server's real chain. The
// control name gets the server's own certificate, which does not match it.
func tlsDetails(t *measurements.Target, network, name string, control bool) *measurements.TLSDetails {
	d := &measurements.TLSDetails{Network: network, ServerName: name, ALPN: t.ALPN, ClientHello: "iOS_14",
		TLSVersion: "TLSv1.3", CipherSuite: "TLS_AES_128_GCM_SHA256", PeerCertificates: [][]byte{serverCert(t)}}
	if control {
		d.VerifyFailure = fmt.Sprintf("x509: certificate is valid for %s, not %s", t.ServerName, name)
		return d
	}
	d.Verified = true
	if len(t.ALPN) > 0 {
		d.NegotiatedProtocol = t.ALPN[0]
	}
	return d
}

func isRealAddr(a netip.Addr) bool {
	for _, as := range realAddrs {
		if slices.Contains(as, a.String()) {
			return true
		}
	}
	return false
}

// Certificates: deterministic Ed25519 keys, so the golden files are
// stable.
var certEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

type testCA struct {
	cert *x509.Certificate
	key  ed25519.PrivateKey
}

var (
	caOnce                         sync.Once
	appleCA, publicCA, interceptCA *testCA
	leafCache                      sync.Map // "ca serial|ca name|name" -> []byte
)

func cas() {
	caOnce.Do(func() {
		appleCA = newTestCA(1, "Apple Public Server ECC CA 1 - G1", "Apple Inc.")
		publicCA = newTestCA(2, "Example Public CA R1", "Example Trust Services")
		interceptCA = newTestCA(3, "Network Security Certificate", "National Network Authority")
	})
}

func newTestCA(seed byte, cn, org string) *testCA {
	sum := sha256.Sum256([]byte{seed})
	key := ed25519.NewKeyFromSeed(sum[:])
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(seed)), Subject: pkix.Name{CommonName: cn, Organization: []string{org}},
		NotBefore: certEpoch, NotAfter: certEpoch.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return &testCA{cert: c, key: key}
}

// leaf returns a certificate for name issued by ca.
func (ca *testCA) leaf(name string) []byte {
	k := ca.cert.SerialNumber.String() + "|" + ca.cert.Subject.CommonName + "|" + name
	if v, ok := leafCache.Load(k); ok {
		return v.([]byte)
	}
	sum := sha256.Sum256([]byte(k))
	key := ed25519.NewKeyFromSeed(sum[:])
	tmpl := &x509.Certificate{SerialNumber: new(big.Int).SetBytes(sum[:8]), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: certEpoch, NotAfter: certEpoch.AddDate(1, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		panic(err)
	}
	leafCache.Store(k, der)
	return der
}

// serverCert is the certificate t's real servers present.
func serverCert(t *measurements.Target) []byte {
	cas()
	if t.Group == measurements.GroupControl {
		return publicCA.leaf(t.ServerName)
	}
	return appleCA.leaf(t.ServerName)
}

// pathWorld is the path from the probe to every host: the same routers
// for all, then the destination one hop past the last. It plays the
// routers and the censor of a trace.
type pathWorld struct {
	// routers are hops 1 to len(routers); the destination is the next.
	routers []measurements.TraceHop
	// appleUDPStop: UDP to Apple's addresses goes no further than this
	// hop (0: not dropped).
	appleUDPStop int
	// appleTCPStop: TCP to Apple's addresses goes no further (0: not).
	appleTCPStop int
	// portUDPStop: UDP on call ports (not 443) goes no further than this
	// hop, whatever the destination (0: not dropped).
	portUDPStop int
	// appleQUICStop: UDP to Apple's addresses on port 443 (QUIC) goes no
	// further than this hop (0: not dropped).
	appleQUICStop int
	// quicStop: UDP on port 443 goes no further than this hop, whatever
	// the destination (0: not dropped).
	quicStop int
	// applePayloadStop: UDP carrying STUN or a QUIC v1 Initial to Apple's
	// addresses on a call port (not 443) goes no further than this hop;
	// payloadStop the same whatever the destination (0: not dropped).
	applePayloadStop, payloadStop int
	// noICMP: routers send no time exceeded.
	noICMP bool
	// otherRouters, when set, are the routers toward addresses that are
	// not Apple's: a path that parts from Apple's (same length).
	otherRouters []measurements.TraceHop
	// tcpPort and tcpPortStop: SYNs to tcpPort go no further than
	// tcpPortStop (0: not dropped), toward Apple's addresses only when
	// tcpPortAppleOnly, toward every destination otherwise.
	tcpPort, tcpPortStop int
	tcpPortAppleOnly     bool
	// resetHop is the router past which resets on a server name are
	// injected (its FORWARD path); 0 means the reset comes from the
	// server itself, the destination's hop.
	resetHop int
	// blockedPrefix: every flow to it goes no further than blockedStop
	// (an address blocked outright). deadPrefix: flows to it pass every
	// router and are never answered (a host that is down).
	blockedPrefix, deadPrefix string
	blockedStop               int
}

// isp is a path of four routers: the home router, two of the volunteer's
// ISP (AS64500), a transit router (AS64510).
func isp() *pathWorld {
	return &pathWorld{routers: []measurements.TraceHop{
		{Addr: "192.168.77.1", Private: true},
		{Addr: "198.51.100.1", ASN: 64500, ASName: "Example ISP"},
		{Addr: "198.51.100.9", ASN: 64500, ASName: "Example ISP"},
		{Addr: "203.0.113.7", ASN: 64510, ASName: "Example Transit"},
	}}
}

// reach returns the last router a flow passes and whether it reaches its
// destination.
func (p *pathWorld) reach(network, dst string, port int, payload string) (int, bool) {
	apple := netip.MustParsePrefix("17.0.0.0/8").Contains(netip.MustParseAddr(dst))
	last, arrives := len(p.routers), true
	stop := func(h int) {
		if h > 0 && h <= last {
			last, arrives = h, false
		}
	}
	if p.blockedPrefix != "" && netip.MustParsePrefix(p.blockedPrefix).Contains(netip.MustParseAddr(dst)) {
		stop(p.blockedStop)
	}
	if p.deadPrefix != "" && netip.MustParsePrefix(p.deadPrefix).Contains(netip.MustParseAddr(dst)) {
		arrives = false
	}
	if network == "udp" {
		if apple {
			stop(p.appleUDPStop)
		}
		if port != 443 {
			stop(p.portUDPStop)
			if payload == measurements.ArrivalSTUN || payload == measurements.ArrivalQUICv1 {
				stop(p.payloadStop)
				if apple {
					stop(p.applePayloadStop)
				}
			}
		} else {
			stop(p.quicStop)
			if apple {
				stop(p.appleQUICStop)
			}
		}
	} else {
		if apple {
			stop(p.appleTCPStop)
		}
		if port == p.tcpPort && (apple || !p.tcpPortAppleOnly) {
			stop(p.tcpPortStop)
		}
	}
	return last, arrives
}

// trace synthesises one trace as pathprobe records it: two rounds per
// TTL, test and control side by side, and the stop Decide would read.
func (p *pathWorld) trace(testAddr string, port int, ctlNet, ctlAddr string, ctlPort int, ctlTarget string, destHop int, testPayload, ctlPayload string) *measurements.TraceDetails {
	return p.traceNet("udp", testAddr, port, ctlNet, ctlAddr, ctlPort, ctlTarget, destHop, testPayload, ctlPayload)
}

// traceNet is trace with a test flow over testNet ("udp", or "tcp": SYNs).
func (p *pathWorld) traceNet(testNet, testAddr string, port int, ctlNet, ctlAddr string, ctlPort int, ctlTarget string, destHop int, testPayload, ctlPayload string) *measurements.TraceDetails {
	d := &measurements.TraceDetails{
		Test:    measurements.TraceFlow{Network: testNet, Address: testAddr, Port: port, Payload: testPayload},
		Control: measurements.TraceFlow{Network: ctlNet, Address: ctlAddr, Port: ctlPort, Payload: ctlPayload}, ControlTarget: ctlTarget,
	}
	tLast, _ := p.reach(testNet, testAddr, port, testPayload)
	cLast, cArrives := p.reach(ctlNet, ctlAddr, ctlPort, ctlPayload)
	// The destination answers a TCP SYN, and Apple's call host a QUIC
	// Initial of a reserved version (a Version Negotiation).
	ctlAnswers := ctlNet == "tcp" || ctlPayload == measurements.ArrivalQUICReserved
	dest := len(p.routers) + 1
	reply := func(ttl, last int, arrives, answers bool, routers []measurements.TraceHop) measurements.TraceHop {
		h := measurements.TraceHop{TTL: ttl, Reply: measurements.TraceReplyNone}
		switch {
		case ttl <= last && ttl <= len(routers) && !p.noICMP:
			r := routers[ttl-1]
			h.Reply, h.Addr, h.ASN, h.ASName, h.Private = measurements.TraceReplyTimeExceeded, r.Addr, r.ASN, r.ASName, r.Private
		case ttl == dest && arrives && answers:
			h.Reply, h.Addr = measurements.TraceReplyDestination, "" // the destination: its address is the flow's
		}
		return h
	}
	for ttl := 1; ttl <= dest; ttl++ {
		for range 2 {
			t := reply(ttl, tLast, false, false, p.routers)
			t.Role = "test"
			ctlRouters := p.routers
			if p.otherRouters != nil && !netip.MustParsePrefix("17.0.0.0/8").Contains(netip.MustParseAddr(ctlAddr)) {
				ctlRouters = p.otherRouters
			}
			c := reply(ttl, cLast, cArrives, ctlAnswers, ctlRouters)
			c.Role = "control"
			d.Hops = append(d.Hops, t, c)
			d.Probes += 2
		}
	}
	sameAddr := ctlAddr == testAddr
	if sameAddr && cArrives && ctlAnswers {
		destHop = dest
	}
	d.Stop.DestinationHop = destHop
	seenTest, seenCtl := tLast, cLast
	if p.noICMP {
		seenTest, seenCtl = 0, 0
	}
	switch {
	case p.noICMP:
		d.Stop.Reason = "no router answered either flow: routers that send no ICMP leave the place unknown"
	case destHop == 0:
		d.Stop.Reason = "the destination's hop is unknown"
	case seenCtl-seenTest < 1 || seenTest+1 >= destHop:
		d.Stop.Reason = "the control flow drew nothing past the test flow's last hop before the destination"
	default:
		r := p.routers[seenTest-1]
		d.Stop = measurements.TraceStop{Known: true, Hop: seenTest, Addr: r.Addr, ASN: r.ASN, ASName: r.ASName, Private: r.Private,
			DestinationHop: destHop, Reason: "the control flow passed the hop where the test flow stopped"}
	}
	return d
}

func (w *world) recordTrace(t *measurements.Target, d *measurements.TraceDetails) {
	w.record(measurements.Observation{Step: measurements.StepTrace, Group: t.Group, Target: t.Name, Host: t.Host,
		Address: d.Test.Address, Port: d.Test.Port, Transport: d.Test.Network, Repeat: w.repeats, Duration: 8 * time.Second, Trace: d})
}

// resetTrace synthesises a reset trace as the runner records it: the
// hops named by a trace to the same address (UDP against SYNs to the
// port), then ClientHellos at increasing TTLs, the control's first, up to
// the first reset of the target name's.
func (p *pathWorld) resetTrace(addr string, port int, target string) *measurements.TraceDetails {
	named := p.trace(addr, port, "tcp", addr, port, target, 0, "", "")
	dest := len(p.routers) + 1
	d := &measurements.TraceDetails{Kind: measurements.TraceKindReset,
		Test:    measurements.TraceFlow{Network: "tcp", Address: addr, Port: port},
		Control: measurements.TraceFlow{Network: "tcp", Address: addr, Port: port}, ControlTarget: target,
		Hops: named.Hops, Probes: named.Probes}
	resetTTL := dest
	if p.resetHop > 0 {
		resetTTL = p.resetHop + 1
	}
	for ttl := 1; ttl <= resetTTL; ttl++ {
		ctl, test := measurements.TraceTrySilence, measurements.TraceTrySilence
		if ttl >= dest {
			ctl = measurements.TraceTryData
		}
		if ttl == resetTTL {
			test = measurements.TraceTryReset
		}
		d.Tries = append(d.Tries, measurements.TraceTry{TTL: ttl, Role: "control", Outcome: ctl}, measurements.TraceTry{TTL: ttl, Role: "test", Outcome: test})
		d.Probes += 2
	}
	d.ResetTTL = resetTTL
	hop := resetTTL - 1
	d.Stop = measurements.TraceStop{Known: true, Hop: hop, DestinationHop: named.Stop.DestinationHop,
		Reason: "the ClientHello draws a reset from a TTL where the control's does not"}
	if hop > 0 && !p.noICMP {
		r := p.routers[hop-1]
		d.Stop.Addr, d.Stop.ASN, d.Stop.ASName, d.Stop.Private = r.Addr, r.ASN, r.ASName, r.Private
	}
	return d
}
