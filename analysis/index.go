package analysis

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// Failure and operation strings of OONI's vocabulary that analysis reads.
// They are copies of the probes' classifier constants: analysis must not
// import probes, and these strings are a stored format that cannot change.
const (
	failTimeout        = "generic_timeout_error"
	failRefused        = "connection_refused"
	failReset          = "connection_reset"
	failEOF            = "eof_error"
	failDNSNXDomain    = "dns_nxdomain_error"
	failDNSRefused     = "dns_refused_error"
	failDNSServfail    = "dns_servfail_error"
	failDNSNoAnswer    = "dns_no_answer"
	failSSLHostname    = "ssl_invalid_hostname"
	failSSLAuthority   = "ssl_unknown_authority"
	failSSLInvalidCert = "ssl_invalid_certificate"
	failSSLHandshake   = "ssl_failed_handshake"
	failInterrupted    = "interrupted"
	failHTTPToTLS      = "http_response_to_tls"
	failLocalFirewall  = "local_firewall_error"
	failAdminProhib    = "administratively_prohibited"
	opConnect          = "connect"
	transportTLS       = "tls"
	transportTCP       = "tcp"
	transportQUIC      = "quic"
	transportUDP       = "udp"
	familyIPv4         = "ipv4"
	familyIPv6         = "ipv6"
)

// isCertFailure reports whether f says the handshake completed but the
// chain did not verify.
func isCertFailure(f string) bool {
	return f == failSSLHostname || f == failSSLAuthority || f == failSSLInvalidCert
}

// portKey names a port of a transport.
type portKey struct {
	port int
	kind string
}

// endpointKey names one endpoint: a target's address, port and transport.
type endpointKey struct {
	target  string
	address string
	port    int
	kind    string // transportTCP, transportTLS, transportQUIC, transportUDP
}

// attempt is one repetition of an endpoint's steps.
type attempt struct {
	repeat int
	// confirm: the try of the run's confirmation pass, made after a delay
	// because the first passes left the endpoint suspect.
	confirm bool
	connect *measurements.Observation // the TCP connect
	control *measurements.Observation // the handshake with the control server name
	main    *measurements.Observation // the handshake with the target name, the QUIC or STUN step
	// arrival is the UDP endpoint's arrival step: datagrams of several
	// kinds and what each drew.
	arrival *measurements.Observation
}

// endpointObs gathers an endpoint's observations by repetition.
type endpointObs struct {
	key      endpointKey
	target   *measurements.Target
	addr     netip.Addr
	skipped  string
	attempts []*attempt // sorted by repeat
	// traces are the TTL-limited traces of the endpoint's flow, made in
	// the confirmation pass.
	traces []*measurements.Observation
}

func (e *endpointObs) at(repeat int) *attempt {
	for _, a := range e.attempts {
		if a.repeat == repeat {
			return a
		}
	}
	a := &attempt{repeat: repeat}
	e.attempts = append(e.attempts, a)
	return a
}

// index is a run's observations sorted for analysis.
type index struct {
	targets     map[string]*measurements.Target
	targetOrder []string
	dns         map[string][]*measurements.Observation // by target name
	endpoints   map[endpointKey]*endpointObs
	endpointIDs []endpointKey // in a deterministic order
	// portChecks are connects and datagrams to control hosts on the ports
	// of suspect endpoints, by transport ("tcp", "udp") and port.
	portChecks map[portKey][]*measurements.Observation
	// repeats counts the run's repetitions, its confirmation pass left
	// out; confirmed says the run made a confirmation pass.
	repeats     int
	confirmed   bool
	interrupted int
	notes       []string
}

// buildIndex sorts in's observations by target and endpoint. Observations
// of targets missing from in.Targets get a target made from what they
// carry; interrupted steps are dropped (a step cut short by the user says
// nothing about the network).
func buildIndex(in Input) *index {
	ix := &index{
		targets:    map[string]*measurements.Target{},
		dns:        map[string][]*measurements.Observation{},
		endpoints:  map[endpointKey]*endpointObs{},
		portChecks: map[portKey][]*measurements.Observation{},
	}
	for i := range in.Targets {
		t := &in.Targets[i]
		if _, dup := ix.targets[t.Name]; dup {
			continue
		}
		ix.targets[t.Name] = t
		ix.targetOrder = append(ix.targetOrder, t.Name)
	}
	var unknown []string
	for i := range in.Observations {
		o := &in.Observations[i]
		if o.Failure == failInterrupted {
			ix.interrupted++
			continue
		}
		if o.Confirmation {
			ix.confirmed = true
		} else {
			ix.repeats = max(ix.repeats, o.Repeat+1)
		}
		if o.PortCheck {
			k := portKey{port: o.Port, kind: o.Transport}
			ix.portChecks[k] = append(ix.portChecks[k], o)
			continue
		}
		t := ix.targets[o.Target]
		if t == nil {
			t = &measurements.Target{Name: o.Target, Group: o.Group, Host: o.Host}
			ix.targets[o.Target] = t
			ix.targetOrder = append(ix.targetOrder, o.Target)
			unknown = append(unknown, o.Target)
		}
		if o.Step == measurements.StepDNS {
			ix.dns[t.Name] = append(ix.dns[t.Name], o)
			continue
		}
		addr, err := netip.ParseAddr(o.Address)
		if err != nil {
			continue // an endpoint without an address cannot be judged
		}
		addr = addr.Unmap()
		key := endpointKey{target: t.Name, address: addr.String(), port: o.Port, kind: kindOf(o, t)}
		e := ix.endpoints[key]
		if e == nil {
			e = &endpointObs{key: key, target: t, addr: addr}
			ix.endpoints[key] = e
			ix.endpointIDs = append(ix.endpointIDs, key)
		}
		if o.Step == measurements.StepTrace {
			if o.Trace != nil && len(e.traces) < maxTracesPerEndpoint {
				e.traces = append(e.traces, o)
			}
			continue
		}
		if o.Skipped != "" {
			e.skipped = o.Skipped
			continue
		}
		a := e.at(o.Repeat)
		a.confirm = a.confirm || o.Confirmation
		switch {
		case o.Step == measurements.StepArrival:
			if o.Arrival != nil {
				a.arrival = first(a.arrival, o)
			}
		case o.Step == measurements.StepTCP:
			a.connect = first(a.connect, o)
		case o.Control:
			a.control = first(a.control, o)
		default:
			a.main = first(a.main, o)
		}
	}
	for _, e := range ix.endpoints {
		slices.SortFunc(e.attempts, func(a, b *attempt) int { return a.repeat - b.repeat })
	}
	for _, obs := range ix.dns {
		slices.SortStableFunc(obs, compareLookups)
	}
	slices.SortFunc(ix.endpointIDs, func(a, b endpointKey) int { return ix.compareKeys(a, b) })
	if ix.repeats == 0 {
		ix.repeats = 1
	}
	if ix.interrupted > 0 {
		ix.notes = append(ix.notes, fmt.Sprintf("%d steps were interrupted and are left out.", ix.interrupted))
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		ix.notes = append(ix.notes, fmt.Sprintf("observations name targets missing from the catalog: %v.", slices.Compact(unknown)))
	}
	return ix
}

// compareLookups orders a target's lookups by repetition, engine, query
// type and ID, so that "the first failure" does not depend on storage
// order.
func compareLookups(a, b *measurements.Observation) int {
	key := func(o *measurements.Observation) (string, string) {
		if o.DNS == nil {
			return "", ""
		}
		return o.DNS.Engine, o.DNS.QueryType
	}
	ea, qa := key(a)
	eb, qb := key(b)
	return cmp.Or(cmp.Compare(a.Repeat, b.Repeat), strings.Compare(ea, eb), strings.Compare(qa, qb), cmp.Compare(a.ID, b.ID))
}

func first(have, o *measurements.Observation) *measurements.Observation {
	if have != nil {
		return have
	}
	return o
}

// kindOf says which endpoint an observation belongs to: the TCP connect
// and both handshakes of a TLS target are one "tls" endpoint.
func kindOf(o *measurements.Observation, t *measurements.Target) string {
	switch o.Step {
	case measurements.StepTLS:
		return transportTLS
	case measurements.StepTCP:
		if t.Has(transportTLS) {
			return transportTLS
		}
		return transportTCP
	case measurements.StepQUIC:
		return transportQUIC
	case measurements.StepUDP, measurements.StepArrival:
		return transportUDP
	case measurements.StepTrace:
		if o.Trace != nil && (o.Trace.Test.Network == transportTCP || o.Trace.IsReset()) {
			// A SYN or ClientHello trace belongs to the endpoint its
			// connects do.
			if t.Has(transportTLS) {
				return transportTLS
			}
			return transportTCP
		}
		if o.Trace != nil && t.Has(transportQUIC) && (o.Trace.Test.Payload == measurements.ArrivalQUICv1 || !t.Has(transportUDP)) {
			// The trace of a QUIC endpoint: its probes carry a QUIC
			// Initial, and a target without plain UDP has no other
			// endpoint a UDP trace could be of.
			return transportQUIC
		}
		return transportUDP
	}
	return string(o.Step)
}

// groupRank orders groups as reports show them; unknown groups go last.
func groupRank(g string) int {
	if i := slices.Index(measurements.Groups, g); i >= 0 {
		return i
	}
	return len(measurements.Groups)
}

func (ix *index) targetRank(name string) int { return slices.Index(ix.targetOrder, name) }

// compareKeys orders endpoints by group, catalog order, address, port and
// transport.
func (ix *index) compareKeys(a, b endpointKey) int {
	ta, tb := ix.targets[a.target], ix.targets[b.target]
	if c := groupRank(ta.Group) - groupRank(tb.Group); c != 0 {
		return c
	}
	if c := ix.targetRank(a.target) - ix.targetRank(b.target); c != 0 {
		return c
	}
	aa, _ := netip.ParseAddr(a.address)
	ab, _ := netip.ParseAddr(b.address)
	if c := aa.Compare(ab); c != 0 {
		return c
	}
	if a.port != b.port {
		return a.port - b.port
	}
	switch {
	case a.kind < b.kind:
		return -1
	case a.kind > b.kind:
		return 1
	}
	return 0
}

// orderedTargets returns the targets by group, then catalog order.
func (ix *index) orderedTargets() []*measurements.Target {
	out := make([]*measurements.Target, 0, len(ix.targetOrder))
	for _, n := range ix.targetOrder {
		out = append(out, ix.targets[n])
	}
	slices.SortStableFunc(out, func(a, b *measurements.Target) int { return groupRank(a.Group) - groupRank(b.Group) })
	return out
}

func family(a netip.Addr) string {
	if a.Unmap().Is4() {
		return familyIPv4
	}
	return familyIPv6
}

// inNetworks reports whether a lies in one of t's expected networks. A
// NAT64 address (64:ff9b::/96) is judged as the IPv4 address it carries.
func inNetworks(t *measurements.Target, a netip.Addr) bool {
	a = measurements.UnwrapIPv4(a)
	for _, p := range t.Networks {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// isBogonFor reports whether a is a bogon answer for t: bogon space
// outside the networks t is expected in (a lab may put a target on
// loopback on purpose).
func isBogonFor(t *measurements.Target, a netip.Addr) bool {
	return measurements.IsBogon(a) && !inNetworks(t, a)
}

// samePrefix reports whether a and b share a /24 (IPv4) or /48 (IPv6):
// close enough to be the same operator's servers.
func samePrefix(a, b netip.Addr) bool {
	a, b = measurements.UnwrapIPv4(a), measurements.UnwrapIPv4(b)
	if a.Is4() != b.Is4() {
		return false
	}
	bits := 48
	if a.Is4() {
		bits = 24
	}
	pa, err := a.Prefix(bits)
	if err != nil {
		return false
	}
	return pa.Contains(b)
}
