package runner

import (
	"fmt"
	"slices"

	"github.com/reachprobe/reachprobe/probes/failure"

	"github.com/reachprobe/reachprobe/measurements"
)

// maxFirstFailures is how many distinct failures a group's summary keeps:
// enough to show the pattern on a terminal, few enough to read.
const maxFirstFailures = 3

// Summary counts, per group, the endpoints measured and reached. It is a
// quick report for the terminal, not a verdict: analysis decides what the
// failures mean.
type Summary struct {
	Groups map[string]*GroupSummary
}

// GroupSummary is one group's line of the summary.
type GroupSummary struct {
	// Measured and Reachable count endpoints: a (target, address, port,
	// step) whose final step (TLS for a TLS target, otherwise the step
	// itself) was attempted, and the ones of those that succeeded.
	Measured, Reachable int
	// Lookups and Resolved count DNS lookups and the ones answered with
	// addresses or with a clean "no address of this family".
	Lookups, Resolved int
	// FirstFailures holds the first distinct failures seen, in order.
	FirstFailures []string
}

func newSummary() *Summary { return &Summary{Groups: map[string]*GroupSummary{}} }

// endpointFinal reports whether o is the step that decides whether its
// endpoint was reachable: the non-control TLS handshake for TLS targets,
// the connect for TCP-only ones, QUIC and STUN steps themselves.
func endpointFinal(o *measurements.Observation, hasTLS bool) bool {
	switch o.Step {
	case measurements.StepTLS:
		return !o.Control
	case measurements.StepTCP:
		// A TCP step is final when there is no TLS step after it, or when
		// it failed (no TLS step follows a failed connect).
		return !hasTLS || !o.Succeeded()
	case measurements.StepQUIC, measurements.StepUDP:
		return true
	}
	return false
}

func (s *Summary) add(o *measurements.Observation, hasTLS bool) {
	g := s.Groups[o.Group]
	if g == nil {
		g = &GroupSummary{}
		s.Groups[o.Group] = g
	}
	switch {
	case o.Skipped != "":
		return
	case o.Step == measurements.StepDNS:
		g.Lookups++
		// A name without addresses of one family (no AAAA) was answered.
		if o.Succeeded() || o.Failure == failure.DNSNoAnswer {
			g.Resolved++
		}
		return
	case !endpointFinal(o, hasTLS):
		return
	}
	g.Measured++
	if o.Succeeded() {
		g.Reachable++
		return
	}
	line := fmt.Sprintf("%s %s %s: %s", o.Host, o.Step, o.Operation, o.Failure)
	if len(g.FirstFailures) < maxFirstFailures && !slices.Contains(g.FirstFailures, line) {
		g.FirstFailures = append(g.FirstFailures, line)
	}
}

// GroupNames returns the groups present, in measurements.Groups order.
func (s *Summary) GroupNames() []string {
	var out []string
	for _, g := range measurements.Groups {
		if _, ok := s.Groups[g]; ok {
			out = append(out, g)
		}
	}
	return out
}
