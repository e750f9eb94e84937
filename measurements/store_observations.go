package measurements

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AddObservation stores o and sets o.ID. Each call is its own committed
// transaction, so a crash loses at most the steps still in flight. It is
// safe to call from many goroutines at once (see Store). An observation
// already stored (o.ID set) is an error rather than a duplicate.
func (s *Store) AddObservation(ctx context.Context, o *Observation) error {
	if o == nil {
		return errors.New("measurements: nil observation")
	}
	if o.ID != 0 {
		return fmt.Errorf("measurements: observation already stored as %d", o.ID)
	}
	var started sql.NullInt64
	if !o.Started.IsZero() {
		ns, err := unixNanos(o.Started)
		if err != nil {
			return err
		}
		started = sql.NullInt64{Int64: ns, Valid: true}
	}
	details, chain, err := encodeDetails(o)
	if err != nil {
		return fmt.Errorf("measurements: encoding observation details: %w", err)
	}
	// The chain and the observation naming it go in one transaction, the
	// chain first; without a chain, the one statement is its own.
	var db execer = s.db
	if len(chain) > 0 {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("storing %s observation of %s for run %d: %w", o.Step, o.Target, o.RunID, err)
		}
		defer tx.Rollback() // no-op after Commit
		if _, err := storeChain(ctx, tx, chain); err != nil {
			return fmt.Errorf("storing %s observation of %s for run %d: %w", o.Step, o.Target, o.RunID, err)
		}
		db = tx
	}
	// From schema version 7, the id follows every id given before, packed
	// ones included: the rows of ended runs are deleted once packed, and
	// SQLite would give their ids again.
	id := "NULL"
	if s.version >= packsVersion {
		id = `max(coalesce((SELECT max(id) FROM observations), 0),
		coalesce((SELECT max(last_id) FROM observation_packs), 0)) + 1`
	}
	res, err := db.ExecContext(ctx, `INSERT INTO observations
	(id, run_id, step, grp, target, host, address, port, transport, repeat, control,
	 started, duration_ns, failure, operation, skipped, details)
	VALUES (`+id+`, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		o.RunID, string(o.Step), o.Group, o.Target, o.Host, o.Address, o.Port, o.Transport, o.Repeat, boolInt(o.Control),
		started, int64(o.Duration), o.Failure, o.Operation, o.Skipped, string(details))
	if err != nil {
		return fmt.Errorf("storing %s observation of %s for run %d: %w", o.Step, o.Target, o.RunID, err)
	}
	rowID, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("storing %s observation of %s for run %d: %w", o.Step, o.Target, o.RunID, err)
	}
	if tx, ok := db.(*sql.Tx); ok {
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("storing %s observation of %s for run %d: %w", o.Step, o.Target, o.RunID, err)
		}
	}
	o.ID = rowID
	return nil
}

// Observations returns the observations of run runID in the order they were
// added, details decoded, or an error wrapping ErrNoRun. They come from
// the run's rows and, from schema version 7, its pack (see pack.go).
func (s *Store) Observations(ctx context.Context, runID int64) ([]Observation, error) {
	// Rows first, then the pack: see mergeByID.
	all, err := rowsOf(ctx, s.db, runID)
	if err != nil {
		return nil, fmt.Errorf("observations of run %d: %w", runID, err)
	}
	if s.version >= packsVersion {
		packed, err := packOf(ctx, s.db, runID)
		if err != nil {
			return nil, fmt.Errorf("observations of run %d: %w", runID, err)
		}
		all = mergeByID(packed, all)
	}
	obs := make([]Observation, len(all))
	chains := chainReader{db: s.db}
	for i := range all {
		obs[i] = all[i].observation(runID)
		// Sets the chain of the Observation's TLS, which the details share.
		if err := chains.fill(ctx, &all[i].Details); err != nil {
			return nil, fmt.Errorf("observations of run %d: %w", runID, err)
		}
	}
	if len(obs) == 0 {
		// Tell a run without observations from no run at all.
		if _, err := s.Run(ctx, runID); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return obs, nil
}

// observationDetails is the JSON of the details column: whichever of an
// Observation's detail records is set.
type observationDetails struct {
	DNS     *DNSDetails     `json:"dns,omitempty"`
	TCP     *TCPDetails     `json:"tcp,omitempty"`
	TLS     *TLSDetails     `json:"tls,omitempty"`
	STUN    *STUNDetails    `json:"stun,omitempty"`
	Arrival *ArrivalDetails `json:"arrival,omitempty"`
	Trace   *TraceDetails   `json:"trace,omitempty"`
	// Confirmation and PortCheck are the Observation's flags: kept with
	// the details so that adding them needed no change of schema.
	Confirmation bool `json:"confirmation,omitempty"`
	PortCheck    bool `json:"port_check,omitempty"`
	// Chain is the hex SHA-256 of the TLS peer's certificate chain, stored
	// in chains (schema version 5); TLS then has no PeerCertificates.
	Chain string `json:"chain,omitempty"`
}

// The instants unix nanoseconds in an int64 can represent.
var (
	minStorableTime = time.Unix(0, -1<<63)
	maxStorableTime = time.Unix(0, 1<<63-1)
)

// unixNanos converts t to the stored form, UTC unix nanoseconds, failing
// outside the years 1678 to 2262 where that form overflows.
func unixNanos(t time.Time) (int64, error) {
	if t.Before(minStorableTime) || t.After(maxStorableTime) {
		return 0, fmt.Errorf("measurements: time %v cannot be stored", t)
	}
	return t.UnixNano(), nil
}

// fromUnixNanos converts a stored time back to a UTC time.Time.
func fromUnixNanos(ns int64) time.Time { return time.Unix(0, ns).UTC() }

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
