package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// schema6Fixture writes the database an earlier release wrote (schema
// version 6, measurements/testdata/schema6) to a new file.
func schema6Fixture(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "measurements", "testdata", "schema6", "reachprobe.db.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "reachprobe.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// judgeAll judges every finished run of store with observations, by id.
func judgeAll(t *testing.T, store *measurements.Store) map[int64][]byte {
	t.Helper()
	runs, err := store.RunsSince(t.Context(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	docs := map[int64][]byte{}
	for _, r := range runs {
		if r.Status == measurements.RunRunning || r.Observations == 0 {
			continue
		}
		rep, err := analyzeRun(t.Context(), store, r)
		if err != nil {
			t.Fatalf("run %d: %v", r.ID, err)
		}
		doc, err := encodeVerdicts(r, rep)
		if err != nil {
			t.Fatal(err)
		}
		docs[r.ID] = doc
	}
	return docs
}

// TestMigratedVerdicts: a database an earlier release wrote judges the
// same after migrating to packed observations: each run's verdicts, and
// the history "analyze --since" prints, kept verdicts and pruned run
// included. Where the analysis is the one that kept the fixture's
// verdicts, they are the ones judged now.
func TestMigratedVerdicts(t *testing.T) {
	ctx := t.Context()
	path := schema6Fixture(t)
	analyze := func() []byte {
		t.Helper()
		var out, errb bytes.Buffer
		env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		if code := runMain(context.Background(), env, []string{"analyze", "--since", "100000h", "--format", "json", "--db", path}); code != exitOK {
			t.Fatalf("analyze: exit %d: %s", code, errb.String())
		}
		return out.Bytes()
	}

	old, err := measurements.OpenReadOnly(ctx, path, measurements.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := judgeAll(t, old)
	kept, err := old.RunVerdicts(ctx, analysis.Version, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	if len(before) != 8 {
		t.Fatalf("%d runs judged in the fixture, want 8 (10, one pruned, one running)", len(before))
	}
	if len(kept) == 0 {
		t.Logf("no verdicts kept under analysis version %d: the fixture's are older", analysis.Version)
	}
	for id, doc := range kept {
		if _, judged := before[id]; !judged {
			continue // its observations are gone: nothing to judge again
		}
		if !bytes.Equal(doc, before[id]) {
			t.Errorf("run %d: the verdicts the earlier release kept differ from those judged now from its rows", id)
		}
	}
	historyBefore := analyze()
	if v := measurements.SchemaVersion(); v < 7 {
		t.Fatalf("schema version %d", v)
	}

	store, err := measurements.Open(ctx, path) // migrates, packs
	if err != nil {
		t.Fatal(err)
	}
	after := judgeAll(t, store)
	store.Close()
	if len(after) != len(before) {
		t.Errorf("%d runs judged after migrating, %d before", len(after), len(before))
	}
	for id, doc := range before {
		if !bytes.Equal(after[id], doc) {
			t.Errorf("run %d: verdicts differ after migrating:\n%s\nbefore:\n%s", id, after[id], doc)
		}
	}
	if got := analyze(); !bytes.Equal(got, historyBefore) {
		t.Errorf("analyze --since after migrating:\n%s\nbefore:\n%s", got, historyBefore)
	}
}
