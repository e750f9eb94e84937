package measurements

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
)

// SetRunNetwork records the networks run runID was measured from,
// replacing what an earlier call recorded. An empty country code is stored
// as UnknownCountry. It fails with an error wrapping ErrNoRun when there is
// no such run.
func (s *Store) SetRunNetwork(ctx context.Context, runID int64, id Identity) error {
	id = id.Normalized()
	if uint64(id.ProbeASN) > math.MaxInt64 || uint64(id.ResolverASN) > math.MaxInt64 {
		return fmt.Errorf("measurements: run %d: AS number out of range", runID)
	}
	// INSERT ... SELECT ... WHERE EXISTS inserts nothing for an unknown
	// run, which RowsAffected then tells apart, rather than failing on the
	// foreign key with a less helpful message.
	res, err := s.db.ExecContext(ctx, `INSERT INTO run_networks
	(run_id, probe_asn, probe_network_name, probe_cc, resolver_asn, resolver_network_name, resolver_cc)
SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?)
ON CONFLICT (run_id) DO UPDATE SET
	probe_asn = excluded.probe_asn, probe_network_name = excluded.probe_network_name, probe_cc = excluded.probe_cc,
	resolver_asn = excluded.resolver_asn, resolver_network_name = excluded.resolver_network_name,
	resolver_cc = excluded.resolver_cc`,
		runID, int64(id.ProbeASN), id.ProbeNetworkName, id.ProbeCC,
		int64(id.ResolverASN), id.ResolverNetworkName, id.ResolverCC, runID)
	if err != nil {
		return fmt.Errorf("storing the network of run %d: %w", runID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("storing the network of run %d: %w", runID, err)
	}
	if n == 0 {
		return fmt.Errorf("storing the network of run %d: %w", runID, ErrNoRun)
	}
	return nil
}

// RunNetwork returns the networks recorded for run runID, or
// UnknownIdentity() (AS0, ZZ) when none were: the run predates network
// identity, was made with it turned off, or does not exist.
func (s *Store) RunNetwork(ctx context.Context, runID int64) (Identity, error) {
	var (
		id                    Identity
		probeASN, resolverASN int64
	)
	if s.version < 3 { // a reader of a database from before network identity
		return UnknownIdentity(), nil
	}
	err := s.db.QueryRowContext(ctx, `SELECT probe_asn, probe_network_name, probe_cc,
	resolver_asn, resolver_network_name, resolver_cc FROM run_networks WHERE run_id = ?`, runID).
		Scan(&probeASN, &id.ProbeNetworkName, &id.ProbeCC, &resolverASN, &id.ResolverNetworkName, &id.ResolverCC)
	if errors.Is(err, sql.ErrNoRows) {
		return UnknownIdentity(), nil
	}
	if err != nil {
		return Identity{}, fmt.Errorf("network of run %d: %w", runID, err)
	}
	id.ProbeASN, id.ResolverASN = uint(probeASN), uint(resolverASN)
	return id.Normalized(), nil
}
