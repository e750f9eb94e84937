package measurements

// # Retention
//
// Observations are most of a database's size, even packed (a few KB a
// run: see pack.go). Pruning deletes the observations of an old run but
// keeps its row in runs and a summary the caller made from them before
// they went (reachprobe keeps the run's service and app verdicts), so a
// history across months still has a point for every run. Compact then
// gives the freed pages back to the file system.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"
)

// ErrNoSummary: the run has no stored summary; its observations were never
// pruned.
var ErrNoSummary = errors.New("no summary stored for this run")

// RunSummary is what is kept of a run whose observations were pruned.
type RunSummary struct {
	RunID int64
	// Pruned is when the observations were deleted.
	Pruned time.Time
	// Observations is how many were deleted.
	Observations int
	// Summary is the JSON document the caller made from the observations
	// before they were deleted.
	Summary []byte
}

// PruneRun replaces the observations of run id by summary, a JSON document
// the caller made from them, and returns how many observations it deleted.
// The summary is stored and the observations deleted in one transaction,
// so a crash leaves both or neither.
//
// A run without observations (it measured nothing, or was pruned before)
// is left as it is, an earlier summary included, and PruneRun returns 0.
// A run still RunRunning is refused: its observations are still coming.
func (s *Store) PruneRun(ctx context.Context, id int64, summary []byte, pruned time.Time) (int, error) {
	if pruned.IsZero() {
		return 0, fmt.Errorf("measurements: pruning run %d: no prune time", id)
	}
	when, err := unixNanos(pruned)
	if err != nil {
		return 0, err
	}
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE, see dsn
	if err != nil {
		return 0, fmt.Errorf("pruning run %d: %w", id, err)
	}
	defer tx.Rollback() // no-op after Commit

	var status string
	var count int
	var packed int
	if s.version >= packsVersion {
		err = tx.QueryRowContext(ctx, `SELECT observations FROM observation_packs WHERE run_id = ?`, id).Scan(&packed)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("pruning run %d: %w", id, err)
		}
	}
	err = tx.QueryRowContext(ctx, `SELECT status, (SELECT count(*) FROM observations WHERE run_id = ?) FROM runs WHERE id = ?`,
		id, id).Scan(&status, &count)
	count += packed
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("pruning run %d: %w", id, ErrNoRun)
	case err != nil:
		return 0, fmt.Errorf("pruning run %d: %w", id, err)
	case status == RunRunning:
		return 0, fmt.Errorf("pruning run %d: it is still running", id)
	case count == 0:
		return 0, nil
	}
	// The CHECK constraint refuses a summary that is not JSON, and with it
	// the whole transaction: nothing is deleted without its summary.
	if _, err := tx.ExecContext(ctx, `INSERT INTO run_summaries (run_id, pruned, observations, summary) VALUES (?, ?, ?, ?)`,
		id, when, count, string(summary)); err != nil {
		return 0, fmt.Errorf("pruning run %d: storing its summary: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM observations WHERE run_id = ?`, id); err != nil {
		return 0, fmt.Errorf("pruning run %d: %w", id, err)
	}
	if packed > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM observation_packs WHERE run_id = ?`, id); err != nil {
			return 0, fmt.Errorf("pruning run %d: %w", id, err)
		}
		// The trigger counts deleted rows out; a pack has none.
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET observation_count = observation_count - ? WHERE id = ?`, packed, id); err != nil {
			return 0, fmt.Errorf("pruning run %d: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("pruning run %d: %w", id, err)
	}
	return count, nil
}

// RunSummary returns what was kept when the observations of run id were
// pruned, or an error wrapping ErrNoSummary.
func (s *Store) RunSummary(ctx context.Context, id int64) (RunSummary, error) {
	rs := RunSummary{RunID: id}
	if s.version < 2 { // a reader of a database from before pruning
		return RunSummary{}, fmt.Errorf("run %d: %w", id, ErrNoSummary)
	}
	var pruned int64
	var summary string
	err := s.db.QueryRowContext(ctx, `SELECT pruned, observations, summary FROM run_summaries WHERE run_id = ?`, id).
		Scan(&pruned, &rs.Observations, &summary)
	if errors.Is(err, sql.ErrNoRows) {
		return RunSummary{}, fmt.Errorf("run %d: %w", id, ErrNoSummary)
	}
	if err != nil {
		return RunSummary{}, fmt.Errorf("summary of run %d: %w", id, err)
	}
	rs.Pruned = fromUnixNanos(pruned)
	rs.Summary = []byte(summary)
	return rs, nil
}

// Compact gives the space of deleted rows back to the file system: it
// deletes the certificate chains no observation names any more, then VACUUM
// rewrites the database without its free pages, through the WAL; a
// truncating checkpoint then copies the rewrite into the file, shortens
// it, and empties the WAL. While it works it needs free disk space about
// the size of the database, and it waits for other connections' writes
// (BusyTimeout). A reader in another process can keep the checkpoint from
// finishing; the file then shrinks at a later checkpoint, and Compact
// reports no error.
func (s *Store) Compact(ctx context.Context) error {
	if err := deleteUnusedChains(ctx, s.db, s.version); err != nil {
		return fmt.Errorf("database %s: deleting the certificate chains of pruned observations: %w", s.path, err)
	}
	if _, err := s.db.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("database %s: reclaiming space: %w", s.path, err)
	}
	var busy, walFrames, checkpointed int
	if err := s.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &walFrames, &checkpointed); err != nil {
		return fmt.Errorf("database %s: checkpointing after reclaiming space: %w", s.path, err)
	}
	return nil
}

// compactIfMostlyFree compacts the database (Compact) when most of its
// pages are free: after migration 7 packed the rows of a database of an
// earlier release, which leaves the file as large as before, its rows'
// pages free. A run's packing frees a few pages, which the next run's rows
// reuse: no reason to rewrite the file for those.
func (s *Store) compactIfMostlyFree(ctx context.Context) error {
	var pages, free int64
	if err := s.db.QueryRowContext(ctx, `SELECT * FROM pragma_page_count, pragma_freelist_count`).Scan(&pages, &free); err != nil {
		return fmt.Errorf("database %s: counting free pages: %w", s.path, err)
	}
	if free*2 <= pages {
		return nil
	}
	return s.Compact(ctx)
}

// DiskSize returns the bytes the database occupies on disk: its file and
// its WAL.
func (s *Store) DiskSize() (int64, error) {
	var total int64
	for _, suffix := range []string{"", "-wal"} {
		fi, err := os.Stat(s.path + suffix)
		if errors.Is(err, os.ErrNotExist) && suffix != "" {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("database %s: %w", s.path, err)
		}
		total += fi.Size()
	}
	return total, nil
}
