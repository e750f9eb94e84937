package analysis

import (
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// lossSeeds is how many random networks each loss property is checked on;
// fewer with -short.
func lossSeeds() uint64 {
	if testing.Short() {
		return 20
	}
	return 150
}

// TestLossNeverBlocks checks the property the golden case shows once:
// random loss of 20% of steps, scattered over targets and controls alike,
// never yields a blocked verdict at any level, whether the run repeats its
// measurements or not.
func TestLossNeverBlocks(t *testing.T) {
	for _, repeats := range []int{1, 2, 3} {
		for seed := uint64(1); seed <= lossSeeds(); seed++ {
			rep := Analyze(lossyWorld(repeats, seed).build())
			if rep.Network.Status == NetworkOK {
				t.Errorf("repeats %d seed %d: network ok on a lossy link", repeats, seed)
			}
			for _, s := range rep.Services {
				if s.Verdict == VerdictBlocked || s.Verdict == VerdictDegraded {
					t.Errorf("repeats %d seed %d: service %s %s (%s)", repeats, seed, s.Service, s.Verdict, s.Reason)
				}
			}
			for _, e := range rep.Endpoints {
				if e.Verdict == VerdictBlocked {
					t.Errorf("repeats %d seed %d: endpoint %s %s:%d blocked (%s)", repeats, seed, e.Target, e.Address, e.Port, e.Evidence)
				}
			}
			for _, d := range rep.DNS {
				if d.Verdict == VerdictBlocked {
					t.Errorf("repeats %d seed %d: DNS of %s blocked (%s)", repeats, seed, d.Host, d.Evidence)
				}
			}
		}
	}
}

// TestLossDoesNotSpreadBlocking puts a real censor (push reset by server
// name) on a lossy link: whether or not the block is still seen, no other
// service may be called blocked.
func TestLossDoesNotSpreadBlocking(t *testing.T) {
	seen := 0
	for seed := uint64(1); seed <= lossSeeds(); seed++ {
		w := lossyWorld(3, seed)
		lossy := w.step
		w.step = func(s *stepCtx) {
			if s.o.Step == measurements.StepTLS && !s.o.Control && strings.HasSuffix(s.o.TLS.ServerName, "push.apple.com") {
				s.fail(failReset, "tls_handshake")
			}
			lossy(s)
		}
		rep := Analyze(w.build())
		for _, s := range rep.Services {
			switch {
			case s.Service == measurements.GroupPush && s.Verdict == VerdictBlocked:
				seen++
				if s.Methods[0] != MethodSNIFiltering {
					t.Errorf("seed %d: push blocked by %v, want sni.filtering first", seed, s.Methods)
				}
			case s.Service != measurements.GroupPush && (s.Verdict == VerdictBlocked || s.Verdict == VerdictDegraded):
				t.Errorf("seed %d: service %s %s (%s)", seed, s.Service, s.Verdict, s.Reason)
			}
		}
		for _, e := range rep.Endpoints {
			if e.Verdict == VerdictBlocked && e.Group != measurements.GroupPush {
				t.Errorf("seed %d: endpoint %s %s:%d blocked (%s)", seed, e.Target, e.Address, e.Port, e.Evidence)
			}
		}
	}
	t.Logf("push seen blocked in %d of %d lossy runs", seen, lossSeeds())
}
