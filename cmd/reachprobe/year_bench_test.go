package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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

// monthSince reaches the last month of it: the newest 720 runs, as the
// year database's runs end now.
const monthSince = "30d"

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
	_, observations := benchCounts(b, db)
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
		// The exports stream: their peak memory over a month (720 runs)
		// and over the year should be about the same.
		{"csv", []string{"report", "--format", "csv", "--since", yearSince, "-o", out}, false},
		{"csv_month", []string{"report", "--format", "csv", "--since", monthSince, "-o", out}, false},
		{"json", []string{"report", "--format", "json", "--since", yearSince, "-o", out}, false},
		{"json_month", []string{"report", "--format", "json", "--since", monthSince, "-o", out}, false},
		{"ooni", []string{"report", "--format", "ooni", "--since", yearSince, "-o", out}, false},
		{"ooni_month", []string{"report", "--format", "ooni", "--since", monthSince, "-o", out}, false},
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

// gnuTime is GNU time, which runForPeakRSS measures through when present.
const gnuTime = "/usr/bin/time"

// runForPeakRSS runs the binary with args, fails b unless it exits 0, and
// returns the process's peak resident set size in bytes.
//
// The rusage of a child this process starts overstates it: Go starts
// children with vfork, and at exec Linux keeps the high-water mark of the
// memory the child shared with its parent, so a small command reports
// this benchmark's own size. GNU time forks from a small process and
// reports the command's own peak; without it the figure is the rusage
// one, an upper bound, and the benchmark says so once.
func runForPeakRSS(b *testing.B, args []string) int64 {
	b.Helper()
	name, argv := binary, args
	var rssFile string
	if _, err := os.Stat(gnuTime); err == nil {
		rssFile = filepath.Join(b.TempDir(), "maxrss")
		name, argv = gnuTime, append([]string{"-f", "%M", "-o", rssFile, binary}, args...)
	} else {
		warnRusageOnce.Do(func() { b.Logf("no %s: peak-MiB is an upper bound (this benchmark's own size leaks into it)", gnuTime) })
	}
	cmd := exec.Command(name, argv...)
	cmd.Env = testEnviron(b.TempDir())
	start := time.Now()
	outb, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("%v after %s: %v: %s", args, time.Since(start), err, outb)
	}
	if rssFile != "" {
		kb, err := os.ReadFile(rssFile)
		if err != nil {
			b.Fatal(err)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(kb)), 10, 64)
		if err != nil {
			b.Fatalf("%s wrote %q: %v", gnuTime, kb, err)
		}
		return n << 10
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		b.Fatal("no resource usage for the process")
	}
	return int64(ru.Maxrss) << 10 // Linux reports kilobytes
}

var warnRusageOnce sync.Once

// oldBenchDBEnv names a database an earlier release wrote, for
// BenchmarkMigrate: the year database "make bench" of that release left
// in BENCH_CACHE, for instance.
const oldBenchDBEnv = "REACHPROBE_BENCH_OLD_DB"

// BenchmarkMigrate times the first open for writing of a copy of the
// database named by $REACHPROBE_BENCH_OLD_DB: the migrations it lacks,
// the packing of its runs' rows (migration 7) and the compaction after.
// It reports the file's bytes per run before and after.
func BenchmarkMigrate(b *testing.B) {
	old := os.Getenv(oldBenchDBEnv)
	if old == "" {
		b.Skipf("set %s to a database an earlier release wrote", oldBenchDBEnv)
	}
	before, err := os.Stat(old)
	if err != nil {
		b.Fatal(err)
	}
	var after int64
	runs := 0
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "old.db")
		if err := copyFile(old, path); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		store, err := measurements.Open(b.Context(), path)
		if err != nil {
			b.Fatal(err)
		}
		if err := store.Close(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		after = fi.Size()
		runs, _ = benchCounts(b, path)
		b.StartTimer()
	}
	b.ReportMetric(float64(before.Size())/float64(runs), "bytes/run-before")
	b.ReportMetric(float64(after)/float64(runs), "bytes/run-after")
}
