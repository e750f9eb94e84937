package measurements

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Schema6Fixture writes the database of testdata/schema6 (an earlier
// release wrote it, see its README) to a new file and returns its path.
func schema6Fixture(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "reachprobe.db")
	if err := os.WriteFile(path, gunzipFile(tb, filepath.Join("testdata", "schema6", "reachprobe.db.gz")), fileMode); err != nil {
		tb.Fatal(err)
	}
	return path
}

func gunzipFile(tb testing.TB, path string) []byte {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// schema6Observations is what the release that wrote the fixture read of
// each of its runs, as JSON, by run id.
func schema6Observations(tb testing.TB) map[int64]json.RawMessage {
	tb.Helper()
	var want map[int64]json.RawMessage
	if err := json.Unmarshal(gunzipFile(tb, filepath.Join("testdata", "schema6", "observations.json.gz")), &want); err != nil {
		tb.Fatal(err)
	}
	return want
}

// checkSchema6Read checks that every run of the fixture reads from s as
// the release that wrote it read it. Both are compared as this
// reachprobe's JSON of its Observations, so that a details field added
// since changes neither side.
func checkSchema6Read(t *testing.T, s *Store) {
	t.Helper()
	want := schema6Observations(t)
	if len(want) != 10 {
		t.Fatalf("fixture has %d runs, want 10", len(want))
	}
	for id, js := range want {
		var w []Observation
		if err := json.Unmarshal(js, &w); err != nil {
			t.Fatal(err)
		}
		wantJSON, _ := json.Marshal(w)
		got, err := s.Observations(t.Context(), id)
		if err != nil {
			t.Errorf("run %d: %v", id, err)
			continue
		}
		gotJSON, _ := json.Marshal(got)
		if !bytes.Equal(gotJSON, wantJSON) {
			t.Errorf("run %d reads differently after migrating (%d observations, want %d)", id, len(got), len(w))
		}
	}
}

// storedForms counts the runs with rows and the runs packed.
func storedForms(t *testing.T, db *sql.DB) (withRows, packed map[int64]bool) {
	t.Helper()
	withRows, packed = map[int64]bool{}, map[int64]bool{}
	for query, m := range map[string]map[int64]bool{
		`SELECT DISTINCT run_id FROM observations`: withRows,
		`SELECT run_id FROM observation_packs`:     packed,
	} {
		rows, err := db.QueryContext(t.Context(), query)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			m[id] = true
		}
		rows.Close()
	}
	return withRows, packed
}

// TestMigrate7 opens a database an earlier release wrote (schema version
// 6): every ended run is packed, the running one keeps its rows, each
// reads as before, counts and chains hold, and a new observation's id
// follows every id given before.
func TestMigrate7(t *testing.T) {
	ctx := t.Context()
	path := schema6Fixture(t)
	old, err := OpenReadOnly(ctx, path, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if old.version != 6 {
		t.Fatalf("fixture at schema version %d, want 6", old.version)
	}
	checkSchema6Read(t, old) // this reachprobe reads the old rows as the old one did
	old.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSchema6Read(t, s)

	withRows, packed := storedForms(t, s.db)
	if len(withRows) != 1 || !withRows[10] {
		t.Errorf("runs with rows after migrating: %v, want only run 10, still running", withRows)
	}
	for _, id := range []int64{1, 3, 4, 5, 6, 7, 8, 9} {
		if !packed[id] {
			t.Errorf("run %d was not packed", id)
		}
	}
	if packed[2] || packed[10] {
		t.Errorf("packed %v: run 2 was pruned, run 10 is running", packed)
	}
	var wrongCounts, missingChains, free int
	if err := s.db.QueryRowContext(ctx, `SELECT
	(SELECT count(*) FROM runs WHERE observation_count != (SELECT count(*) FROM observations o WHERE o.run_id = runs.id)
		+ coalesce((SELECT observations FROM observation_packs p WHERE p.run_id = runs.id), 0)),
	(SELECT count(*) FROM observation_packs p, json_each(p.chains) j WHERE j.value NOT IN (SELECT sha256 FROM chains)),
	(SELECT * FROM pragma_freelist_count)`).Scan(&wrongCounts, &missingChains, &free); err != nil {
		t.Fatal(err)
	}
	if wrongCounts != 0 || missingChains != 0 {
		t.Errorf("%d runs with a wrong count, %d chains named by packs missing", wrongCounts, missingChains)
	}
	if free != 0 {
		t.Errorf("%d free pages after the migration, want 0 (compacted)", free)
	}

	// Compacting again keeps every chain a pack names.
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	checkSchema6Read(t, s)

	var maxID int64
	if err := s.db.QueryRowContext(ctx, `SELECT max(max(coalesce((SELECT max(id) FROM observations), 0)), (SELECT max(last_id) FROM observation_packs))`).Scan(&maxID); err != nil {
		t.Fatal(err)
	}
	run := beginTestRun(t, s, t0)
	o := sampleObservations(run)[0]
	if err := s.AddObservation(ctx, &o); err != nil {
		t.Fatal(err)
	}
	if o.ID <= maxID {
		t.Errorf("new observation got id %d, want one above %d, the highest given before", o.ID, maxID)
	}
}

// TestMigrate7Resumes: a kill between two runs' packing (each is its own
// transaction) leaves some runs packed and the others as rows, all
// readable, and the next open packs the rest. A field of a newer
// reachprobe in a row's details is kept in the pack as it was.
func TestMigrate7Resumes(t *testing.T) {
	ctx := t.Context()
	path := schema6Fixture(t)
	raw, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	raw.SetMaxOpenConns(1)
	if _, err := raw.ExecContext(ctx, `UPDATE observations SET details = json_set(details, '$.dns.from_the_future', json('{"kept":[1,2]}'))
WHERE id = (SELECT min(id) FROM observations WHERE run_id = 3)`); err != nil {
		t.Fatal(err)
	}
	// Migrated, one run packed, then killed.
	if err := migrate(ctx, raw, path, migrations); err != nil {
		t.Fatal(err)
	}
	partial := &Store{db: raw, path: path, version: len(migrations)}
	if n, err := partial.packRun(ctx, 4); err != nil || n == 0 {
		t.Fatalf("packRun(4) = %d, %v", n, err)
	}
	checkSchema6Read(t, partial)
	withRows, packed := storedForms(t, raw)
	if len(packed) != 1 || len(withRows) != 8 {
		t.Fatalf("after packing run 4: runs with rows %v, packed %v", withRows, packed)
	}
	raw.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSchema6Read(t, s)
	withRows, packed = storedForms(t, s.db)
	if len(withRows) != 1 || !withRows[10] || len(packed) != 8 {
		t.Errorf("runs with rows %v, packed %v; want only run 10 (running) as rows, 8 packed", withRows, packed)
	}
	var blob []byte
	if err := s.db.QueryRowContext(ctx, `SELECT pack FROM observation_packs WHERE run_id = 3`).Scan(&blob); err != nil {
		t.Fatal(err)
	}
	js, _, err := inflatePack(blob)
	if err != nil || !bytes.Contains(js, []byte(`"from_the_future":{"kept":[1,2]}`)) {
		t.Errorf("the pack of run 3 lost the field of a newer reachprobe (%v)", err)
	}
}

// TestPackAfterPack: rows added to a run already packed (a run ended
// twice) go after its packed observations.
func TestPackAfterPack(t *testing.T) {
	s := newTestStore(t)
	run := beginTestRun(t, s, t0)
	in := sampleObservations(run)
	for i := range in {
		if i == 4 {
			if err := s.EndRun(t.Context(), run, RunInterrupted, t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddObservation(t.Context(), &in[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.EndRun(t.Context(), run, RunComplete, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	withRows, packed := storedForms(t, s.db)
	if len(withRows) != 0 || !packed[run] {
		t.Fatalf("runs with rows %v, packed %v; want the run packed", withRows, packed)
	}
	checkRoundTrip(t, "packed twice", in, s, run)
}

// TestPackRunRefusesRunning: a running run's rows are not packed.
func TestPackRunRefusesRunning(t *testing.T) {
	s := newTestStore(t)
	run := beginTestRun(t, s, t0)
	o := sampleObservations(run)[0]
	if err := s.AddObservation(context.Background(), &o); err != nil {
		t.Fatal(err)
	}
	if n, err := s.packRun(t.Context(), run); err == nil || n != 0 {
		t.Errorf("packRun of a running run = %d, %v; want an error", n, err)
	}
	if p, err := s.packEndedRuns(t.Context()); err != nil || p.Runs != 0 {
		t.Errorf("packEndedRuns = %+v, %v; want nothing packed", p, err)
	}
}
