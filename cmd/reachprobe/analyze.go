package main

import (
	"context"
	"encoding/json"
	"errors"
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
	format := fs.String("format", "text", "output format: text or json")
	since := fs.Duration("since", 0, "judge every run started within this `DURATION` (e.g. 168h) and show their history")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return usageError{fmt.Errorf("analyze: --format %q: want text or json", *format)}
	}
	if len(pos) > 1 || (len(pos) == 1 && *since != 0) {
		return usageError{errors.New("analyze: give one RUN or --since, not both")}
	}
	if *since < 0 {
		return usageError{errors.New("analyze: --since must be positive")}
	}
	store, err := openStore(ctx, env, *db)
	if err != nil {
		return err
	}
	defer store.Close()

	var out analyzeOutput
	if *since > 0 {
		runs, err := store.RunsSince(ctx, time.Now().Add(-*since))
		if err != nil {
			return dbError{err}
		}
		var judged []analysis.RunVerdicts
		for _, r := range runs {
			if r.Status == measurements.RunRunning {
				continue // still being measured; judged once it ends
			}
			rep, err := judgeRun(ctx, store, r)
			if err != nil {
				return err
			}
			judged = append(judged, analysis.RunVerdicts{Run: r, Report: rep})
		}
		if len(judged) == 0 {
			return usageError{fmt.Errorf("analyze: no finished run in the last %s", *since)}
		}
		out.Report = judged[len(judged)-1].Report
		h := analysis.History(judged)
		out.History = &h
	} else {
		arg := "latest"
		if len(pos) == 1 {
			arg = pos[0]
		}
		run, err := lookupRun(ctx, store, arg)
		if err != nil {
			return err
		}
		if out.Report, err = judgeRun(ctx, store, run); err != nil {
			return err
		}
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

// analyzeRun reads one run's observations and the catalog it measured,
// and judges them.
func analyzeRun(ctx context.Context, store *measurements.Store, run measurements.Run) (analysis.Report, error) {
	obs, err := store.Observations(ctx, run.ID)
	if err != nil {
		return analysis.Report{}, dbError{err}
	}
	stored, err := store.Catalog(ctx, run.CatalogDigest)
	if err != nil {
		return analysis.Report{}, dbError{fmt.Errorf("run %d: %w", run.ID, err)}
	}
	cat, err := catalog.Parse(stored.Name, stored.Text)
	if err != nil {
		return analysis.Report{}, dbError{fmt.Errorf("run %d: its stored catalog no longer parses: %w", run.ID, err)}
	}
	return analysis.Analyze(analysis.Input{Run: run, Targets: cat.Targets, Observations: obs}), nil
}
