package analysis

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// Confirmation is what a run should measure again, after a delay, before
// anything it saw is called blocked: every endpoint and name whose
// judgement rests on a pattern (a candidate method, or a suspected one),
// and for ports suspected of being filtered, the same port toward control
// hosts. It comes from the analysis's own judgement of what the run has
// recorded so far, so the runner holds no rule of its own.
type Confirmation struct {
	Endpoints  []ConfirmEndpoint `json:"endpoints"`
	Names      []string          `json:"names"`
	PortChecks []PortCheck       `json:"port_checks"`
	// Traces are TTL-limited traces of silent call endpoints and of
	// silent QUIC endpoints of Apple's, which find where their datagrams
	// stop (see TraceRequest).
	Traces []TraceRequest `json:"traces,omitempty"`
	// ResetTraces and TCPTraces are the path probes of TCP endpoints
	// (trace_tcp.go): where a reset on the server name is injected, and
	// where SYNs to a port silent toward Apple stop.
	ResetTraces []ResetTraceRequest `json:"reset_traces,omitempty"`
	TCPTraces   []TCPTraceRequest   `json:"tcp_traces,omitempty"`
}

// TraceRequest asks for the traces of one UDP endpoint of Apple's (a call
// endpoint, or a QUIC one: Transport): its flow against TCP to the same
// address on TCPPort (a payload trace: against a reserved-version QUIC
// Initial to the same address and port), then against UDP on the same
// port toward ControlAddress (a control host's), which needs the
// destination's hop the first trace found.
type TraceRequest struct {
	Target         string `json:"target"`
	Address        string `json:"address"`
	Port           int    `json:"port"`
	TCPPort        int    `json:"tcp_port"`
	ControlTarget  string `json:"control_target,omitempty"`
	ControlAddress string `json:"control_address,omitempty"`
	// Transport is "quic" for a QUIC endpoint, whose UDP probes carry a
	// QUIC v1 Initial (see quicTraceRequests); "" for a UDP endpoint.
	Transport string `json:"transport,omitempty"`
	// Payload, when set, asks for a payload trace (payloadTraceRequests):
	// the UDP probes carry this datagram kind, and the control to the
	// same address is a QUIC Initial of a reserved version, not TCP.
	Payload string `json:"payload,omitempty"`
	// ReferenceTarget, ReferenceAddress and ReferencePort name another
	// server of Apple's that TCP reached (trace_tcp.go, withReferences):
	// when TCP to Address stops too, its hop stands in for Address's.
	ReferenceTarget  string `json:"reference_target,omitempty"`
	ReferenceAddress string `json:"reference_address,omitempty"`
	ReferencePort    int    `json:"reference_port,omitempty"`
}

// maxTraceRequests bounds the endpoints traced per run: one per address
// family. Traces cost time and probes (a trace of a 15-hop path sends
// about 64), and every call endpoint of a family crosses the same
// routers, so a second one would mostly repeat the first.
const maxTraceRequests = 2

// traceTCPPort is the TCP port of the same-address control: 443, which
// Apple's hosts and a web-only firewall alike let through.
const traceTCPPort = 443

// ConfirmEndpoint is one endpoint to measure again, with the pattern that
// makes it suspect, or "reference" for an endpoint measured again because
// a suspect's verdict leans on it: a pattern holds only next to its
// control, in the same pass.
type ConfirmEndpoint struct {
	Target  string `json:"target"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Method  string `json:"method"`
}

// methodReference marks a reference endpoint in a Confirmation.
const methodReference = "reference"

// PortCheck asks for a connect ("tcp") to a control host's address on a
// port an endpoint of Apple's failed on.
type PortCheck struct {
	Target    string `json:"target"`
	Address   string `json:"address"`
	Port      int    `json:"port"`
	Transport string `json:"transport"`
}

// Empty reports whether nothing needs confirming.
func (c Confirmation) Empty() bool {
	return len(c.Endpoints) == 0 && len(c.Names) == 0 && len(c.PortChecks) == 0 && len(c.Traces) == 0 &&
		len(c.ResetTraces) == 0 && len(c.TCPTraces) == 0
}

// portCheckHosts is how many control addresses a suspect port is tried
// toward: two, so that one control host's own filtering does not decide.
const portCheckHosts = 2

// Candidates returns what the run in should measure again to confirm what
// it saw. A run whose every endpoint and name is fine gets an empty
// Confirmation, so a clean run needs no second pass.
func Candidates(in Input) Confirmation {
	a := analyze(in)
	c := Confirmation{Endpoints: []ConfirmEndpoint{}, Names: a.suspectN, PortChecks: []PortCheck{}}
	if c.Names == nil {
		c.Names = []string{}
	}
	traced := traceRequests(a)
	if len(suspectEndpoints(a)) == 0 && len(c.Names) == 0 && len(traced) == 0 {
		return Confirmation{Endpoints: []ConfirmEndpoint{}, Names: []string{}, PortChecks: []PortCheck{}}
	}
	if a.report.Network.Status == NetworkNoConnectivity {
		// Nothing answered at all: there is no pattern to confirm.
		return Confirmation{Endpoints: []ConfirmEndpoint{}, Names: []string{}, PortChecks: []PortCheck{}}
	}
	ports := map[portKey]string{} // suspect TCP ports, by family
	suspect := map[endpointKey]string{}
	addrs := map[netip.Addr]bool{} // addresses of suspects
	appleTCP := map[string]bool{}  // families needing a TCP reference into Apple's networks
	for _, r := range a.judged {
		if r.v.Group == measurements.GroupControl || !r.counted {
			continue
		}
		method := r.candidate
		if method == "" {
			method = r.v.Suspected
		}
		if method == "" && len(traced) > 0 && silentCall(r) && slices.ContainsFunc(traced, func(t TraceRequest) bool {
			a, err := netip.ParseAddr(t.Address)
			return err == nil && family(a) == r.family
		}) {
			// Traced, or on the path a trace of its family finds: its
			// silence is read by that trace, so it must hold next to it.
			method = methodTraced
		}
		if method == "" {
			continue
		}
		suspect[r.e.key] = method
		addrs[r.e.addr] = true
		if r.e.key.kind == transportQUIC || r.e.key.kind == transportUDP {
			appleTCP[r.family] = true
		}
		if method == MethodPortFiltering && (r.e.key.kind == transportTCP || r.e.key.kind == transportTLS) {
			ports[portKey{port: r.v.Port, kind: r.family}] = r.family
		}
	}
	// The suspects, then their references: every other endpoint at a
	// suspect's address (another port, another protocol), the control
	// hosts, and for UDP suspects one TCP endpoint into Apple's networks
	// per family. A burst of loss in the confirmation pass then fails the
	// references too, and the pattern does not hold next to its control.
	for _, k := range a.ix.endpointIDs {
		e := a.ix.endpoints[k]
		if len(e.attempts) == 0 {
			continue
		}
		method, ok := suspect[k]
		fam := family(e.addr)
		switch {
		case ok:
		case addrs[e.addr] || e.target.Group == measurements.GroupControl:
			method = methodReference
		case appleTCP[fam] && (k.kind == transportTCP || k.kind == transportTLS) && len(e.target.Networks) > 0:
			method = methodReference
			delete(appleTCP, fam)
		default:
			continue
		}
		c.Endpoints = append(c.Endpoints, ConfirmEndpoint{Target: k.target, Address: k.address, Port: k.port, Method: method})
	}
	for k, fam := range ports {
		c.PortChecks = append(c.PortChecks, controlPortChecks(a.ix, k.port, fam)...)
	}
	sortPortChecks(c.PortChecks)
	c.Traces = withReferences(a, traced)
	c.ResetTraces, c.TCPTraces = resetTraceRequests(a), tcpTraceRequests(a)
	return c
}

// methodTraced marks, in a Confirmation, a silent endpoint measured again
// because it is traced.
const methodTraced = "traced"

// traceRequests picks the call endpoints to trace: UDP endpoints of
// Apple's whose every try was silent and whose datagrams no kind proved
// arrived, one per address family.
//
// Only a run that made arrival steps asks for traces: one made with
// --no-path-probes (or stored before path probes) has none, and a trace
// would be the unusual traffic the volunteer turned off. Behind a captive
// portal, or with nothing reachable, there is no path to trace.
func traceRequests(a *judgement) []TraceRequest {
	switch a.report.Network.Status {
	case NetworkOK, NetworkUnstable, NetworkPartial:
	default:
		return nil
	}
	var out []TraceRequest
	fams := map[string]bool{}
	for _, r := range a.judged {
		if len(out) == maxTraceRequests {
			break
		}
		e := r.e
		if fams[r.family] || !silentCall(r) || arrivalOf(e).tries == 0 {
			continue
		}
		fams[r.family] = true
		req := TraceRequest{Target: e.key.target, Address: e.key.address, Port: e.key.port, TCPPort: traceTCPPort}
		req.ControlTarget, req.ControlAddress = traceControl(a.ix, r.family, e.key.port)
		out = append(out, req)
	}
	return append(append(out, quicTraceRequests(a)...), payloadTraceRequests(a)...)
}

// silentCall reports whether r is a UDP endpoint of the call group whose
// every try was silent, STUN and every datagram kind alike.
func silentCall(r *judged) bool {
	return r.v.Group == measurements.GroupCall && r.counted && r.e.key.kind == transportUDP &&
		r.v.Verdict != VerdictOK && r.v.Failure == failTimeout && r.v.Successes == 0 &&
		len(arrivalOf(r.e).arrivedKinds(nil)) == 0
}

// traceControl picks a control host's address of family fam for the UDP
// flow on port: a control STUN server's on that port first, then any
// control UDP server's, then any control host's; "" when there is none.
func traceControl(ix *index, fam string, port int) (string, string) {
	for _, pass := range []func(k endpointKey) bool{
		func(k endpointKey) bool { return k.kind == transportUDP && k.port == port },
		func(k endpointKey) bool { return k.kind == transportUDP },
		func(k endpointKey) bool { return true },
	} {
		for _, k := range ix.endpointIDs {
			e := ix.endpoints[k]
			if e.target.Group == measurements.GroupControl && family(e.addr) == fam && len(e.attempts) > 0 && pass(k) {
				return k.target, k.address
			}
		}
	}
	return "", ""
}

// controlPortChecks picks up to portCheckHosts distinct control addresses
// of family fam that were connected to over TCP, to try on port.
func controlPortChecks(ix *index, port int, fam string) []PortCheck {
	var out []PortCheck
	seen := map[netip.Addr]bool{}
	for _, k := range ix.endpointIDs {
		e := ix.endpoints[k]
		if e.target.Group != measurements.GroupControl || (k.kind != transportTCP && k.kind != transportTLS) ||
			family(e.addr) != fam || seen[e.addr] || len(e.attempts) == 0 || k.port == port {
			continue
		}
		seen[e.addr] = true
		out = append(out, PortCheck{Target: e.target.Name, Address: k.address, Port: port, Transport: transportTCP})
		if len(out) == portCheckHosts {
			break
		}
	}
	return out
}

func sortPortChecks(pcs []PortCheck) {
	slices.SortFunc(pcs, func(a, b PortCheck) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), strings.Compare(a.Address, b.Address))
	})
}

// suspectEndpoints returns the endpoints whose judgement rests on a
// pattern: a candidate method, or a suspected one.
func suspectEndpoints(a *judgement) []*judged {
	var out []*judged
	for _, r := range a.judged {
		if r.v.Group != measurements.GroupControl && r.counted && (r.candidate != "" || r.v.Suspected != "") {
			out = append(out, r)
		}
	}
	return out
}
