package runner

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/pathprobe"
	"github.com/reachprobe/reachprobe/probes/stunprobe"
	"github.com/reachprobe/reachprobe/probes/tlsprobe"
)

// ConfirmPlan is what the confirmation pass measures again. The runner does
// not choose it: the caller's Confirm function does, from the analysis of
// what the first passes recorded.
type ConfirmPlan struct {
	// Endpoints are (target, address, port) triples whose every step is
	// repeated as in the first pass.
	Endpoints []ConfirmEndpoint
	// Names are targets whose DNS lookups are repeated.
	Names []string
	// PortChecks are connects (TCP) or STUN requests (UDP) to a control
	// host's address on a port an endpoint of Apple's failed on.
	PortChecks []PortCheck
	// Traces are TTL-limited traces of UDP endpoints (see TraceRequest);
	// the runner drops them when NoPathProbes is set.
	Traces []TraceRequest
	// ResetTraces and TCPTraces are the path probes of TCP endpoints
	// (trace_tcp.go); dropped when NoPathProbes is set, like Traces.
	ResetTraces []ResetTraceRequest
	TCPTraces   []TCPTraceRequest
}

// TraceRequest asks for the traces of one UDP endpoint (a STUN endpoint,
// or a QUIC one): its flow against TCP to the same address on TCPPort (a
// payload trace: against a reserved-version QUIC Initial to the same
// address and port), then, when Control is valid, against UDP on the same
// port toward Control (a control host's address, of ControlTarget), told
// the destination's hop the first trace found.
type TraceRequest struct {
	Target        string
	Test          netip.AddrPort
	TCPPort       int
	ControlTarget string
	Control       netip.Addr
	// Transport is "quic" for a QUIC endpoint: its UDP probes carry a
	// QUIC v1 Initial (quicPayloads); "" sends zeros.
	Transport string
	// Payload, when set, is a datagram kind of the arrival step that
	// Apple's host did not answer while it answered a QUIC Initial of a
	// reserved version: the UDP probes carry it, and the control to the
	// same address is that reserved Initial instead of TCP
	// (payloadFlows).
	Payload string
	// Reference, of ReferenceTarget, is another server of Apple's that
	// TCP reached: when TCP to the test's address finds no destination
	// (blocked outright), a trace toward it gives the hop that stands in
	// for the test destination's (see referenceHop).
	ReferenceTarget string
	Reference       netip.AddrPort
}

// ConfirmEndpoint is one endpoint to measure again.
type ConfirmEndpoint struct {
	Target  string
	Address netip.Addr
	Port    int
}

// PortCheck is one probe of a port toward a control host.
type PortCheck struct {
	// Target is the control target whose address is used.
	Target  string
	Address netip.Addr
	Port    int
	// Transport is "tcp" (a connect) or "udp" (a STUN binding request).
	Transport string
}

// Empty reports whether the plan measures nothing.
func (p ConfirmPlan) Empty() bool {
	return len(p.Endpoints) == 0 && len(p.Names) == 0 && len(p.PortChecks) == 0 && len(p.Traces) == 0 &&
		len(p.ResetTraces) == 0 && len(p.TCPTraces) == 0
}

// maxTraces bounds the UDP trace requests of a run whatever the plan
// says: the analysis asks for at most one per address family of each
// kind (a silent call endpoint, a silent QUIC endpoint, a payload trace),
// six in all; the run's pathprobe budget bounds their probes and time too.
const maxTraces = 6

// maxConfirmSteps bounds the confirmation pass whatever the plan says: the
// plan comes from what the network answered, and the network must never
// choose how many hosts the probe contacts. The default catalog has about
// sixty endpoints; twice that leaves room for port checks.
const maxConfirmSteps = 128

// confirm runs the confirmation pass as repetition number repeat.
func (s *state) confirm(ctx context.Context, repeat int) error {
	plan, err := s.r.Confirm(ctx)
	if err != nil {
		return fmt.Errorf("planning the confirmation pass: %w", err)
	}
	plan = s.bound(plan)
	if plan.Empty() {
		return nil
	}
	delay := s.r.ConfirmDelay
	if delay == 0 {
		delay = DefaultConfirmDelay
	}
	if s.r.Confirming != nil {
		s.r.Confirming(plan, max(delay, 0))
	}
	if delay > 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
	var wg sync.WaitGroup
	for _, name := range plan.Names {
		t := s.target(name)
		wg.Go(func() {
			if !s.acquire(ctx) {
				return
			}
			obs := s.resolver().LookupAll(ctx, t.Host, s.r.DoHURLs)
			s.release()
			for _, o := range obs {
				o.Confirmation = true
				s.record(ctx, t, repeat, o)
			}
		})
	}
	for _, e := range plan.Endpoints {
		t := s.target(e.Target)
		ap := netip.AddrPortFrom(e.Address, uint16(e.Port))
		wg.Go(func() {
			if !s.acquire(ctx) {
				return
			}
			defer s.release()
			s.measureEndpointAs(ctx, t, repeat, ap, func(o *measurements.Observation) { o.Confirmation = true })
		})
	}
	for _, pc := range plan.PortChecks {
		t := s.target(pc.Target)
		ap := netip.AddrPortFrom(pc.Address, uint16(pc.Port))
		wg.Go(func() {
			if !s.acquire(ctx) {
				return
			}
			defer s.release()
			var o *measurements.Observation
			if pc.Transport == "udp" {
				o = stunprobe.Binding(ctx, ap, true)
			} else {
				conn, c := tlsprobe.Connect(ctx, ap)
				if conn != nil {
					conn.Close()
				}
				o = c
			}
			o.Confirmation, o.PortCheck, o.Control = true, true, true
			s.record(ctx, t, repeat, o)
		})
	}
	if len(plan.Traces) > 0 || len(plan.ResetTraces) > 0 || len(plan.TCPTraces) > 0 {
		budget := pathprobe.NewDefaultBudget() // one per run: every trace shares it
		for _, tr := range plan.Traces {
			t := s.target(tr.Target)
			wg.Go(func() { s.trace(ctx, t, repeat, tr, budget) })
		}
		s.traceTCP(ctx, &wg, repeat, plan, budget)
	}
	wg.Wait()
	return nil
}

// bound drops the parts of plan that name no target of the catalog and
// cuts it to maxConfirmSteps.
func (s *state) bound(plan ConfirmPlan) ConfirmPlan {
	var out ConfirmPlan
	n := 0
	for _, name := range plan.Names {
		if s.target(name) != nil && n < maxConfirmSteps {
			out.Names = append(out.Names, name)
			n++
		}
	}
	for _, e := range plan.Endpoints {
		if s.target(e.Target) != nil && e.Address.IsValid() && e.Port > 0 && e.Port < 65536 && n < maxConfirmSteps {
			out.Endpoints = append(out.Endpoints, e)
			n++
		}
	}
	for _, pc := range plan.PortChecks {
		if s.target(pc.Target) != nil && pc.Address.IsValid() && pc.Port > 0 && pc.Port < 65536 && n < maxConfirmSteps {
			out.PortChecks = append(out.PortChecks, pc)
			n++
		}
	}
	if !s.r.NoPathProbes {
		for _, tr := range plan.Traces {
			ctl := s.target(tr.ControlTarget)
			if s.target(tr.Target) != nil && tr.Test.IsValid() && tr.Test.Port() > 0 && tr.TCPPort > 0 && tr.TCPPort < 65536 &&
				len(out.Traces) < maxTraces && (!tr.Control.IsValid() || ctl != nil) {
				if s.target(tr.ReferenceTarget) == nil || !tr.Reference.IsValid() || tr.Reference.Port() == 0 {
					tr.ReferenceTarget, tr.Reference = "", netip.AddrPort{}
				}
				out.Traces = append(out.Traces, tr)
			}
		}
		s.boundTCP(plan, &out)
	}
	return out
}

// target returns the catalog target named name, or nil.
func (s *state) target(name string) *measurements.Target {
	for i := range s.r.Catalog.Targets {
		if s.r.Catalog.Targets[i].Name == name {
			return &s.r.Catalog.Targets[i]
		}
	}
	return nil
}
