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
}

// ConfirmEndpoint is one endpoint to measure again, with the pattern that
// makes it suspect.
type ConfirmEndpoint struct {
	Target  string `json:"target"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Method  string `json:"method"`
}

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
	return len(c.Endpoints) == 0 && len(c.Names) == 0 && len(c.PortChecks) == 0
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
	if a.report.Network.Status == NetworkNoConnectivity {
		// Nothing answered at all: there is no pattern to confirm.
		return Confirmation{Endpoints: []ConfirmEndpoint{}, Names: []string{}, PortChecks: []PortCheck{}}
	}
	ports := map[portKey]string{} // suspect TCP ports, by family
	for _, r := range a.judged {
		if r.v.Group == measurements.GroupControl || !r.counted {
			continue
		}
		method := r.candidate
		if method == "" {
			method = r.v.Suspected
		}
		if method == "" {
			continue
		}
		c.Endpoints = append(c.Endpoints, ConfirmEndpoint{Target: r.v.Target, Address: r.v.Address, Port: r.v.Port, Method: method})
		if method == MethodPortFiltering && (r.e.key.kind == transportTCP || r.e.key.kind == transportTLS) {
			ports[portKey{port: r.v.Port, kind: r.family}] = r.family
		}
	}
	for k, fam := range ports {
		c.PortChecks = append(c.PortChecks, controlPortChecks(a.ix, k.port, fam)...)
	}
	sortPortChecks(c.PortChecks)
	return c
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
