package measurements

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// BeginRun records the start of run r, with status RunRunning whatever
// r.Status says, and returns its id. It stores cat's text the first time
// its digest is seen, so the run can be re-analysed later against exactly
// the catalog it measured. r.CatalogDigest, when set, must equal
// cat.Digest, which must be the hex SHA-256 of cat.Text.
func (s *Store) BeginRun(ctx context.Context, r Run, cat Catalog) (int64, error) {
	if r.Started.IsZero() {
		return 0, errors.New("measurements: run has no start time")
	}
	started, err := unixNanos(r.Started)
	if err != nil {
		return 0, err
	}
	sum := sha256.Sum256(cat.Text)
	if want := hex.EncodeToString(sum[:]); cat.Digest != want {
		return 0, fmt.Errorf("measurements: catalog %q has digest %q, its text hashes to %q", cat.Name, cat.Digest, want)
	}
	if r.CatalogDigest == "" {
		r.CatalogDigest = cat.Digest
	}
	if r.CatalogDigest != cat.Digest {
		return 0, fmt.Errorf("measurements: run names catalog digest %q, catalog has %q", r.CatalogDigest, cat.Digest)
	}
	text := cat.Text
	if text == nil {
		text = []byte{} // NOT NULL; a nil slice would bind as NULL
	}

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("beginning run: %w", err)
	}
	defer tx.Rollback() // no-op after Commit
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO catalogs (digest, name, text) VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING`,
		cat.Digest, cat.Name, text); err != nil {
		return 0, fmt.Errorf("beginning run: storing catalog: %w", err)
	}
	res, err := tx.ExecContext(ctx,
		`INSERT INTO runs (started, status, software_version, catalog_digest, catalog_name) VALUES (?, ?, ?, ?, ?)`,
		started, RunRunning, r.SoftwareVersion, r.CatalogDigest, r.CatalogName)
	if err != nil {
		return 0, fmt.Errorf("beginning run: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("beginning run: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("beginning run: %w", err)
	}
	return id, nil
}

// EndRun records that run id ended at ended with status, one of
// RunComplete, RunInterrupted or RunFailed. It overwrites an earlier end:
// the process that made the run knows better than MarkUnfinishedRuns.
func (s *Store) EndRun(ctx context.Context, id int64, status string, ended time.Time) error {
	switch status {
	case RunComplete, RunInterrupted, RunFailed:
	default:
		return fmt.Errorf("measurements: cannot end run %d with status %q", id, status)
	}
	if ended.IsZero() {
		return fmt.Errorf("measurements: ending run %d: no end time", id)
	}
	end, err := unixNanos(ended)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE runs SET status = ?, ended = ? WHERE id = ?`, status, end, id)
	if err != nil {
		return fmt.Errorf("ending run %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("ending run %d: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("ending run %d: %w", id, ErrNoRun)
	}
	// Its rows are packed now it has ended. Rows that cannot be packed
	// stay as they are, as readable; any other failure leaves them too,
	// for the next Open to pack.
	if s.version < packsVersion {
		return nil
	}
	if _, err := s.packRun(ctx, id); err != nil && !errors.Is(err, errCannotPack) {
		return fmt.Errorf("run %d ended, its observations are kept unpacked: %w", id, err)
	}
	return nil
}

// MarkUnfinishedRuns turns every run still RunRunning into RunInterrupted,
// ended at ended, and returns how many there were. Call it when a new run
// starts: a run still "running" then was cut short by a crash or a kill -9
// before it could say so. ended is when the run was found unfinished, not
// when it stopped; its last observation tells that.
func (s *Store) MarkUnfinishedRuns(ctx context.Context, ended time.Time) (int, error) {
	if ended.IsZero() {
		return 0, errors.New("measurements: marking unfinished runs: no end time")
	}
	end, err := unixNanos(ended)
	if err != nil {
		return 0, err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE runs SET status = ?, ended = ? WHERE status = ?`,
		RunInterrupted, end, RunRunning)
	if err != nil {
		return 0, fmt.Errorf("marking unfinished runs: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("marking unfinished runs: %w", err)
	}
	if n > 0 && s.version >= packsVersion {
		if _, err := s.packEndedRuns(ctx); err != nil {
			return int(n), fmt.Errorf("marked %d unfinished runs, their observations are kept unpacked: %w", n, err)
		}
	}
	return int(n), nil
}

// selectRuns lists runs with their observation counts and, for a run
// still RunRunning, the end of its last observation; callers add the
// WHERE and ORDER BY clauses. Only a running run's observations are read
// (CASE evaluates its subquery for those alone): the count is kept in the
// runs table (schema version 4).
//
// The four text columns come back as one (runTexts), which splitRunTexts
// takes apart: fetching a text column costs about four times an integer
// one through the driver, and listing a year and more of runs is mostly
// that cost.
const selectRuns = `SELECT r.id, r.started, r.ended, ` + runTexts + `, r.observation_count,
	CASE WHEN r.status = 'running' THEN (SELECT max(o.started + o.duration_ns) FROM observations o WHERE o.run_id = r.id) END
FROM runs r `

// selectRunsV3 is selectRuns for a reader of a database from before the
// stored counts, which it counts.
const selectRunsV3 = `SELECT r.id, r.started, r.ended, ` + runTexts + `,
	(SELECT count(*) FROM observations o WHERE o.run_id = r.id),
	CASE WHEN r.status = 'running' THEN (SELECT max(o.started + o.duration_ns) FROM observations o WHERE o.run_id = r.id) END
FROM runs r `

// runTexts is a run's status, software version, catalog digest and
// catalog name in one text: the byte lengths of the first three, each
// ended by a comma, then the four one after the other. Lengths, not a
// separator, since a catalog's name may hold any character.
const runTexts = `printf('%d,%d,%d,', length(CAST(r.status AS BLOB)), length(CAST(r.software_version AS BLOB)),
	length(CAST(r.catalog_digest AS BLOB))) || r.status || r.software_version || r.catalog_digest || r.catalog_name`

// splitRunTexts takes a runTexts value apart into r.
func splitRunTexts(s string, r *Run) error {
	var lengths [3]int
	for i := range lengths {
		comma := strings.IndexByte(s, ',')
		n, err := strconv.Atoi(s[:max(comma, 0)])
		if comma < 0 || err != nil || n < 0 {
			return fmt.Errorf("run %d: malformed text columns", r.ID)
		}
		lengths[i], s = n, s[comma+1:]
	}
	if lengths[0]+lengths[1]+lengths[2] > len(s) {
		return fmt.Errorf("run %d: malformed text columns", r.ID)
	}
	r.Status, s = s[:lengths[0]], s[lengths[0]:]
	r.SoftwareVersion, s = s[:lengths[1]], s[lengths[1]:]
	r.CatalogDigest, r.CatalogName = s[:lengths[2]], s[lengths[2]:]
	return nil
}

// Runs lists every run, newest first, with Observations counted.
func (s *Store) Runs(ctx context.Context) ([]Run, error) {
	// Read in the table's order and sorted here: ordering by the index
	// of start times costs a table lookup per run, a third of the time.
	runs, err := s.queryRuns(ctx, selectRuns)
	slices.SortFunc(runs, func(a, b Run) int {
		if c := b.Started.Compare(a.Started); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	return runs, err
}

// RunsSince lists the runs started at or after t, oldest first, with
// Observations counted. A zero t lists every run.
func (s *Store) RunsSince(ctx context.Context, t time.Time) ([]Run, error) {
	var since int64 = math.MinInt64
	switch {
	case t.After(maxStorableTime):
		return nil, nil
	case t.After(minStorableTime):
		since = t.UnixNano()
	}
	return s.queryRuns(ctx, selectRuns+`WHERE r.started >= ? ORDER BY r.started, r.id`, since)
}

// Run returns run id with Observations counted, or an error wrapping
// ErrNoRun.
func (s *Store) Run(ctx context.Context, id int64) (Run, error) {
	runs, err := s.queryRuns(ctx, selectRuns+`WHERE r.id = ?`, id)
	if err != nil {
		return Run{}, err
	}
	if len(runs) == 0 {
		return Run{}, fmt.Errorf("run %d: %w", id, ErrNoRun)
	}
	return runs[0], nil
}

// LatestRun returns the run started last, with Observations counted, or an
// error wrapping ErrNoRun when there is none.
func (s *Store) LatestRun(ctx context.Context) (Run, error) {
	runs, err := s.queryRuns(ctx, selectRuns+`ORDER BY r.started DESC, r.id DESC LIMIT 1`)
	if err != nil {
		return Run{}, err
	}
	if len(runs) == 0 {
		return Run{}, fmt.Errorf("latest run: %w", ErrNoRun)
	}
	return runs[0], nil
}

// queryRuns runs a selectRuns query. For a reader told whether a writer
// is active (ReadOptions), a run still RunRunning while no writer held
// the database, before the query and after it, is returned as
// RunInterrupted, ended at the end of its last observation (or its start):
// its process was killed. Asking before and after keeps a run that starts
// or ends during the query from being taken for a killed one.
func (s *Store) queryRuns(ctx context.Context, query string, args ...any) ([]Run, error) {
	noWriter := s.writerActive != nil && !s.writerActive()
	runs, lastEnds, err := s.scanRuns(ctx, query, args...)
	if err != nil || !noWriter || s.writerActive() {
		return runs, err
	}
	for i := range runs {
		if runs[i].Status != RunRunning {
			continue
		}
		runs[i].Status = RunInterrupted
		runs[i].Ended = runs[i].Started
		if lastEnds[i].Valid {
			if end := fromUnixNanos(lastEnds[i].Int64); end.After(runs[i].Started) {
				runs[i].Ended = end
			}
		}
	}
	return runs, nil
}

// scanRuns reads the runs of a selectRuns query and the end of each one's
// last observation.
func (s *Store) scanRuns(ctx context.Context, query string, args ...any) ([]Run, []sql.NullInt64, error) {
	if s.version < 4 {
		query = selectRunsV3 + strings.TrimPrefix(query, selectRuns)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("listing runs: %w", err)
	}
	defer rows.Close()
	var (
		runs     []Run
		lastEnds []sql.NullInt64
	)
	for rows.Next() {
		var (
			r              Run
			started        int64
			ended, lastEnd sql.NullInt64
		)
		var texts string
		if err := rows.Scan(&r.ID, &started, &ended, &texts, &r.Observations, &lastEnd); err != nil {
			return nil, nil, fmt.Errorf("listing runs: %w", err)
		}
		if err := splitRunTexts(texts, &r); err != nil {
			return nil, nil, fmt.Errorf("listing runs: %w", err)
		}
		r.Started = fromUnixNanos(started)
		if ended.Valid {
			r.Ended = fromUnixNanos(ended.Int64)
		}
		runs = append(runs, r)
		lastEnds = append(lastEnds, lastEnd)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("listing runs: %w", err)
	}
	return runs, lastEnds, nil
}

// Catalog returns the catalog stored under digest, its Targets left nil
// (parsing is the probes package's job), or an error wrapping ErrNoCatalog.
func (s *Store) Catalog(ctx context.Context, digest string) (Catalog, error) {
	cat := Catalog{Digest: digest}
	err := s.db.QueryRowContext(ctx, `SELECT name, text FROM catalogs WHERE digest = ?`, digest).
		Scan(&cat.Name, &cat.Text)
	if errors.Is(err, sql.ErrNoRows) {
		return Catalog{}, fmt.Errorf("catalog %s: %w", digest, ErrNoCatalog)
	}
	if err != nil {
		return Catalog{}, fmt.Errorf("catalog %s: %w", digest, err)
	}
	return cat, nil
}
