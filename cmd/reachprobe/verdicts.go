package main

// # Stored verdicts
//
// A history reads every run in range; judging each from its observations
// is most of the time "analyze --since" and the reports take over months
// of runs. So a run's app and service verdicts, once judged, are kept in
// the database under analysis.Version (measurements.Store.SetRunVerdicts),
// and a history reads them instead of judging the run again. The writers
// keep them: after its run, "run" judges every finished run that has none
// under the current analysis (all of them, once, after an upgrade that
// changed the rules; a few hundred a second). Readers never write: a run
// without kept verdicts is judged from its observations, as before.

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// encodeVerdicts is what is kept of rep: what the history reads.
func encodeVerdicts(run measurements.Run, rep analysis.Report) ([]byte, error) {
	return json.Marshal(analysis.ForHistory(run, rep).Report)
}

// decodeVerdicts is encodeVerdicts' inverse, for verdicts kept under
// this analysis.Version. Verdicts are kept only of runs with
// observations, so a run without any now was pruned since.
func decodeVerdicts(run measurements.Run, doc []byte) (analysis.RunVerdicts, error) {
	var rep analysis.Report
	if err := json.Unmarshal(doc, &rep); err != nil {
		return analysis.RunVerdicts{}, fmt.Errorf("run %d: its stored verdicts do not decode: %w", run.ID, err)
	}
	rv := analysis.ForHistory(run, rep)
	rv.Pruned = run.Observations == 0
	return rv, nil
}

// keepVerdicts judges every finished run of store without verdicts kept
// under analysis.Version and keeps them, and returns how many it judged.
// judged holds reports already made of runs by their ID (the run that
// just ended, when its verdicts were told), used instead of judging those
// again. A run that cannot be judged is skipped: a history judges it
// again.
func keepVerdicts(ctx context.Context, store *measurements.Store, judged map[int64]analysis.Report) (int, error) {
	runs, err := store.RunsToJudge(ctx, analysis.Version)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range runs {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		rep, ok := judged[r.ID]
		if !ok {
			if rep, err = analyzeRun(ctx, store, r); err != nil {
				continue
			}
		}
		doc, err := encodeVerdicts(r, rep)
		if err != nil {
			return n, err
		}
		if err := store.SetRunVerdicts(ctx, r.ID, analysis.Version, doc); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
