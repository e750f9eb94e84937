package measurements

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// openAtVersion makes a database at schema version v, as the reachprobe
// of that version left it, and returns it as a writer of that version.
func openAtVersion(t *testing.T, path string, v int) *Store {
	t.Helper()
	if _, err := createFile(path); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(t.Context(), "PRAGMA journal_mode=WAL"); err != nil {
		t.Fatal(err)
	}
	if err := migrate(t.Context(), db, path, migrations[:v]); err != nil {
		t.Fatal(err)
	}
	return &Store{db: db, path: path, version: v}
}

// runCounts lists each run's Observations, by id.
func runCounts(t *testing.T, s *Store) map[int64]int {
	t.Helper()
	runs, err := s.Runs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]int{}
	for _, r := range runs {
		got[r.ID] = r.Observations
	}
	return got
}

// TestObservationCountsMigrate: the counts a version 3 database gives by
// counting are the counts migration 4 stores, and the triggers keep them
// as observations are added and pruned. A running run still gets the end
// of its last observation from a reader.
func TestObservationCountsMigrate(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v3.db")
	v3 := openAtVersion(t, path, 3)
	want := map[int64]int{}
	for i, n := range []int{0, 3, 7} {
		id := beginTestRun(t, v3, t0.Add(time.Duration(i)*time.Hour))
		addTestObservations(t, v3, id, n, 10)
		endTestRun(t, v3, id)
		want[id] = n
	}
	if got := runCounts(t, v3); !mapsEqual(got, want) {
		t.Fatalf("version 3 counts %v, want %v", got, want)
	}
	if err := v3.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := runCounts(t, s); !mapsEqual(got, want) {
		t.Errorf("counts after migrating %v, want %v", got, want)
	}
	running := beginTestRun(t, s, t0.Add(-time.Hour)) // before its observations (sampleObservations)
	addTestObservations(t, s, running, 5, 10)
	want[running] = 5
	if _, err := s.PruneRun(ctx, 2, []byte(`{}`), t0.Add(10*time.Hour)); err != nil {
		t.Fatal(err)
	}
	want[2] = 0
	if got := runCounts(t, s); !mapsEqual(got, want) {
		t.Errorf("counts after adding and pruning %v, want %v", got, want)
	}

	r, err := OpenReadOnly(ctx, path, ReadOptions{WriterActive: func() bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.Run(ctx, running)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != RunInterrupted || !got.Ended.After(got.Started) || got.Observations != 5 {
		t.Errorf("a running run without its writer reads as %+v, want interrupted at its last observation with 5", got)
	}
	var n int
	if err := s.db.QueryRowContext(context.Background(), `SELECT count(*) FROM runs WHERE observation_count !=
	(SELECT count(*) FROM observations o WHERE o.run_id = runs.id) + coalesce((SELECT observations FROM observation_packs p WHERE p.run_id = runs.id), 0)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d runs whose stored count differs from their observations, rows and packed (%v)", n, err)
	}
	var packed int
	if err := s.db.QueryRowContext(context.Background(), `SELECT count(*) FROM observation_packs`).Scan(&packed); err != nil || packed != 1 {
		t.Errorf("%d runs packed (%v), want 1: the run of 7 (the run of 3 was pruned, the last one is running)", packed, err)
	}
}

func mapsEqual(a, b map[int64]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
