package export

import (
	"fmt"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// Path evidence in exports: the arrival step has no address but the
// target's, and is exported as stored. A trace's hop addresses, and its
// stop's, are dropped here, once, for every format: the first hops
// identify the volunteer. What is left is hop numbers, replies, AS numbers
// and names, and whether a hop's address was private.

// exportTrace is a trace as exports carry it: no hop address, no control
// address (the control is named by its catalog target).
type exportTrace struct {
	// Kind is "reset" for a reset trace (Tries and ResetTTL then say
	// what the ClientHellos drew); omitted for a TTL trace.
	Kind           string      `json:"kind,omitempty"`
	TestNetwork    string      `json:"test_network"`
	TestPort       int         `json:"test_port"`
	TestPayload    string      `json:"test_payload,omitempty"`
	ControlNetwork string      `json:"control_network"`
	ControlPort    int         `json:"control_port"`
	ControlPayload string      `json:"control_payload,omitempty"`
	ControlTarget  string      `json:"control_target,omitempty"`
	ControlSame    bool        `json:"control_same_address"`
	Hops           []exportHop `json:"hops"`
	Stop           exportStop  `json:"stop"`
	Probes         int         `json:"probes"`
	Skipped        string      `json:"skipped,omitempty"`
	Failure        string      `json:"failure,omitempty"`
	BudgetSpent    bool        `json:"budget_spent,omitempty"`
	Tries          []exportTry `json:"tries,omitempty"`
	ResetTTL       int         `json:"reset_ttl,omitempty"`
}

// exportTry is a reset trace's ClientHello: its TTL, whose name it
// carried and what it drew.
type exportTry struct {
	TTL     int    `json:"ttl"`
	Role    string `json:"role"`
	Outcome string `json:"outcome"`
	Failure string `json:"failure,omitempty"`
}

type exportHop struct {
	TTL     int    `json:"ttl"`
	Role    string `json:"role"`
	Reply   string `json:"reply"`
	ASN     uint   `json:"asn,omitempty"`
	ASName  string `json:"as_name,omitempty"`
	Private bool   `json:"private,omitempty"`
}

type exportStop struct {
	Known          bool   `json:"known"`
	Hop            int    `json:"hop"`
	ASN            uint   `json:"asn,omitempty"`
	ASName         string `json:"as_name,omitempty"`
	Private        bool   `json:"private,omitempty"`
	Rejected       bool   `json:"rejected,omitempty"`
	DestinationHop int    `json:"destination_hop,omitempty"`
	Reason         string `json:"reason"`
}

// traceView returns d without addresses, its free text scrubbed; nil for
// nil.
func traceView(d *measurements.TraceDetails) *exportTrace {
	if d == nil {
		return nil
	}
	kind := d.Kind
	if kind == measurements.TraceKindTTL {
		kind = ""
	}
	v := &exportTrace{
		Kind: kind, ResetTTL: d.ResetTTL,
		TestNetwork: d.Test.Network, TestPort: d.Test.Port, TestPayload: d.Test.Payload,
		ControlNetwork: d.Control.Network, ControlPort: d.Control.Port, ControlPayload: d.Control.Payload, ControlTarget: d.ControlTarget,
		ControlSame: d.Control.Address == d.Test.Address,
		Hops:        make([]exportHop, 0, len(d.Hops)),
		Stop: exportStop{Known: d.Stop.Known, Hop: d.Stop.Hop, ASN: d.Stop.ASN, ASName: measurements.Scrub(d.Stop.ASName),
			Private: d.Stop.Private, Rejected: d.Stop.Rejected, DestinationHop: d.Stop.DestinationHop, Reason: measurements.Scrub(d.Stop.Reason)},
		Probes: d.Probes, Skipped: d.Skipped, Failure: measurements.Scrub(d.Failure), BudgetSpent: d.BudgetSpent,
	}
	for _, h := range d.Hops {
		v.Hops = append(v.Hops, exportHop{TTL: h.TTL, Role: h.Role, Reply: h.Reply, ASN: h.ASN, ASName: measurements.Scrub(h.ASName), Private: h.Private})
	}
	for _, t := range d.Tries {
		v.Tries = append(v.Tries, exportTry{TTL: t.TTL, Role: t.Role, Outcome: t.Outcome, Failure: measurements.Scrub(t.Failure)})
	}
	return v
}

// traceTries writes a reset trace's ClientHellos as "ttl:role:outcome",
// in the order sent.
func traceTries(d *measurements.TraceDetails) string {
	parts := make([]string, 0, len(d.Tries))
	for _, t := range d.Tries {
		parts = append(parts, fmt.Sprintf("%d:%s:%s", t.TTL, t.Role, t.Outcome))
	}
	return strings.Join(parts, " ")
}

// arrivalSummary writes an arrival step's kinds as "kind=evidence ...".
func arrivalSummary(d *measurements.ArrivalDetails) string {
	parts := make([]string, 0, len(d.Kinds))
	for _, k := range d.Kinds {
		parts = append(parts, k.Kind+"="+k.Evidence)
	}
	return strings.Join(parts, " ")
}

// hopAS names a hop's network without its address.
func hopAS(asn uint, name string, private bool) string {
	switch {
	case private:
		return "private"
	case asn == 0:
		return "unknown"
	case name != "":
		return fmt.Sprintf("AS%d %s", asn, measurements.Scrub(name))
	}
	return fmt.Sprintf("AS%d", asn)
}

// traceHops writes a trace's probes as "ttl:role:reply:network", in the
// order sent.
func traceHops(d *measurements.TraceDetails) string {
	parts := make([]string, 0, len(d.Hops))
	for _, h := range d.Hops {
		p := fmt.Sprintf("%d:%s:%s", h.TTL, h.Role, h.Reply)
		if h.Reply == measurements.TraceReplyTimeExceeded || h.Reply == measurements.TraceReplyUnreachable {
			p += ":" + hopAS(h.ASN, h.ASName, h.Private)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

// traceStop writes where a trace's test flow stops, or why that is
// unknown.
func traceStop(d *measurements.TraceDetails) string {
	switch {
	case d.Skipped != "":
		return "skipped: " + d.Skipped
	case !d.Stop.Known:
		return "unknown: " + measurements.Scrub(d.Stop.Reason)
	case d.IsReset() && (d.Stop.DestinationHop == 0 || d.ResetTTL >= d.Stop.DestinationHop):
		return fmt.Sprintf("reset at the server's hop %d (from TTL %d): not placed on the way", d.Stop.DestinationHop, d.ResetTTL)
	case d.IsReset():
		return fmt.Sprintf("reset past hop %d %s (reset from TTL %d, server at hop %d)", d.Stop.Hop, hopAS(d.Stop.ASN, d.Stop.ASName, d.Stop.Private), d.ResetTTL, d.Stop.DestinationHop)
	}
	return fmt.Sprintf("hop %d %s", d.Stop.Hop, hopAS(d.Stop.ASN, d.Stop.ASName, d.Stop.Private))
}
