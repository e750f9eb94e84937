package main

import (
	"context"
	"net/netip"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/runner"
)

// planConfirmation asks the analysis, from what run runID has stored so
// far, what the confirmation pass should measure again.
func planConfirmation(ctx context.Context, store *measurements.Store, runID int64, cat measurements.Catalog) (runner.ConfirmPlan, error) {
	run, err := store.Run(ctx, runID)
	if err != nil {
		return runner.ConfirmPlan{}, err
	}
	obs, err := store.Observations(ctx, runID)
	if err != nil {
		return runner.ConfirmPlan{}, err
	}
	c := analysis.Candidates(analysis.Input{Run: run, Targets: cat.Targets, Observations: obs})
	var plan runner.ConfirmPlan
	plan.Names = c.Names
	for _, e := range c.Endpoints {
		if a, err := netip.ParseAddr(e.Address); err == nil {
			plan.Endpoints = append(plan.Endpoints, runner.ConfirmEndpoint{Target: e.Target, Address: a, Port: e.Port})
		}
	}
	for _, pc := range c.PortChecks {
		if a, err := netip.ParseAddr(pc.Address); err == nil {
			plan.PortChecks = append(plan.PortChecks, runner.PortCheck{Target: pc.Target, Address: a, Port: pc.Port, Transport: pc.Transport})
		}
	}
	for _, tr := range c.Traces {
		a, err := netip.ParseAddr(tr.Address)
		if err != nil {
			continue
		}
		req := runner.TraceRequest{Target: tr.Target, Test: netip.AddrPortFrom(a, uint16(tr.Port)), TCPPort: tr.TCPPort, ControlTarget: tr.ControlTarget, Transport: tr.Transport, Payload: tr.Payload}
		if ctl, err := netip.ParseAddr(tr.ControlAddress); err == nil {
			req.Control = ctl
		}
		if ref, err := netip.ParseAddr(tr.ReferenceAddress); err == nil && tr.ReferencePort > 0 && tr.ReferencePort < 65536 {
			req.ReferenceTarget, req.Reference = tr.ReferenceTarget, netip.AddrPortFrom(ref, uint16(tr.ReferencePort))
		}
		plan.Traces = append(plan.Traces, req)
	}
	for _, rt := range c.ResetTraces {
		if a, err := netip.ParseAddr(rt.Address); err == nil {
			plan.ResetTraces = append(plan.ResetTraces, runner.ResetTraceRequest{Target: rt.Target, Dst: netip.AddrPortFrom(a, uint16(rt.Port))})
		}
	}
	for _, tr := range c.TCPTraces {
		a, err := netip.ParseAddr(tr.Address)
		if err != nil {
			continue
		}
		req := runner.TCPTraceRequest{Target: tr.Target, Test: netip.AddrPortFrom(a, uint16(tr.Port)), OpenPort: tr.OpenPort, ControlTarget: tr.ControlTarget}
		if ctl, err := netip.ParseAddr(tr.ControlAddress); err == nil {
			req.Control = ctl
		}
		plan.TCPTraces = append(plan.TCPTraces, req)
	}
	return plan, nil
}
