package analysis

import (
	mrand "math/rand/v2"
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

// Loss on the path to Apple only, as an honest network's congested or
// flapping peering link gives it: the controls and DNS stay clean, so the
// network reads as steady, and only Apple's steps fail, by timing out.
// Under the default run settings (one pass, then the confirmation pass)
// nothing may ever be called blocked.

// appleLossCases is how many random networks TestAppleLossNeverBlocks
// checks per burst mode; fewer with -short.
func appleLossCases() int {
	if testing.Short() {
		return 50
	}
	return 1000
}

// Burst modes of the Apple-path loss model.
const (
	burstNone         = iota // loss per packet only
	burstFirstPass           // a burst drops every Apple packet during the first pass
	burstConfirmation        // a burst drops every Apple packet during the confirmation pass
)

// stepLoss is the chance that a step fails when each packet is lost with
// probability p: the step needs one exchange (a packet out and its answer)
// to get through, and the probe's stack tries it tries times before its
// timeout (SYN retransmissions in a 5 s connect, QUIC and STUN
// retransmissions, a TLS flight retransmitted by TCP).
func stepLoss(p float64, tries int) float64 {
	through := (1 - p) * (1 - p)
	fail := 1.0
	for range tries {
		fail *= 1 - through
	}
	return fail
}

// stepTries is how many exchanges each step gets before its timeout.
var stepTries = map[measurements.Step]int{
	measurements.StepTCP: 3, measurements.StepTLS: 3, measurements.StepQUIC: 4, measurements.StepUDP: 4,
}

func appleLossWorld(rng *mrand.Rand, burst int) *world {
	p := 0.20 + 0.15*rng.Float64()
	w := &world{rng: rng}
	w.step = func(s *stepCtx) {
		if !forApple(s) {
			return
		}
		inBurst := burst == burstFirstPass && !s.confirm || burst == burstConfirmation && s.confirm
		if !inBurst && rng.Float64() >= stepLoss(p, stepTries[s.o.Step]) {
			return
		}
		op := map[measurements.Step]string{measurements.StepTCP: "connect", measurements.StepTLS: "tls_handshake",
			measurements.StepQUIC: "quic_handshake", measurements.StepUDP: "read"}[s.o.Step]
		s.fail(failTimeout, op)
	}
	return w
}

func TestAppleLossNeverBlocks(t *testing.T) {
	for _, burst := range []int{burstNone, burstFirstPass, burstConfirmation} {
		rng := mrand.New(mrand.NewPCG(uint64(burst)+11, 3))
		confirmed := 0
		for i := range appleLossCases() {
			in := appleLossWorld(rng, burst).build()
			for _, o := range in.Observations {
				if o.Confirmation {
					confirmed++
					break
				}
			}
			rep := Analyze(in)
			for _, s := range rep.Services {
				if s.Verdict == VerdictBlocked || s.Verdict == VerdictDegraded {
					t.Errorf("burst %d case %d: service %s %s (%s)", burst, i, s.Service, s.Verdict, s.Reason)
				}
			}
			for _, a := range rep.Apps {
				if a.Verdict == AppBlocked || a.Verdict == AppDegraded {
					t.Errorf("burst %d case %d: app %s %s (%s)", burst, i, a.App, a.Verdict, a.Reason)
				}
			}
			for _, e := range rep.Endpoints {
				if e.Verdict == VerdictBlocked {
					t.Errorf("burst %d case %d: endpoint %s %s:%d blocked (%s)", burst, i, e.Target, e.Address, e.Port, e.Evidence)
				}
			}
		}
		// The property is empty if no case ever needed confirming.
		if confirmed == 0 {
			t.Errorf("burst %d: no case made a confirmation pass", burst)
		}
		t.Logf("burst mode %d: %d of %d cases made a confirmation pass", burst, confirmed, appleLossCases())
	}
}
