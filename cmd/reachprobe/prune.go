package main

// # Retention
//
// prune deletes the observations of runs started before a cutoff, and
// keeps each run's row and a summary: the run's analysis report without
// its per-name and per-endpoint evidence, which is what the history of
// "analyze --since" reads. A run is judged from its observations before
// they are deleted, with exactly the catalog it measured; a run that can
// no longer be judged keeps its observations. Then the file is compacted.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// ageFlag is a positive duration that also takes whole days ("90d"),
// which Go durations lack and retention is counted in.
type ageFlag time.Duration

var daysPattern = regexp.MustCompile(`^([0-9]{1,5})d$`)

// parseAge reads "90d" or a Go duration ("2160h"); it must be positive.
func parseAge(s string) (time.Duration, error) {
	if m := daysPattern.FindStringSubmatch(s); m != nil {
		days, _ := strconv.Atoi(m[1])
		if days == 0 {
			return 0, fmt.Errorf("%q: want a positive duration", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 90d or 2160h", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: want a positive duration", s)
	}
	return d, nil
}

// formatAge writes d in days when it is a whole number of them, else as
// shortDuration does.
func formatAge(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return shortDuration(d)
}

// shortDuration writes d as Go does, without zero minutes and seconds
// ("15m", "6h", not "15m0s", "6h0m0s"); time.ParseDuration reads it back.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (a *ageFlag) String() string {
	if *a == 0 {
		return ""
	}
	return formatAge(time.Duration(*a))
}

func (a *ageFlag) Set(s string) error {
	d, err := parseAge(s)
	if err != nil {
		return err
	}
	*a = ageFlag(d)
	return nil
}

func cmdPrune(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "prune", "--older-than DURATION [flags]",
		"Deletes the observations of runs started more than DURATION ago and gives the space back to the\nfile system. Each run stays listed, with its app and service verdicts, so \"analyze --since\" still\nshows its history. Like run, it waits for (or refuses) a run holding the database.")
	var olderThan ageFlag
	fs.Var(&olderThan, "older-than", "prune runs started more than `DURATION` ago: 90d, or a Go duration such as 2160h")
	db := fs.String("db", "", "database `FILE` (default: the config file's db, or $XDG_DATA_HOME/reachprobe/reachprobe.db)")
	configPath := fs.String("config", "", "config `FILE` naming the database (default "+configFileHelp+")")
	wait := fs.Duration("wait", 0, "when a run holds the database, wait up to `DURATION` for it (default: exit at once with code 5)")
	dryRun := fs.Bool("dry-run", false, "say what would be pruned; change nothing")
	var format logFormat
	fs.Var(&format, "log-format", "`FORMAT` of what is written to standard error: text, or json (one object per line and event)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := newEventLog(env.stderr, format)
	env.events = log
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("prune: unexpected argument %q", fs.Arg(0))}
	}
	if olderThan == 0 {
		return usageError{errors.New("prune: give --older-than DURATION (for example 90d)")}
	}
	if *wait < 0 {
		return usageError{errors.New("prune: --wait must not be negative")}
	}
	path := *db
	if path == "" {
		var err error
		if path, err = configuredDBPath(env, *configPath); err != nil {
			return err
		}
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return usageError{fmt.Errorf("prune: no database at %s (give --db, or db in the config file)", path)}
	}
	store, release, err := openLocked(ctx, env, log, path, *wait)
	if err != nil {
		return err
	}
	defer release()
	if !*dryRun {
		// Holding the lock, a run still "running" is one that was killed.
		if _, err := store.MarkUnfinishedRuns(ctx, time.Now().UTC()); err != nil {
			return dbError{explainWriteError(err)}
		}
	}
	return pruneDatabase(ctx, env, store, log, time.Duration(olderThan), *dryRun, true)
}

// pruneResult is what pruneStore did, or would do.
type pruneResult struct {
	Cutoff       time.Time
	RunIDs       []int64
	Observations int
	// Kept are runs that were due but could not be judged, with why.
	Kept                  []string
	SizeBefore, SizeAfter int64
}

// pruneDatabase prunes the runs started more than olderThan ago, reports
// it as an event and, when show, on standard output.
func pruneDatabase(ctx context.Context, env *environ, store *measurements.Store, log *eventLog, olderThan time.Duration, dryRun, show bool) error {
	now := time.Now().UTC()
	res, err := pruneStore(ctx, store, now.Add(-olderThan), now, dryRun)
	for _, k := range res.Kept {
		log.warn(k)
	}
	if err != nil {
		return dbError{explainWriteError(err)}
	}
	log.event("pruned", "dry_run", dryRun, "older_than", formatAge(olderThan), "cutoff", res.Cutoff, "runs", len(res.RunIDs),
		"observations", res.Observations, "bytes_before", res.SizeBefore, "bytes_after", res.SizeAfter)
	if !show {
		return nil
	}
	switch {
	case len(res.RunIDs) == 0:
		fmt.Fprintf(env.stdout, "no run started before %s has observations left to prune\n", res.Cutoff.Format(time.DateTime))
	case dryRun:
		fmt.Fprintf(env.stdout, "would prune %d observations of %d runs started before %s UTC: %s\n",
			res.Observations, len(res.RunIDs), res.Cutoff.Format(time.DateTime), runList(res.RunIDs))
	default:
		fmt.Fprintf(env.stdout, "pruned %d observations of %d runs started before %s UTC (%s); their verdicts are kept\n",
			res.Observations, len(res.RunIDs), res.Cutoff.Format(time.DateTime), runList(res.RunIDs))
		fmt.Fprintf(env.stdout, "database: %s before, %s after\n", byteSize(res.SizeBefore), byteSize(res.SizeAfter))
	}
	return nil
}

// pruneStore summarises and prunes every finished run started before
// cutoff that still has observations, oldest first, then compacts the
// file if anything was pruned. When there is something to prune, it runs
// PRAGMA quick_check first and prunes nothing from a corrupt file. A run whose summary cannot be made keeps
// its observations and is listed in Kept. On an error, the runs pruned
// before it stay pruned.
func pruneStore(ctx context.Context, store *measurements.Store, cutoff, now time.Time, dryRun bool) (pruneResult, error) {
	res := pruneResult{Cutoff: cutoff}
	var err error
	if res.SizeBefore, err = store.DiskSize(); err != nil {
		return res, err
	}
	res.SizeAfter = res.SizeBefore
	runs, err := store.RunsSince(ctx, time.Time{})
	if err != nil {
		return res, err
	}
	checked := false
	for _, r := range runs {
		if !r.Started.Before(cutoff) || r.Observations == 0 || r.Status == measurements.RunRunning {
			continue
		}
		if !dryRun && !checked {
			// Deleting and compacting a damaged file could lose what is
			// still readable: check every page before the first delete.
			if err := store.CheckIntegrity(ctx, measurements.QuickCheck); err != nil {
				return res, fmt.Errorf("nothing was pruned: %w", err)
			}
			checked = true
		}
		if dryRun {
			res.RunIDs = append(res.RunIDs, r.ID)
			res.Observations += r.Observations
			continue
		}
		rep, err := analyzeRun(ctx, store, r)
		if err != nil {
			res.Kept = append(res.Kept, fmt.Sprintf("run %d keeps its observations: it cannot be judged: %v", r.ID, err))
			continue
		}
		summary, err := json.Marshal(prunedSummary{Report: compactReport(rep, r.Observations, now), AnalysisVersion: analysis.Version})
		if err != nil {
			return res, fmt.Errorf("run %d: encoding its summary: %w", r.ID, err)
		}
		n, err := store.PruneRun(ctx, r.ID, summary, now)
		if err != nil {
			return res, err
		}
		res.RunIDs = append(res.RunIDs, r.ID)
		res.Observations += n
	}
	if dryRun || len(res.RunIDs) == 0 {
		return res, nil
	}
	if err := store.Compact(ctx); err != nil {
		return res, fmt.Errorf("the observations were pruned, but %w", err)
	}
	res.SizeAfter, err = store.DiskSize()
	return res, err
}

// compactReport is what is kept of a run's report once its observations
// are gone: the verdicts on apps, services and the network, without the
// per-name and per-endpoint evidence, which is most of the report's size.
func compactReport(rep analysis.Report, observations int, pruned time.Time) analysis.Report {
	rep.DNS = []analysis.DNSVerdict{}
	rep.Endpoints = []analysis.EndpointVerdict{}
	rep.Notes = append(slices.Clone(rep.Notes), fmt.Sprintf(
		"the %d observations of this run were pruned on %s; only its app, service and network verdicts were kept",
		observations, pruned.UTC().Format(time.DateOnly)))
	return rep
}

// prunedSummary is the document kept of a pruned run (its summary): its
// compact report and the Version of the analysis that made it. A summary
// kept before the version was has none: 0.
type prunedSummary struct {
	analysis.Report
	AnalysisVersion int `json:"analysis_version"`
}

// judgeRun is analyzeRun for any run: a run whose observations were
// pruned is judged by the summary kept when they were, and keeps the
// version of the analysis that made it. The report is whole.
func judgeRun(ctx context.Context, store *measurements.Store, run measurements.Run) (analysis.RunVerdicts, error) {
	if run.Observations == 0 {
		rs, err := store.RunSummary(ctx, run.ID)
		switch {
		case err == nil:
			var sum prunedSummary
			if err := json.Unmarshal(rs.Summary, &sum); err != nil {
				return analysis.RunVerdicts{}, storeError(store, fmt.Errorf("run %d: its stored summary does not decode: %w", run.ID, err))
			}
			sum.Report.RunStatus = run.Status
			return analysis.RunVerdicts{Run: run, Report: sum.Report, AnalysisVersion: sum.AnalysisVersion, Pruned: true}, nil
		case !errors.Is(err, measurements.ErrNoSummary):
			return analysis.RunVerdicts{}, storeError(store, err)
		}
	}
	rep, err := analyzeRun(ctx, store, run)
	return analysis.RunVerdicts{Run: run, Report: rep, AnalysisVersion: analysis.Version}, err
}

// runList writes run ids compactly: "1-4, 7".
func runList(ids []int64) string {
	var parts []string
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("runs %d-%d", ids[i], ids[j]))
		} else {
			parts = append(parts, fmt.Sprintf("run %d", ids[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// byteSize writes n in kB or MB.
func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
