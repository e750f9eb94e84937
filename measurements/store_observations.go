package measurements

import (
	"context"
	"database/sql"
	"encoding/json"
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
	res, err := db.ExecContext(ctx, `INSERT INTO observations
	(run_id, step, grp, target, host, address, port, transport, repeat, control,
	 started, duration_ns, failure, operation, skipped, details)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		o.RunID, string(o.Step), o.Group, o.Target, o.Host, o.Address, o.Port, o.Transport, o.Repeat, boolInt(o.Control),
		started, int64(o.Duration), o.Failure, o.Operation, o.Skipped, string(details))
	if err != nil {
		return fmt.Errorf("storing %s observation of %s for run %d: %w", o.Step, o.Target, o.RunID, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("storing %s observation of %s for run %d: %w", o.Step, o.Target, o.RunID, err)
	}
	if tx, ok := db.(*sql.Tx); ok {
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("storing %s observation of %s for run %d: %w", o.Step, o.Target, o.RunID, err)
		}
	}
	o.ID = id
	return nil
}

// Observations returns the observations of run runID in the order they were
// added, details decoded, or an error wrapping ErrNoRun.
func (s *Store) Observations(ctx context.Context, runID int64) ([]Observation, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, run_id, step, grp, target, host, address, port, transport,
	repeat, control, started, duration_ns, failure, operation, skipped, details
FROM observations WHERE run_id = ? ORDER BY id`, runID)
	if err != nil {
		return nil, fmt.Errorf("observations of run %d: %w", runID, err)
	}
	defer rows.Close()
	var (
		obs []Observation
		// named are the details that name a chain, read once rows is
		// closed: the Store has one connection.
		named []*observationDetails
	)
	for rows.Next() {
		var (
			o        Observation
			step     string
			control  int64
			started  sql.NullInt64
			duration int64
			details  string
		)
		if err := rows.Scan(&o.ID, &o.RunID, &step, &o.Group, &o.Target, &o.Host, &o.Address, &o.Port,
			&o.Transport, &o.Repeat, &control, &started, &duration, &o.Failure, &o.Operation, &o.Skipped,
			&details); err != nil {
			return nil, fmt.Errorf("observations of run %d: %w", runID, err)
		}
		o.Step = Step(step)
		o.Control = control != 0
		if started.Valid {
			o.Started = fromUnixNanos(started.Int64)
		}
		o.Duration = time.Duration(duration)
		var d observationDetails
		if err := json.Unmarshal([]byte(details), &d); err != nil {
			return nil, fmt.Errorf("observations of run %d: observation %d: decoding details: %w", runID, o.ID, err)
		}
		if d.Chain != "" {
			named = append(named, &d)
		}
		o.DNS, o.TCP, o.TLS, o.STUN, o.Arrival, o.Trace = d.DNS, d.TCP, d.TLS, d.STUN, d.Arrival, d.Trace
		o.Confirmation, o.PortCheck = d.Confirmation, d.PortCheck
		obs = append(obs, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("observations of run %d: %w", runID, err)
	}
	rows.Close()
	chains := chainReader{db: s.db}
	for _, d := range named {
		if err := chains.fill(ctx, d); err != nil { // sets the chain of the Observation's TLS, which d shares
			return nil, fmt.Errorf("observations of run %d: %w", runID, err)
		}
	}
	if len(obs) == 0 {
		// Tell a run without observations from no run at all.
		if _, err := s.Run(ctx, runID); err != nil {
			return nil, err
		}
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
