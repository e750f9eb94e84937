package runner

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/catalog"
	"github.com/reachprobe/reachprobe/probes/dnsprobe"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// refusingCatalog is one TCP target at a loopback port nothing listens on,
// resolved by a loopback DNS server: connects are refused at once, so the
// tests need no timeout.
func refusingCatalog(t *testing.T) (measurements.Catalog, *dnsprobe.Resolver, netip.AddrPort) {
	t.Helper()
	closed, err := probetest.StartRefusingPort()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := probetest.StartDNS("127.0.0.1:0", probetest.Zone{"refused.test": {Addrs: []netip.Addr{closed.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	text := fmt.Sprintf("[target refused]\ngroup = push\nhost = refused.test\nports = %d\ntransports = tcp\nnetworks = 127.0.0.0/8\n", closed.Port())
	cat, err := catalog.Parse("refused", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	system := systemResolver(srv.Addr())
	return cat, &dnsprobe.Resolver{Nameservers: []string{srv.Addr()}, System: system, ListenWindow: -1}, closed
}

func TestConfirmationPass(t *testing.T) {
	cat, res, ap := refusingCatalog(t)
	tests := []struct {
		name        string
		plan        ConfirmPlan
		wantConfirm int // confirmation observations
		wantTold    bool
	}{
		{"empty plan: no second pass", ConfirmPlan{}, 0, false},
		{"an endpoint measured again", ConfirmPlan{Endpoints: []ConfirmEndpoint{{Target: "refused", Address: ap.Addr(), Port: int(ap.Port())}}}, 1, true},
		{"a port check toward a control address", ConfirmPlan{PortChecks: []PortCheck{{Target: "refused", Address: ap.Addr(), Port: int(ap.Port()), Transport: "tcp"}}}, 1, true},
		{"targets the catalog lacks are dropped", ConfirmPlan{Endpoints: []ConfirmEndpoint{{Target: "nosuch", Address: ap.Addr(), Port: 1}}}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &memRecorder{}
			told := false
			r := &Runner{Catalog: cat, Resolver: res, Recorder: rec, ConfirmDelay: -1,
				Confirm:    func(context.Context) (ConfirmPlan, error) { return tt.plan, nil },
				Confirming: func(ConfirmPlan, time.Duration) { told = true }}
			if _, err := r.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, o := range rec.obs {
				if !o.Confirmation {
					continue
				}
				n++
				if o.Repeat != 1 {
					t.Errorf("confirmation step at repetition %d, want 1 (after the only repetition)", o.Repeat)
				}
				if o.Failure != "connection_refused" {
					t.Errorf("confirmation step failed with %q, want connection_refused", o.Failure)
				}
				if o.PortCheck != (len(tt.plan.PortChecks) > 0) || o.PortCheck && !o.Control {
					t.Errorf("port check flags: PortCheck %v Control %v", o.PortCheck, o.Control)
				}
			}
			if n != tt.wantConfirm || told != tt.wantTold {
				t.Errorf("%d confirmation observations (told %v), want %d (told %v)", n, told, tt.wantConfirm, tt.wantTold)
			}
		})
	}
}

// TestConfirmationPlanBounded: however many endpoints a plan names (it
// comes from what the network answered), the pass measures at most
// maxConfirmSteps.
func TestConfirmationPlanBounded(t *testing.T) {
	cat, res, ap := refusingCatalog(t)
	var plan ConfirmPlan
	for range 10 * maxConfirmSteps {
		plan.Endpoints = append(plan.Endpoints, ConfirmEndpoint{Target: "refused", Address: ap.Addr(), Port: int(ap.Port())})
	}
	rec := &memRecorder{}
	r := &Runner{Catalog: cat, Resolver: res, Recorder: rec, ConfirmDelay: -1, Parallel: 8,
		Confirm: func(context.Context) (ConfirmPlan, error) { return plan, nil }}
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, o := range rec.obs {
		if o.Confirmation {
			n++
		}
	}
	if n != maxConfirmSteps {
		t.Errorf("%d confirmation steps, want the cap %d", n, maxConfirmSteps)
	}
}

func TestConfirmationPlanError(t *testing.T) {
	cat, res, _ := refusingCatalog(t)
	r := &Runner{Catalog: cat, Resolver: res, Recorder: &memRecorder{}, ConfirmDelay: -1,
		Confirm: func(context.Context) (ConfirmPlan, error) { return ConfirmPlan{}, fmt.Errorf("database gone") }}
	_, err := r.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "confirmation pass") {
		t.Errorf("Run = %v, want an error naming the confirmation pass", err)
	}
}
