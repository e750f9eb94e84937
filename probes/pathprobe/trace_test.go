package pathprobe

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// scriptedProber answers as a path would: routers 1..dest-1, the
// destination at dest; the flow is dropped past hop stop (0: never); and
// lost reports the probes (TTL, count of earlier probes at that TTL)
// whose reply a rate limit swallows.
type scriptedProber struct {
	dest, stop int
	lost       func(ttl, n int) bool
	sent       map[int]int
}

func (p *scriptedProber) close() {}

func (p *scriptedProber) probe(ctx context.Context, ttl int, wait time.Duration) (Hop, error) {
	if p.sent == nil {
		p.sent = map[int]int{}
	}
	n := p.sent[ttl]
	p.sent[ttl]++
	h := Hop{TTL: ttl, Reply: ReplyNone}
	switch {
	case p.stop > 0 && ttl > p.stop:
	case p.lost != nil && p.lost(ttl, n):
	case ttl >= p.dest:
		h.Reply, h.From = ReplyDestination, dst
	default:
		h.Reply, h.From = ReplyTimeExceeded, router(ttl)
	}
	return h, nil
}

// TestTracerRounds runs the tracer's rounds and confirmation against
// scripted paths, in a bubble's fake time.
func TestTracerRounds(t *testing.T) {
	tests := []struct {
		name          string
		test, control *scriptedProber
		wantKnown     bool
		wantHop       int
	}{
		{"drop past hop 4", &scriptedProber{dest: 6, stop: 4}, &scriptedProber{dest: 6}, true, 4},
		{"hop 4's replies to the test lost in both rounds: the confirmation finds it",
			&scriptedProber{dest: 6, stop: 4, lost: func(ttl, n int) bool { return ttl == 4 && n < 2 }},
			&scriptedProber{dest: 6}, true, 4},
		// A router that never answers the test but always the control
		// looks exactly like an in-line filter just before it: the
		// records place the stop past hop 3, and no method could do
		// better. Rate limits are per destination, shared by both
		// flows, so they do not do this.
		{"hop 4 never answers the test: indistinguishable from a filter before it",
			&scriptedProber{dest: 6, stop: 4, lost: func(ttl, n int) bool { return ttl == 4 }},
			&scriptedProber{dest: 6}, true, 3},
		{"the first round's replies to the test lost at every hop: round 2 follows",
			&scriptedProber{dest: 6, stop: 4, lost: func(ttl, n int) bool { return n == 0 }},
			&scriptedProber{dest: 6}, true, 4},
		{"the control's replies lost past the stop in two of three tries",
			&scriptedProber{dest: 6, stop: 4},
			&scriptedProber{dest: 6, lost: func(ttl, n int) bool { return ttl == 5 && n < 2 }}, false, 0},
		{"a drop at the destination's hop is not placed",
			&scriptedProber{dest: 5, stop: 4}, &scriptedProber{dest: 5}, false, 0},
		{"no block", &scriptedProber{dest: 6}, &scriptedProber{dest: 6}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := Config{Budget: NewBudget(DefaultMaxProbes, time.Hour, DefaultProbeInterval)}.withDefaults()
				cfg.Test.Dst, cfg.Control.Dst = netipPortOf(dst, 3478), netipPortOf(dst, 443)
				tr := &Trace{}
				tc := &tracer{cfg: cfg, probers: [2]prober{tt.test, tt.control}, trace: tr}
				if err := tc.run(context.Background()); err != nil {
					t.Fatal(err)
				}
				stop := Decide(tr.Hops, cfg.destination())
				if stop.Known != tt.wantKnown || stop.Hop != tt.wantHop {
					t.Errorf("stop %+v, want known %v at hop %d; hops %+v", stop, tt.wantKnown, tt.wantHop, tr.Hops)
				}
				if tt.wantKnown && stop.Addr != router(tt.wantHop) {
					t.Errorf("stop at %v, want %v", stop.Addr, router(tt.wantHop))
				}
			})
		})
	}
}
