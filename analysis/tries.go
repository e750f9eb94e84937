package analysis

import (
	"slices"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// tries is an endpoint's tries, classified.
type tries struct {
	// all counts every try when some were left out of the rest; why says
	// why they were.
	all      int
	why      string
	classes  []string
	obs      []*measurements.Observation
	controls []string
	ctlObs   []*measurements.Observation
}

func (ts tries) count(class string) int {
	n := 0
	for _, c := range ts.classes {
		if c == class {
			n++
		}
	}
	return n
}

func (ts tries) countControls(class string) int {
	n := 0
	for _, c := range ts.controls {
		if c == class {
			n++
		}
	}
	return n
}

// distinct returns the classes seen, sorted.
func (ts tries) distinct() []string {
	out := slices.Clone(ts.classes)
	slices.Sort(out)
	return slices.Compact(out)
}

// dropUnconnected leaves out the tries of a TLS endpoint whose connect
// failed, when others connected: they say nothing about the handshake
// (and a failed connect after a reset is the residual block censors keep
// on a triple). Attempts still counts every try.
func dropUnconnected(ts tries) tries {
	return ts.without(func(c string) bool { return strings.HasPrefix(c, "connect.") }, "they could not connect")
}

// dropLostResets leaves out, on a network that loses packets, the
// handshake timeouts of an endpoint whose other handshakes were reset:
// loss turns a reset into silence, never silence into a reset.
func dropLostResets(ts tries) tries {
	for _, c := range ts.classes {
		if c != classTLSReset && c != classTLSTimeout {
			return ts
		}
	}
	return ts.without(func(c string) bool { return c == classTLSTimeout }, "they timed out, which loss explains, while the others were reset")
}

// without returns ts less the tries whose class matches drop, or ts when
// nothing would be left.
func (ts tries) without(drop func(string) bool, why string) tries {
	kept := tries{all: max(ts.all, len(ts.classes)), why: ts.why}
	for i, c := range ts.classes {
		if !drop(c) {
			kept.classes = append(kept.classes, c)
			kept.obs = append(kept.obs, ts.obs[i])
			kept.controls = append(kept.controls, ts.controls[i])
			kept.ctlObs = append(kept.ctlObs, ts.ctlObs[i])
		}
	}
	if len(kept.classes) == 0 || len(kept.classes) == len(ts.classes) {
		return ts
	}
	if kept.why != "" {
		kept.why += "; "
	}
	kept.why += why
	return kept
}

// foldResidual reads the later tries of an endpoint whose first try was
// reset on the target's server name while the control name worked there:
// a later try reset before the name was even sent (at connect, or on the
// control handshake) met the residual block censors keep on the (client,
// server, port) for a minute or more after a trigger (REFERENCE). It is
// the same block seen again, not a new block of the address, and counts as
// the pattern holding. Only resets are read so: silence, which loss and
// outages make too, never is.
func foldResidual(ts tries) (tries, int) {
	if len(ts.classes) < 2 || ts.classes[0] != classTLSReset || ts.controls[0] != classReached {
		return ts, 0
	}
	folded := 0
	out := ts
	out.classes, out.controls = slices.Clone(ts.classes), slices.Clone(ts.controls)
	for i := 1; i < len(out.classes); i++ {
		c, ctl := out.classes[i], out.controls[i]
		resetEarly := c == classConnectReset || c == classConnectRefused ||
			c == classTLSReset && (ctl == classTLSReset || ctl == classConnectReset)
		if resetEarly {
			out.classes[i], out.controls[i] = classTLSReset, classReached
			folded++
		}
	}
	return out, folded
}
