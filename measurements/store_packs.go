package measurements

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// packsVersion is the schema version that added observation_packs.
const packsVersion = 7

// querier is what reading observations needs of a *sql.DB or *sql.Tx.
type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

// rowsOf reads the observation rows of run runID, in order of ID.
func rowsOf(ctx context.Context, q querier, runID int64) ([]packedObservation, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, step, grp, target, host, address, port, transport,
	repeat, control, started, duration_ns, failure, operation, skipped, details
FROM observations WHERE run_id = ? ORDER BY id`, runID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []packedObservation
	for rows.Next() {
		var (
			p       packedObservation
			details string
		)
		if err := scanColumns(rows, &p.packedColumns, &details); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(details), &p.Details); err != nil {
			return nil, fmt.Errorf("observation %d: decoding details: %w", p.ID, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// scanColumns scans a row's columns, id to skipped, then what follows
// them.
func scanColumns(rows *sql.Rows, c *packedColumns, rest ...any) error {
	var (
		step    string
		control int64
		started sql.NullInt64
	)
	if err := rows.Scan(append([]any{&c.ID, &step, &c.Group, &c.Target, &c.Host, &c.Address, &c.Port, &c.Transport,
		&c.Repeat, &control, &started, &c.Duration, &c.Failure, &c.Operation, &c.Skipped}, rest...)...); err != nil {
		return err
	}
	c.Step, c.Control = Step(step), control != 0
	if started.Valid {
		c.Started = &started.Int64
	}
	return nil
}

// packOf reads and decodes the pack of run runID; none is no error.
func packOf(ctx context.Context, q querier, runID int64) ([]packedObservation, error) {
	var blob []byte
	err := q.QueryRowContext(ctx, `SELECT pack FROM observation_packs WHERE run_id = ?`, runID).Scan(&blob)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	obs, err := decodePack(blob)
	if err != nil {
		return nil, fmt.Errorf("packed observations: %w", err)
	}
	return obs, nil
}

// mergeByID returns the observations of a pack and of rows in order of
// ID, each once: normally one of them is empty, and rows come after the
// pack. A reader in another process reads the rows, then the pack, each
// in a snapshot of its own; a run packed in between is in both, whole.
// (Read the other way round, it would be in neither.)
func mergeByID(packed, rows []packedObservation) []packedObservation {
	if len(packed) == 0 {
		return rows
	}
	all := append(packed, rows...)
	slices.SortStableFunc(all, func(a, b packedObservation) int { return cmp.Compare(a.ID, b.ID) })
	return slices.CompactFunc(all, func(a, b packedObservation) bool { return a.ID == b.ID })
}

// packRun packs the observation rows of run runID, which must have ended,
// after its pack if it has one already, and deletes the rows, in one
// transaction. It returns how many rows it packed; an error wrapping
// errCannotPack leaves the rows as they were.
func (s *Store) packRun(ctx context.Context, runID int64) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: no row comes in meanwhile
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() // no-op after Commit

	var status string
	if err := tx.QueryRowContext(ctx, `SELECT status FROM runs WHERE id = ?`, runID).Scan(&status); err != nil {
		return 0, err
	}
	if status == RunRunning {
		return 0, fmt.Errorf("%w: run %d is still running", errCannotPack, runID)
	}
	var (
		js       = []byte{'['}
		count    int
		lastID   int64
		hashes   []string
		oldChain string
		blob     []byte
	)
	switch err := tx.QueryRowContext(ctx, `SELECT observations, last_id, chains, pack FROM observation_packs WHERE run_id = ?`, runID).
		Scan(&count, &lastID, &oldChain, &blob); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return 0, err
	default:
		// Rows after a pack (a run ended twice): they go after its
		// observations.
		old, n, err := inflatePack(blob)
		if err != nil || n != uint64(count) || len(old) < 2 || old[len(old)-1] != ']' {
			return 0, fmt.Errorf("%w: its pack is damaged (%v)", errCannotPack, err)
		}
		if err := json.Unmarshal([]byte(oldChain), &hashes); err != nil {
			return 0, fmt.Errorf("%w: its pack's chains: %v", errCannotPack, err)
		}
		js = append(old[:len(old)-1], ',')
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, step, grp, target, host, address, port, transport,
	repeat, control, started, duration_ns, failure, operation, skipped, json(details), details ->> '$.chain'
FROM observations WHERE run_id = ? ORDER BY id`, runID)
	if err != nil {
		return 0, err
	}
	packed := 0
	for rows.Next() {
		var (
			c       packedColumns
			details []byte
			chain   sql.NullString
		)
		if err := scanColumns(rows, &c, &details, &chain); err != nil {
			rows.Close()
			return 0, err
		}
		if c.ID <= lastID {
			rows.Close()
			return 0, fmt.Errorf("%w: observation %d does not follow the %d packed", errCannotPack, c.ID, lastID)
		}
		if packed > 0 {
			js = append(js, ',')
		}
		if js, err = appendPacked(js, &c, details); err != nil {
			rows.Close()
			return 0, err
		}
		if chain.Valid && !slices.Contains(hashes, chain.String) {
			hashes = append(hashes, chain.String)
		}
		lastID = c.ID
		packed++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if packed == 0 {
		return 0, nil
	}
	js = append(js, ']')
	pack, err := encodePack(js, count+packed)
	if err != nil {
		return 0, err
	}
	slices.Sort(hashes)
	chains, err := json.Marshal(hashes)
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO observation_packs (run_id, observations, last_id, chains, pack)
VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET observations = excluded.observations,
	last_id = excluded.last_id, chains = excluded.chains, pack = excluded.pack`,
		runID, count+packed, lastID, string(chains), pack); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM observations WHERE run_id = ?`, runID)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if n != int64(packed) {
		return 0, fmt.Errorf("deleted %d rows, packed %d", n, packed)
	}
	// The delete's trigger counted the rows out of the run; they are
	// still its observations.
	if _, err := tx.ExecContext(ctx, `UPDATE runs SET observation_count = observation_count + ? WHERE id = ?`, n, runID); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return packed, nil
}

// packProgress reports the packing of ended runs' rows (packEndedRuns).
type packProgress struct {
	Runs, Observations int // packed
	// Left counts the runs left as rows (see errCannotPack). They read
	// as well as packed runs.
	Left int
	Took time.Duration
}

// packEndedRuns packs the rows of every run that has ended, each run in a
// transaction of its own, so that it can stop anywhere (a kill, ctx) and
// resume at the next call. Run at every Open for writing, it is the
// rewrite of migration 7 on a database of an earlier release, and
// afterwards packs what a killed run left.
func (s *Store) packEndedRuns(ctx context.Context) (packProgress, error) {
	start := time.Now()
	var p packProgress
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT o.run_id FROM observations o
WHERE (SELECT r.status FROM runs r WHERE r.id = o.run_id) != 'running' ORDER BY o.run_id`)
	if err != nil {
		return p, err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return p, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return p, err
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return p, err
		}
		n, err := s.packRun(ctx, id)
		switch {
		case errors.Is(err, errCannotPack):
			p.Left++
		case err != nil:
			return p, fmt.Errorf("packing the observations of run %d: %w", id, err)
		case n > 0:
			p.Runs++
			p.Observations += n
		}
	}
	p.Took = time.Since(start)
	return p, nil
}
