//go:build lab

package lab

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/catalog"
)

// labBudget is the time the whole lab should stay well under; a lab
// slower than this is logged as a problem to fix (a scenario waiting on
// timeouts it does not need), not failed, since a loaded CI machine is
// slower.
const labBudget = 5 * time.Minute

// TestLab runs every scenario in a fresh lab.
func TestLab(t *testing.T) {
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	cat, err := catalog.Load(filepath.Join(moduleRoot, labCatalog))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(cat)
	if err != nil {
		t.Fatal(err)
	}

	started := time.Now()
	var mu sync.Mutex
	var timings []string
	// Each scenario has its own namespaces, so they run in parallel, as
	// many at once as go test's -parallel allows (GOMAXPROCS by default):
	// most of a scenario is waiting on the probe's timeouts.
	t.Run("scenario", func(t *testing.T) {
		for _, sc := range scenarios {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				began := time.Now()
				defer func() {
					mu.Lock()
					timings = append(timings, sc.name+" "+time.Since(began).Round(100*time.Millisecond).String())
					mu.Unlock()
				}()
				runScenario(t, plan, sc)
			})
		}
	})
	total := time.Since(started)
	t.Logf("lab took %s: %s", total.Round(100*time.Millisecond), strings.Join(timings, ", "))
	if total > labBudget {
		t.Logf("the lab took longer than its budget of %s: look for a scenario waiting on timeouts it does not need", labBudget)
	}
}

// runScenario builds a lab, applies the scenario's technique, runs the
// probe and checks the observations and analyze's verdicts.
func runScenario(t *testing.T, plan *Plan, sc scenario) {
	l := newLab(t, plan)
	l.startInternet(sc.ipv6)
	if sc.censor != nil {
		sc.censor(l)
	}
	repeat := max(sc.repeat, 1)
	if sc.during != nil {
		done := make(chan struct{})
		go func() { defer close(done); sc.during(l) }()
		t.Cleanup(func() { <-done })
	}
	r := l.runProbe(repeat)
	var analyzed string
	t.Cleanup(func() {
		if t.Failed() {
			l.logFailure(r, analyzed)
		}
	})
	t.Logf("reachprobe run took %s", r.duration.Round(100*time.Millisecond))
	if r.err != nil {
		t.Errorf("reachprobe run: %v", r.err)
	}

	stored, err := r.observations()
	if err != nil {
		t.Fatal(err)
	}
	if stored.Run.Status != measurements.RunComplete {
		t.Errorf("run status %q, want %q", stored.Run.Status, measurements.RunComplete)
	}
	for _, s := range missingSigns(sc.signs, stored.Observations) {
		t.Errorf("the technique did not apply as planned: no observation shows %s", s)
	}

	raw, rep, err := r.analyze()
	analyzed = raw
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: analyze says %s", sc.name, rep.summary())
	for _, p := range sc.want.check(rep) {
		t.Error(p)
	}
	if isHonest(sc) {
		for _, p := range rep.blockedAnywhere() {
			t.Errorf("an honest network called blocked: %s", p)
		}
	}
}

// isHonest reports whether sc is an honest network with a quirk (its name
// starts with "honest-"): no verdict of its analysis may be blocked, at
// any level. A verdict scoped as the network's own policy (restricted) is
// not a block.
func isHonest(sc scenario) bool { return strings.HasPrefix(sc.name, "honest-") }

// logFailure logs what makes a failed scenario diagnosable from CI's log.
func (l *lab) logFailure(r *probeRun, analyzed string) {
	t := l.t
	t.Logf("reachprobe run stderr:\n%s\nstdout:\n%s", r.stderr, r.stdout)
	if show, err := reachprobe("show", "--db="+r.db, "latest"); err != nil {
		t.Logf("reachprobe show latest: %v", err)
	} else {
		t.Logf("reachprobe show latest:\n%s", show)
	}
	t.Logf("reachprobe analyze --format json:\n%s", analyzed)
	t.Logf("censor's iptables-save:\n%s", l.rules())
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.helpers {
		if s := h.stderr.String(); s != "" {
			t.Logf("%s helper stderr:\n%s", h.role, s)
		}
	}
}
