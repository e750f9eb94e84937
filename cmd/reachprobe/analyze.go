package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/catalog"
)

// analyzeOutput is analyze's JSON: the report of one run (its fields at
// the top level) and, with --since, the history of the runs in range.
type analyzeOutput struct {
	analysis.Report
	History *analysis.HistoryReport `json:"history,omitempty"`
}

func cmdAnalyze(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "analyze", "[RUN | --since DURATION] [flags]",
		"Judges a stored run: for push, identity and call, and for iMessage and FaceTime, whether they work,\nare degraded, blocked (with the method a censor used) or cannot be judged; then the evidence.\nRUN is a run number or \"latest\" (the default). With --since, the latest run in range is judged and\nthe history of every run in range follows.")
	db := fs.String("db", "", "database `FILE` (default $XDG_DATA_HOME/reachprobe/reachprobe.db)")
	format := choice(fs, "format", "text", []string{"text", "json"}, "output `FORMAT`: text or json")
	var since ageFlag
	fs.Var(&since, "since", "judge every finished run started within `DURATION` (7d, 168h) and show their history")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	store, err := openRuns(ctx, env, "analyze", *db)
	if err != nil {
		return err
	}
	defer store.Close()
	runs, err := selectRuns(ctx, env, store, "analyze", pos, time.Duration(since))
	if err != nil {
		return err
	}

	var out analyzeOutput
	// Only the latest run's whole report is kept; the others keep what
	// the history reads, so memory does not grow with their evidence, and
	// come from the verdicts kept under this analysis when there are.
	kept := map[int64][]byte{}
	if since > 0 {
		if kept, err = store.RunVerdicts(ctx, analysis.Version, runs[0].Started); err != nil {
			return storeError(store, err)
		}
	}
	judged := make([]analysis.RunVerdicts, 0, len(runs))
	for i, r := range runs {
		if doc, ok := kept[r.ID]; ok && i < len(runs)-1 {
			delete(kept, r.ID) // read once: its document can go
			rv, err := decodeVerdicts(r, doc)
			if err != nil {
				return storeError(store, err)
			}
			judged = append(judged, rv)
			continue
		}
		rv, err := judgeRun(ctx, store, r)
		if err != nil {
			return err
		}
		out.Report = rv.Report
		judged = append(judged, rv.Slim())
	}
	if since > 0 {
		h := analysis.History(judged)
		out.History = &h
	}

	if *format == "json" {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if err := out.Report.WriteText(env.stdout); err != nil {
		return err
	}
	if out.History != nil {
		fmt.Fprintln(env.stdout)
		return out.History.WriteText(env.stdout)
	}
	return nil
}

// selectRuns returns the runs a command works on, oldest first: every
// finished run started within since (a run still being measured is left
// for later), or else the one RUN of pos, "latest" when pos is empty.
func selectRuns(ctx context.Context, env *environ, store *measurements.Store, cmd string, pos []string, since time.Duration) ([]measurements.Run, error) {
	if len(pos) > 1 || (len(pos) == 1 && since > 0) {
		return nil, usageError{fmt.Errorf("%s: give one RUN or --since, not both", cmd)}
	}
	if since <= 0 {
		arg := "latest"
		if len(pos) == 1 {
			arg = pos[0]
		}
		run, err := lookupRun(ctx, env, store, cmd, arg)
		if err != nil {
			return nil, err
		}
		return []measurements.Run{run}, nil
	}
	all, err := store.RunsSince(ctx, time.Now().Add(-since))
	if err != nil {
		return nil, storeError(store, err)
	}
	var runs []measurements.Run
	for _, r := range all {
		if r.Status != measurements.RunRunning {
			runs = append(runs, r)
		}
	}
	if len(runs) == 0 {
		if _, err := lookupRun(ctx, env, store, cmd, "latest"); err != nil {
			return nil, err // no runs at all, or the database failed
		}
		return nil, usageError{fmt.Errorf("%s: no finished run in the last %s in the database %s (\"reachprobe list\" shows them)", cmd, formatAge(since), store.Path())}
	}
	return runs, nil
}

// runTargets reads and parses the catalog run measured, as stored with it.
func runTargets(ctx context.Context, store *measurements.Store, run measurements.Run) ([]measurements.Target, error) {
	stored, err := store.Catalog(ctx, run.CatalogDigest)
	if err != nil {
		return nil, storeError(store, fmt.Errorf("run %d: %w", run.ID, err))
	}
	cat, err := catalog.Parse(stored.Name, stored.Text)
	if err != nil {
		return nil, storeError(store, fmt.Errorf("run %d: its stored catalog no longer parses: %w", run.ID, err))
	}
	return cat.Targets, nil
}

// analyzeRun reads one run's observations and the catalog it measured,
// and judges them.
func analyzeRun(ctx context.Context, store *measurements.Store, run measurements.Run) (analysis.Report, error) {
	obs, err := store.Observations(ctx, run.ID)
	if err != nil {
		return analysis.Report{}, storeError(store, err)
	}
	targets, err := runTargets(ctx, store, run)
	if err != nil {
		return analysis.Report{}, err
	}
	return analysis.Analyze(analysis.Input{Run: run, Targets: targets, Observations: obs}), nil
}
