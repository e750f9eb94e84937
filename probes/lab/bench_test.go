//go:build lab

package lab

import (
	"slices"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// peerCleanRun is the peer's figure for a clean run: OONI's miniooni, warm
// state, one invocation per experiment, does its 51 checks in 0.49 s
// (issue 11).
const peerCleanRun = 490 * time.Millisecond

// BenchmarkLabCleanRun runs "reachprobe run" with the embedded default
// catalog in a clean lab, each time on a fresh database, as
// TestLabDefaultCatalog's clean case does, and reports the median and
// slowest wall time of the command (the process, from exec to exit,
// after one untimed run) beside the peer's:
//
//	flock /tmp/reachprobe-lab.lock go test -tags lab -run '^$' -bench BenchmarkLabCleanRun -benchtime 10x ./probes/lab/
//
// It needs the lab (root, iproute2, iptables) and skips, saying why,
// without it.
func BenchmarkLabCleanRun(b *testing.B) {
	plan := defaultCatalogPlan(b)
	l := newLab(b, plan)
	l.startInternet(false)
	// One run first, untimed: the first exec reads the binary from disk
	// and the lab's servers start cold. The peer's figure is warm too.
	if r := l.runProbeCatalog(1, ""); r.err != nil {
		b.Fatalf("reachprobe run: %v\n%s\n%s", r.err, r.stdout, r.stderr)
	}
	var took []time.Duration
	b.ResetTimer()
	for range b.N {
		r := l.runProbeCatalog(1, "") // a new database each time
		if r.err != nil {
			b.Fatalf("reachprobe run: %v\n%s\n%s", r.err, r.stdout, r.stderr)
		}
		took = append(took, r.duration)
	}
	b.StopTimer()
	// The last run must have been clean: complete, and nothing suspect
	// enough to measure again (the confirmation pass would add its
	// pause).
	r := l.runProbeCatalog(1, "")
	s, err := r.observations()
	if err != nil {
		b.Fatal(err)
	}
	if s.Run.Status != measurements.RunComplete {
		b.Fatalf("run status %q, want complete", s.Run.Status)
	}
	for _, o := range s.Observations {
		if o.Confirmation {
			b.Fatalf("%s %s measured again: the lab run is not clean", o.Target, o.Step)
		}
	}
	slices.Sort(took)
	b.ReportMetric(took[len(took)/2].Seconds(), "median-s/run")
	b.ReportMetric(took[len(took)-1].Seconds(), "max-s/run")
	b.ReportMetric(peerCleanRun.Seconds(), "peer-s/run")
}
