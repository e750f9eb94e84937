package measurements

// # Stored verdicts
//
// Judging a run means decoding its few hundred observations; a history of
// a year of hourly runs would judge 8760 runs each time it is read. So the
// caller may keep what it judged of a run (SetRunVerdicts): an opaque JSON
// document under the version of the analysis that made it. A reader asks
// for the documents of one version (RunVerdicts) and judges again the runs
// without one. This package never reads the documents: it knows no
// verdicts.

import (
	"context"
	"fmt"
	"time"
)

// SetRunVerdicts keeps doc, a JSON document the caller made by judging
// run id with analysis version, replacing what was kept before. A run
// still RunRunning is refused: its verdicts may still change.
func (s *Store) SetRunVerdicts(ctx context.Context, id int64, version int, doc []byte) error {
	res, err := s.db.ExecContext(ctx, `INSERT INTO run_verdicts (run_id, analysis_version, verdicts)
SELECT id, ?, ? FROM runs WHERE id = ? AND status != ?
ON CONFLICT (run_id) DO UPDATE SET analysis_version = excluded.analysis_version, verdicts = excluded.verdicts`,
		version, string(doc), id, RunRunning)
	if err != nil {
		return fmt.Errorf("storing the verdicts of run %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("storing the verdicts of run %d: no such finished run", id)
	}
	return nil
}

// RunVerdicts returns the documents kept by SetRunVerdicts for analysis
// version, of the runs started at or after since, by run id. A database
// from before they were kept gives none.
func (s *Store) RunVerdicts(ctx context.Context, version int, since time.Time) (map[int64][]byte, error) {
	out := map[int64][]byte{}
	if s.version < 6 {
		return out, nil
	}
	var from int64 = minStorableTime.UnixNano()
	if since.After(minStorableTime) && since.Before(maxStorableTime) {
		from = since.UnixNano()
	}
	rows, err := s.db.QueryContext(ctx, `SELECT v.run_id, v.verdicts FROM run_verdicts v JOIN runs r ON r.id = v.run_id
WHERE v.analysis_version = ? AND r.started >= ?`, version, from)
	if err != nil {
		return nil, fmt.Errorf("reading stored verdicts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var doc string
		if err := rows.Scan(&id, &doc); err != nil {
			return nil, fmt.Errorf("reading stored verdicts: %w", err)
		}
		out[id] = []byte(doc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading stored verdicts: %w", err)
	}
	return out, nil
}

// RunsToJudge lists, oldest first, the finished runs with observations
// that have no verdicts kept for analysis version.
func (s *Store) RunsToJudge(ctx context.Context, version int) ([]Run, error) {
	return s.queryRuns(ctx, selectRuns+`WHERE r.status != 'running' AND r.observation_count > 0
	AND NOT EXISTS (SELECT 1 FROM run_verdicts v WHERE v.run_id = r.id AND v.analysis_version = ?)
ORDER BY r.started, r.id`, version)
}
