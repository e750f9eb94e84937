package runner

import (
	"context"
	"net/netip"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/netid"
	"github.com/reachprobe/reachprobe/probes/pathprobe"
)

// asLookup is the Runner's ASLookup, or the embedded ASN database.
func (s *state) asLookup() pathprobe.ASLookup {
	if s.r.ASLookup != nil {
		return s.r.ASLookup
	}
	return func(a netip.Addr) (uint, string) {
		asn, name, _ := netid.Lookup(a)
		return asn, name
	}
}

// trace runs the traces of one request and records each: the test flow
// against TCP to the same address, which finds the destination's hop,
// then against UDP on the same port toward a control address.
func (s *state) trace(ctx context.Context, t *measurements.Target, repeat int, tr TraceRequest, budget *pathprobe.Budget) {
	test := pathprobe.Flow{Network: "udp", Dst: tr.Test}
	sameCtl := pathprobe.Flow{Network: "tcp", Dst: netip.AddrPortFrom(tr.Test.Addr(), uint16(tr.TCPPort))}
	var ctlPayload []byte
	switch {
	case tr.Transport == "quic":
		test.Payload, ctlPayload = quicPayloads(t, s.target(tr.ControlTarget))
	case tr.Payload != "":
		var ok bool
		if test, sameCtl, ctlPayload, ok = payloadFlows(tr); !ok {
			return
		}
	}
	same := pathprobe.Run(ctx, pathprobe.Config{Test: test, Control: sameCtl, Budget: budget})
	s.recordTrace(ctx, t, repeat, same, t.Name)
	if !tr.Control.IsValid() || ctx.Err() != nil {
		return
	}
	dest := same.Stop.DestinationHop
	if dest == 0 {
		dest = s.referenceHop(ctx, t, repeat, tr, test, budget)
	}
	other := pathprobe.Run(ctx, pathprobe.Config{
		Test: test, Control: pathprobe.Flow{Network: "udp", Dst: netip.AddrPortFrom(tr.Control, tr.Test.Port()), Payload: ctlPayload}, Budget: budget,
		DestinationHop: dest,
	})
	s.recordTrace(ctx, t, repeat, other, tr.ControlTarget)
}

func (s *state) recordTrace(ctx context.Context, t *measurements.Target, repeat int, tr *pathprobe.Trace, controlTarget string) {
	tr.Annotate(s.asLookup())
	s.record(ctx, t, repeat, traceObservation(tr, controlTarget))
}

// traceObservation turns a trace into its step. Hop addresses are kept
// for the store (AS mapping needs them); exports drop them.
func traceObservation(tr *pathprobe.Trace, controlTarget string) *measurements.Observation {
	flow := func(f pathprobe.Flow) measurements.TraceFlow {
		tf := measurements.TraceFlow{Network: f.Network, Address: f.Dst.Addr().Unmap().String(), Port: int(f.Dst.Port())}
		if f.Network == "udp" && f.Payload != nil {
			tf.Payload = payloadKind(f.Payload)
		}
		return tf
	}
	addr := func(a netip.Addr) string {
		if !a.IsValid() {
			return ""
		}
		return a.Unmap().String()
	}
	d := &measurements.TraceDetails{
		Test: flow(tr.Test), Control: flow(tr.Control), ControlTarget: controlTarget, Probes: tr.Probes,
		Skipped: tr.Skipped, Failure: tr.Failure, BudgetSpent: tr.BudgetSpent,
		Stop: measurements.TraceStop{
			Known: tr.Stop.Known, Hop: tr.Stop.Hop, Addr: addr(tr.Stop.Addr), ASN: tr.Stop.ASN, ASName: tr.Stop.ASName,
			Private: tr.Stop.Addr.IsValid() && measurements.IsBogon(tr.Stop.Addr.Unmap()), Rejected: tr.Stop.Rejected,
			DestinationHop: tr.Stop.DestinationHop, Reason: tr.Stop.Reason,
		},
	}
	for _, h := range tr.Hops {
		d.Hops = append(d.Hops, measurements.TraceHop{
			TTL: h.TTL, Role: h.Role, Reply: string(h.Reply), Addr: addr(h.From), ASN: h.ASN, ASName: h.ASName,
			Private: h.From.IsValid() && measurements.IsBogon(h.From.Unmap()),
		})
	}
	started := tr.Started
	if started.IsZero() {
		started = time.Now().UTC()
	}
	return &measurements.Observation{
		Step: measurements.StepTrace, Address: d.Test.Address, Port: d.Test.Port, Transport: d.Test.Network,
		Started: started.UTC(), Duration: tr.Duration, Confirmation: true, Trace: d,
	}
}
