package measurements

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are the schema's versions, oldest first: migrations[i] takes
// a database from schema version (PRAGMA user_version) i to i+1, so the
// newest version this reachprobe knows is len(migrations). Append only:
// never edit a migration that has been released, since databases in the
// field have already run it.
var migrations = []string{
	// 1: runs, the catalogs they measured, and their observations.
	//
	// STRICT tables reject a value of the wrong type instead of storing it.
	// Times are UTC unix nanoseconds. runs.id is AUTOINCREMENT so that the
	// id of a deleted run is never handed to a new one: reports quote ids.
	`
CREATE TABLE catalogs (
	digest TEXT PRIMARY KEY,
	name   TEXT NOT NULL,
	text   BLOB NOT NULL
) STRICT;

CREATE TABLE runs (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	started          INTEGER NOT NULL,
	ended            INTEGER,
	status           TEXT NOT NULL,
	software_version TEXT NOT NULL,
	catalog_digest   TEXT NOT NULL REFERENCES catalogs (digest),
	catalog_name     TEXT NOT NULL
) STRICT;

CREATE INDEX runs_started ON runs (started);

CREATE TABLE observations (
	id          INTEGER PRIMARY KEY,
	run_id      INTEGER NOT NULL REFERENCES runs (id),
	step        TEXT NOT NULL,
	grp         TEXT NOT NULL,
	target      TEXT NOT NULL,
	host        TEXT NOT NULL,
	address     TEXT NOT NULL,
	port        INTEGER NOT NULL,
	transport   TEXT NOT NULL,
	repeat      INTEGER NOT NULL,
	control     INTEGER NOT NULL,
	started     INTEGER,
	duration_ns INTEGER NOT NULL,
	failure     TEXT NOT NULL,
	operation   TEXT NOT NULL,
	skipped     TEXT NOT NULL,
	details     TEXT NOT NULL CHECK (json_valid(details))
) STRICT;

CREATE INDEX observations_run ON observations (run_id);
CREATE INDEX observations_target_step ON observations (target, step);
`,
	// 2: what is kept of a run whose observations were pruned (PruneRun):
	// an encoded summary made from them before they were deleted, how many
	// there were and when they went. The run's row itself stays in runs.
	`
CREATE TABLE run_summaries (
	run_id       INTEGER PRIMARY KEY REFERENCES runs (id),
	pruned       INTEGER NOT NULL,
	observations INTEGER NOT NULL,
	summary      TEXT NOT NULL CHECK (json_valid(summary))
) STRICT;
`,
	// 3: the networks a run was measured from (SetRunNetwork): the
	// probe's and its resolver's AS number, AS name and country, never an
	// address. A run without a row has unknown networks.
	`
CREATE TABLE run_networks (
	run_id                INTEGER PRIMARY KEY REFERENCES runs (id),
	probe_asn             INTEGER NOT NULL CHECK (probe_asn >= 0),
	probe_network_name    TEXT NOT NULL,
	probe_cc              TEXT NOT NULL,
	resolver_asn          INTEGER NOT NULL CHECK (resolver_asn >= 0),
	resolver_network_name TEXT NOT NULL,
	resolver_cc           TEXT NOT NULL
) STRICT;
`,
	// 4: each run's observation count, kept by triggers, so listing runs
	// reads the runs table alone instead of counting an index of millions
	// of observations (a year of hourly runs holds three million).
	`
ALTER TABLE runs ADD COLUMN observation_count INTEGER NOT NULL DEFAULT 0 CHECK (observation_count >= 0);

UPDATE runs SET observation_count = (SELECT count(*) FROM observations o WHERE o.run_id = runs.id);

CREATE TRIGGER observations_counted AFTER INSERT ON observations BEGIN
	UPDATE runs SET observation_count = observation_count + 1 WHERE id = NEW.run_id;
END;

CREATE TRIGGER observations_uncounted AFTER DELETE ON observations BEGIN
	UPDATE runs SET observation_count = observation_count - 1 WHERE id = OLD.run_id;
END;
`,
	// 5: certificate chains stored once, by the SHA-256 (hex) of their
	// encoding (see chains.go); observations' details name the hash.
	// rewriteChains moves the chains of existing rows here.
	`
CREATE TABLE chains (
	id           INTEGER PRIMARY KEY,
	sha256       TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64),
	certificates BLOB NOT NULL
) STRICT;
`,
	// 6: a run's verdicts once judged (SetRunVerdicts), an encoded
	// document the caller made, under the version of the analysis that
	// made it, so a history of many runs need not judge each again.
	`
CREATE TABLE run_verdicts (
	run_id           INTEGER PRIMARY KEY REFERENCES runs (id),
	analysis_version INTEGER NOT NULL,
	verdicts         TEXT NOT NULL CHECK (json_valid(verdicts))
) STRICT;
`,
	// 7: the observations of an ended run packed into one compressed row
	// (see pack.go): observations counts them, last_id is the highest id
	// among them (new ids follow it), chains lists the hashes of the
	// certificate chains they name. The rows of ended runs are packed by
	// packEndedRuns after the migration, a run per transaction, so that
	// packing a year of runs needs no single huge transaction and resumes
	// where a kill stopped it. The index of targets and steps served no
	// query.
	`
CREATE TABLE observation_packs (
	run_id       INTEGER PRIMARY KEY REFERENCES runs (id),
	observations INTEGER NOT NULL CHECK (observations > 0),
	last_id      INTEGER NOT NULL,
	chains       TEXT NOT NULL CHECK (json_valid(chains)),
	pack         BLOB NOT NULL
) STRICT;

CREATE INDEX observation_packs_last_id ON observation_packs (last_id);

DROP INDEX observations_target_step;
`,
}

// rewrites are the data changes of migrations that SQL alone cannot make:
// rewrites[v] runs in the transaction of the migration to version v,
// after its script.
var rewrites = map[int]func(context.Context, *sql.Tx) error{
	5: rewriteChains,
}

// migrate applies the scripts (migrations, in production) the database has
// not run yet, each in its own transaction together with the new
// user_version, so a crash or a failing script leaves the schema at one
// version or the next, never in between.
func migrate(ctx context.Context, db *sql.DB, path string, scripts []string) error {
	for {
		done, err := migrateOnce(ctx, db, path, scripts)
		if err != nil || done {
			return err
		}
	}
}

// migrateOnce applies the next pending migration and reports whether none
// was pending. The version is read inside the write transaction, so two
// processes opening the same new file cannot both apply one migration.
func migrateOnce(ctx context.Context, db *sql.DB, path string, scripts []string) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE, see dsn
	if err != nil {
		return false, fmt.Errorf("database %s: migrating: %w", path, err)
	}
	defer tx.Rollback() // no-op after Commit

	version, err := userVersion(ctx, tx)
	if err != nil {
		return false, fmt.Errorf("database %s: migrating: %w", path, err)
	}
	switch {
	case version > len(scripts):
		return false, newerSchemaError(path, version, len(scripts))
	case version == len(scripts):
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, scripts[version]); err != nil {
		return false, fmt.Errorf("database %s: migrating to schema version %d: %w", path, version+1, err)
	}
	if rewrite := rewrites[version+1]; rewrite != nil {
		if err := rewrite(ctx, tx); err != nil {
			return false, fmt.Errorf("database %s: migrating to schema version %d: %w", path, version+1, err)
		}
	}
	// PRAGMA takes no parameters; version is an int we computed.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version+1)); err != nil {
		return false, fmt.Errorf("database %s: migrating to schema version %d: %w", path, version+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("database %s: migrating to schema version %d: %w", path, version+1, err)
	}
	return false, nil
}

// SchemaVersion is the newest schema version this reachprobe knows and
// writes (PRAGMA user_version of a database it has opened for writing).
func SchemaVersion() int { return len(migrations) }
