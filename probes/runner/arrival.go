package runner

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/arrival"
	"github.com/reachprobe/reachprobe/probes/failure"
)

// wantsArrival reports whether the endpoint at port of t gets an arrival
// step after a STUN exchange that got no answer: every UDP endpoint of the
// call group, and
// a control STUN server's endpoint on one of the call group's ports, where
// its evidence tells payload filtering from a host that ignores a kind.
func (s *state) wantsArrival(t *measurements.Target, port int) bool {
	if s.r.NoPathProbes || !t.Has("udp") {
		return false
	}
	switch t.Group {
	case measurements.GroupCall:
		return true
	case measurements.GroupControl:
		for i := range s.r.Catalog.Targets {
			c := &s.r.Catalog.Targets[i]
			if c.Group == measurements.GroupCall && c.Has("udp") && slices.Contains(c.Ports, port) {
				return true
			}
		}
	}
	return false
}

// measureArrival sends every datagram kind to ap and returns the
// observation. The ICMP sender's address is reduced to FromTarget here, so
// it never reaches the store.
func measureArrival(ctx context.Context, ap netip.AddrPort) *measurements.Observation {
	o := &measurements.Observation{
		Step: measurements.StepArrival, Address: ap.Addr().String(), Port: int(ap.Port()),
		Transport: "udp", Started: time.Now().UTC(),
	}
	res, err := arrival.Probe(ctx, ap, arrival.Config{})
	o.Duration = time.Since(o.Started)
	if err != nil || res == nil {
		o.Failure, o.Operation = failure.Classify(err), "write"
		return o
	}
	o.Duration = res.Duration
	d := &measurements.ArrivalDetails{ICMPSkipped: res.ICMPSkipped}
	for _, k := range res.Kinds {
		ak := measurements.ArrivalKind{
			Kind: string(k.Kind), Sent: k.Sent, Size: k.Size, Evidence: k.Evidence,
			Answers: k.Answers, AnswerBytes: k.AnswerBytes, STUNClass: k.STUNClass,
			VersionNegotiation: k.VersionNegotiation, Failure: k.Failure,
		}
		if k.ICMP != nil {
			ak.ICMP = &measurements.ICMPDetails{
				IPv6: ap.Addr().Is6() && !ap.Addr().Is4In6(),
				Type: int(k.ICMP.Type), Code: int(k.ICMP.Code), FromTarget: k.ICMP.FromTarget,
			}
		}
		d.Kinds = append(d.Kinds, ak)
	}
	o.Arrival = d
	return o
}
