package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// yearRuns is a year of hourly runs.
const yearRuns = 8760

// yearSince reaches every run of the year database, even a cached one
// built weeks ago.
const yearSince = "400d"

// BenchmarkYear runs the reachprobe binary over a year of hourly runs of
// the default catalog (cachedBenchDB: "make bench" keeps it in
// $(BENCH_CACHE)) and reports, for each command, its time, the peak RSS
// of its process and, for analyze, the observations it judged per second;
// and the database's bytes per run. prune prunes the older half of a copy.
func BenchmarkYear(b *testing.B) {
	db := cachedBenchDB(b, yearRuns)
	fi, err := os.Stat(db)
	if err != nil {
		b.Fatal(err)
	}
	observations := benchObservationCount(b, db)
	b.Logf("database: %d runs, %d observations, %.1f MB, %.0f bytes/run", yearRuns, observations, float64(fi.Size())/1e6, float64(fi.Size())/yearRuns)
	out := filepath.Join(b.TempDir(), "report")
	cases := []struct {
		name   string
		args   []string
		writes bool // works on a fresh copy each time
	}{
		{"list", []string{"list"}, false},
		{"list_json", []string{"list", "--json"}, false},
		{"analyze", []string{"analyze", "--since", yearSince}, false},
		{"html", []string{"report", "--format", "html", "--since", yearSince, "-o", out}, false},
		{"csv", []string{"report", "--format", "csv", "--since", yearSince, "-o", out}, false},
		{"prune_half", []string{"prune", "--older-than", "183d"}, true},
	}
	// A copy whose runs' verdicts were kept, as "run" keeps them.
	kept := filepath.Join(b.TempDir(), "kept.db")
	if err := copyFile(db, kept); err != nil {
		b.Fatal(err)
	}
	store, err := measurements.Open(b.Context(), kept)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	n, err := keepVerdicts(b.Context(), store, nil)
	store.Close()
	if err != nil || n == 0 {
		b.Fatalf("keepVerdicts = %d, %v", n, err)
	}
	b.Logf("keeping the verdicts of %d runs took %s (once per analysis version)", n, time.Since(start).Round(time.Second))
	for _, c := range []struct {
		name string
		args []string
	}{
		{"analyze_kept", []string{"analyze", "--since", yearSince}},
		{"html_kept", []string{"report", "--format", "html", "--since", yearSince, "-o", out}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var peak int64
			for b.Loop() {
				peak = max(peak, runForPeakRSS(b, append(c.args, "--db", kept)))
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
		})
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			path := db
			var peak int64
			for b.Loop() {
				if c.writes {
					b.StopTimer()
					path = filepath.Join(b.TempDir(), "copy.db")
					if err := copyFile(db, path); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				peak = max(peak, runForPeakRSS(b, append(c.args, "--db", path)))
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
			b.ReportMetric(float64(fi.Size())/yearRuns, "bytes/run")
			if c.name == "analyze" {
				b.ReportMetric(float64(observations)*float64(b.N)/b.Elapsed().Seconds(), "obs/s")
			}
		})
	}
}

// runForPeakRSS runs the binary with args, fails b unless it exits 0, and
// returns the process's peak resident set size in bytes.
func runForPeakRSS(b *testing.B, args []string) int64 {
	b.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = testEnviron(b.TempDir())
	start := time.Now()
	outb, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("%v after %s: %v: %s", args, time.Since(start), err, outb)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		b.Fatal("no resource usage for the process")
	}
	return int64(ru.Maxrss) << 10 // Linux reports kilobytes
}
