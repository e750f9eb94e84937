package runner

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/pathprobe"
)

// ResetTraceRequest asks for a reset trace of one TLS endpoint whose
// handshakes with the target's server name were reset while the control
// name went through: a trace to the same address names the hops and finds
// the server's, then ClientHellos with lowered TTLs find where the reset
// comes from (pathprobe.RunReset).
type ResetTraceRequest struct {
	Target string
	Dst    netip.AddrPort
}

// TCPTraceRequest asks for the SYN traces of one TCP port: SYNs to Test
// against SYNs to OpenPort on the same address, then, when Control is
// valid, against SYNs to the same port toward Control (of ControlTarget),
// told the destination's hop the first trace found.
type TCPTraceRequest struct {
	Target        string
	Test          netip.AddrPort
	OpenPort      int
	ControlTarget string
	Control       netip.Addr
}

// maxResetTraces and maxTCPTraces bound the TCP path probes of a run
// whatever the plan says; the run's pathprobe budget bounds their probes
// and time too.
const (
	maxResetTraces = 2
	maxTCPTraces   = 2
)

// boundTCP copies into out the TCP trace requests of plan that name
// targets of the catalog and valid ports, up to the maxima.
func (s *state) boundTCP(plan ConfirmPlan, out *ConfirmPlan) {
	for _, rt := range plan.ResetTraces {
		t := s.target(rt.Target)
		if t != nil && t.Has("tls") && rt.Dst.IsValid() && rt.Dst.Port() > 0 && len(out.ResetTraces) < maxResetTraces {
			out.ResetTraces = append(out.ResetTraces, rt)
		}
	}
	for _, tr := range plan.TCPTraces {
		ctl := s.target(tr.ControlTarget)
		if s.target(tr.Target) != nil && tr.Test.IsValid() && tr.Test.Port() > 0 && tr.OpenPort > 0 && tr.OpenPort < 65536 &&
			int(tr.Test.Port()) != tr.OpenPort && len(out.TCPTraces) < maxTCPTraces && (!tr.Control.IsValid() || ctl != nil) {
			out.TCPTraces = append(out.TCPTraces, tr)
		}
	}
}

// traceTCP starts plan's reset and SYN traces on wg, every one drawing on
// budget.
func (s *state) traceTCP(ctx context.Context, wg *sync.WaitGroup, repeat int, plan ConfirmPlan, budget *pathprobe.Budget) {
	for _, rt := range plan.ResetTraces {
		t := s.target(rt.Target)
		wg.Go(func() { s.resetTrace(ctx, t, repeat, rt, budget) })
	}
	for _, tr := range plan.TCPTraces {
		t := s.target(tr.Target)
		wg.Go(func() { s.synTrace(ctx, t, repeat, tr, budget) })
	}
}

// synTrace runs the SYN traces of one request and records each.
func (s *state) synTrace(ctx context.Context, t *measurements.Target, repeat int, tr TCPTraceRequest, budget *pathprobe.Budget) {
	test := pathprobe.Flow{Network: "tcp", Dst: tr.Test}
	same := pathprobe.Run(ctx, pathprobe.Config{
		Test: test, Control: pathprobe.Flow{Network: "tcp", Dst: netip.AddrPortFrom(tr.Test.Addr(), uint16(tr.OpenPort))}, Budget: budget,
	})
	s.recordTrace(ctx, t, repeat, same, t.Name)
	if !tr.Control.IsValid() || ctx.Err() != nil {
		return
	}
	other := pathprobe.Run(ctx, pathprobe.Config{
		Test: test, Control: pathprobe.Flow{Network: "tcp", Dst: netip.AddrPortFrom(tr.Control, tr.Test.Port())}, Budget: budget,
		DestinationHop: same.Stop.DestinationHop,
	})
	s.recordTrace(ctx, t, repeat, other, tr.ControlTarget)
}

// resetTrace runs one reset trace and records it as one trace step: the
// hops of a trace to the same address (UDP to the port against SYNs to
// it, whose answer gives the server's hop), then the ClientHellos, swept
// up to the server's hop. Where routers send no ICMP that trace may not
// reach the server; the control ClientHellos then find its hop.
func (s *state) resetTrace(ctx context.Context, t *measurements.Target, repeat int, req ResetTraceRequest, budget *pathprobe.Budget) {
	named := pathprobe.Run(ctx, pathprobe.Config{
		Test: pathprobe.Flow{Network: "udp", Dst: req.Dst}, Control: pathprobe.Flow{Network: "tcp", Dst: req.Dst}, Budget: budget,
	})
	named.Annotate(s.asLookup())
	o := traceObservation(named, t.Name)
	d := o.Trace
	d.Kind = measurements.TraceKindReset
	d.Test = measurements.TraceFlow{Network: "tcp", Address: req.Dst.Addr().Unmap().String(), Port: int(req.Dst.Port())}
	d.Control = d.Test
	d.Stop = measurements.TraceStop{DestinationHop: named.Stop.DestinationHop}
	if d.Skipped != "" || d.Failure != "" {
		d.Stop.Reason = named.Stop.Reason
	} else {
		s.sweepHellos(ctx, t, req, budget, d)
		o.Duration = time.Since(named.Started)
	}
	s.record(ctx, t, repeat, o)
}

// sweepHellos sends the TTL-limited ClientHellos of a reset trace and
// writes what they found into d, whose Hops name the routers.
func (s *state) sweepHellos(ctx context.Context, t *measurements.Target, req ResetTraceRequest, budget *pathprobe.Budget, d *measurements.TraceDetails) {
	hello, err := pathprobe.ClientHello(ctx, t.ServerName, t.ALPN)
	var control []byte
	if err == nil {
		control, err = pathprobe.ClientHello(ctx, t.ControlServerName, t.ALPN)
	}
	if err != nil {
		d.Failure, d.Stop.Reason = "client_hello", fmt.Sprintf("not traced: the ClientHello could not be built: %v", err)
		return
	}
	rt := pathprobe.RunReset(ctx, pathprobe.ResetConfig{Dst: req.Dst, Hello: hello, ControlHello: control, MaxTTL: d.Stop.DestinationHop, Budget: budget})
	if d.Stop.DestinationHop == 0 {
		d.Stop.DestinationHop = rt.ServerTTL
	}
	for _, tr := range rt.Tries {
		d.Tries = append(d.Tries, measurements.TraceTry{TTL: tr.TTL, Role: tr.Role, Outcome: tr.Outcome, Failure: tr.Failure})
	}
	d.Probes += len(rt.Tries)
	d.Skipped, d.BudgetSpent = rt.Skipped, d.BudgetSpent || rt.BudgetSpent
	if rt.Failure != "" {
		d.Failure = rt.Failure
	}
	d.ResetTTL = rt.ResetTTL
	d.Stop.Known, d.Stop.Hop, d.Stop.Reason = rt.Known, rt.Hop, rt.Reason
	if !rt.Known || rt.Hop == 0 {
		return
	}
	// The hop's router, as the trace to the same address saw it.
	for _, h := range d.Hops {
		if h.TTL == rt.Hop && h.Reply == measurements.TraceReplyTimeExceeded && h.Addr != "" {
			d.Stop.Addr, d.Stop.ASN, d.Stop.ASName, d.Stop.Private = h.Addr, h.ASN, h.ASName, h.Private
			break
		}
	}
}

// referenceHop is for a UDP trace whose TCP control to the same address
// found no destination (everything to the address stops): it traces the
// test flow (carrying what the trace's probes carry) against SYNs to
// tr.Reference, another server of Apple's, and
// returns the hop where that server answered, which stands in for the
// test destination's; 0 when there is no reference or it did not answer.
// The trace is recorded: the analysis says what the hop was taken from.
func (s *state) referenceHop(ctx context.Context, t *measurements.Target, repeat int, tr TraceRequest, test pathprobe.Flow, budget *pathprobe.Budget) int {
	if !tr.Reference.IsValid() || ctx.Err() != nil {
		return 0
	}
	ref := pathprobe.Run(ctx, pathprobe.Config{
		Test: test, Control: pathprobe.Flow{Network: "tcp", Dst: tr.Reference}, Budget: budget,
	})
	s.recordTrace(ctx, t, repeat, ref, tr.ReferenceTarget)
	for _, h := range ref.Hops {
		if h.Role == pathprobe.RoleControl && h.Reply == pathprobe.ReplyDestination {
			return h.TTL
		}
	}
	return 0
}
