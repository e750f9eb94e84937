package measurements

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// addTestObservations stores n observations of run id, each with a raw
// DNS response of size bytes so that they fill pages.
func addTestObservations(tb testing.TB, s *Store, id int64, n, size int) {
	tb.Helper()
	for i := range n {
		o := sampleObservations(id)[0]
		o.Target = fmt.Sprintf("target-%d", i)
		o.DNS.RawResponse = bytes.Repeat([]byte{byte(i)}, size)
		if err := s.AddObservation(tb.Context(), &o); err != nil {
			tb.Fatal(err)
		}
	}
}

func endTestRun(tb testing.TB, s *Store, id int64) {
	tb.Helper()
	if err := s.EndRun(tb.Context(), id, RunComplete, t0.Add(time.Minute)); err != nil {
		tb.Fatal(err)
	}
}

func TestPruneRun(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	old := beginTestRun(t, s, t0)
	addTestObservations(t, s, old, 5, 10)
	endTestRun(t, s, old)
	kept := beginTestRun(t, s, t0.Add(time.Hour))
	addTestObservations(t, s, kept, 3, 10)
	endTestRun(t, s, kept)
	running := beginTestRun(t, s, t0.Add(2*time.Hour))
	addTestObservations(t, s, running, 2, 10)
	keptBefore, err := s.Observations(ctx, kept)
	if err != nil {
		t.Fatal(err)
	}

	pruned := t0.Add(24 * time.Hour)
	summary := []byte(`{"services":[{"service":"push","verdict":"ok"}]}`)
	tests := []struct {
		name    string
		id      int64
		summary []byte
		want    int
		wantErr string
		// left is how many observations the run has afterwards.
		left int
	}{
		{"not JSON", old, []byte("{not json"), 0, "CHECK constraint", 5},
		{"still running", running, summary, 0, "still running", 2},
		{"no such run", 99, summary, 0, ErrNoRun.Error(), 0},
		{"finished run", old, summary, 5, "", 0},
		{"already pruned", old, []byte(`{"other":true}`), 0, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.PruneRun(ctx, tt.id, tt.summary, pruned)
			if tt.wantErr != "" {
				if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.wantErr)) {
					t.Errorf("PruneRun = %d, %v; want an error containing %q", got, err, tt.wantErr)
				}
			} else if err != nil || got != tt.want {
				t.Errorf("PruneRun = %d, %v; want %d, nil", got, err, tt.want)
			}
			if r, err := s.Run(ctx, tt.id); err == nil && r.Observations != tt.left {
				t.Errorf("run %d has %d observations left, want %d", tt.id, r.Observations, tt.left)
			}
		})
	}

	rs, err := s.RunSummary(ctx, old)
	if err != nil {
		t.Fatalf("RunSummary: %v", err)
	}
	want := RunSummary{RunID: old, Pruned: pruned, Observations: 5, Summary: summary}
	if !reflect.DeepEqual(rs, want) {
		t.Errorf("RunSummary = %+v, want %+v (the first prune's summary, kept by the second)", rs, want)
	}
	if _, err := s.RunSummary(ctx, kept); !errors.Is(err, ErrNoSummary) {
		t.Errorf("RunSummary of an unpruned run: err = %v, want ErrNoSummary", err)
	}
	r, err := s.Run(ctx, old)
	if err != nil || r.Status != RunComplete {
		t.Errorf("pruned run = %+v, %v; want its row kept, complete", r, err)
	}
	keptAfter, err := s.Observations(ctx, kept)
	if err != nil || !reflect.DeepEqual(keptAfter, keptBefore) {
		t.Errorf("observations of the run not pruned changed: %v", err)
	}
}

func TestCompactShrinksFile(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	var ids []int64
	for i := range 10 {
		id := beginTestRun(t, s, t0.Add(time.Duration(i)*time.Hour))
		addTestObservations(t, s, id, 100, 1000)
		endTestRun(t, s, id)
		ids = append(ids, id)
	}
	// Checkpoint so that "before" is the file a long-lived database has.
	if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	before, err := s.DiskSize()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[:9] {
		if n, err := s.PruneRun(ctx, id, []byte(`{}`), t0.Add(48*time.Hour)); err != nil || n != 100 {
			t.Fatalf("PruneRun(%d) = %d, %v; want 100", id, n, err)
		}
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	after, err := s.DiskSize()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("database: %d bytes before pruning 9 of 10 runs, %d after compacting", before, after)
	if after > before/4 {
		t.Errorf("database is %d bytes after compacting, want at most a quarter of %d", after, before)
	}
	r, err := s.Run(ctx, ids[9])
	if err != nil || r.Observations != 100 {
		t.Errorf("run kept = %+v, %v; want its 100 observations", r, err)
	}
	if got := pragma(t, s, "integrity_check"); got != "ok" {
		t.Errorf("integrity_check after Compact = %q", got)
	}
}

// TestMigrateToRunSummaries opens a database written at schema version 1,
// before run_summaries existed, and prunes one of its runs.
func TestMigrateToRunSummaries(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v1.db")
	if _, err := createFile(path); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "PRAGMA journal_mode=WAL"); err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, db, path, migrations[:1]); err != nil {
		t.Fatal(err)
	}
	v1 := &Store{db: db, path: path}
	id := beginTestRun(t, v1, t0)
	addTestObservations(t, v1, id, 4, 10)
	endTestRun(t, v1, id)
	if err := v1.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open of a version 1 database: %v", err)
	}
	defer s.Close()
	if got, want := pragma(t, s, "user_version"), fmt.Sprint(len(migrations)); got != want {
		t.Errorf("user_version = %s, want %s", got, want)
	}
	if n, err := s.PruneRun(ctx, id, []byte(`{}`), t0.Add(time.Hour)); err != nil || n != 4 {
		t.Errorf("PruneRun after migrating = %d, %v; want 4", n, err)
	}
}
