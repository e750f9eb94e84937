package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// TestKeptVerdicts: "analyze --since" gives the same JSON whether it
// judges every run or reads the verdicts kept under analysis.Version; it
// does read them (a kept verdict changed by hand shows); and verdicts
// kept under another version are judged again.
func TestKeptVerdicts(t *testing.T) {
	ctx := t.Context()
	db := filepath.Join(t.TempDir(), "reachprobe.db")
	store, err := measurements.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var ids []int64
	for i := range 4 {
		ids = append(ids, addReportRun(t, store, now.Add(-time.Duration(10-i)*time.Hour), measurements.RunComplete))
	}
	analyze := func() []byte {
		t.Helper()
		var out, errb bytes.Buffer
		env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		if code := runMain(context.Background(), env, []string{"analyze", "--since", "1d", "--format", "json", "--db", db}); code != exitOK {
			t.Fatalf("analyze: exit %d: %s", code, errb.String())
		}
		return out.Bytes()
	}
	judged := analyze()

	n, err := keepVerdicts(ctx, store, nil)
	if err != nil || n != len(ids) {
		t.Fatalf("keepVerdicts = %d, %v; want %d runs judged", n, err, len(ids))
	}
	if n, err := keepVerdicts(ctx, store, nil); err != nil || n != 0 {
		t.Errorf("keepVerdicts again = %d, %v; want 0: every run has its verdicts", n, err)
	}
	if got := analyze(); !bytes.Equal(got, judged) {
		t.Errorf("analyze --since with kept verdicts:\n%s\nwant, judging every run:\n%s", got, judged)
	}

	// Proof the kept verdicts are read: change the first run's by hand.
	raw, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var doc string
	if err := raw.QueryRowContext(ctx, `SELECT verdicts FROM run_verdicts WHERE run_id = ?`, ids[0]).Scan(&doc); err != nil {
		t.Fatal(err)
	}
	var rep analysis.Report
	if err := json.Unmarshal([]byte(doc), &rep); err != nil || len(rep.Services) == 0 {
		t.Fatalf("kept verdicts %s: %v", doc, err)
	}
	rep.Services[0].Verdict = analysis.VerdictBlocked
	changed, _ := json.Marshal(rep)
	if _, err := raw.ExecContext(ctx, `UPDATE run_verdicts SET verdicts = ? WHERE run_id = ?`, string(changed), ids[0]); err != nil {
		t.Fatal(err)
	}
	if got := analyze(); bytes.Equal(got, judged) {
		t.Error("a kept verdict changed by hand does not show: the kept verdicts are not read")
	}
	// Kept under another analysis: judged again.
	if _, err := raw.ExecContext(ctx, `UPDATE run_verdicts SET analysis_version = ? WHERE run_id = ?`, analysis.Version+1, ids[0]); err != nil {
		t.Fatal(err)
	}
	if got := analyze(); !bytes.Equal(got, judged) {
		t.Errorf("with a verdict kept under another analysis version:\n%s\nwant:\n%s", got, judged)
	}
	store.Close()
}

// TestKeptVerdictsHTML: the HTML report of several runs is the same page
// whether every run is judged from its observations or the earlier runs'
// kept verdicts are read.
func TestKeptVerdictsHTML(t *testing.T) {
	ctx := t.Context()
	db := filepath.Join(t.TempDir(), "reachprobe.db")
	store, err := measurements.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Now()
	for i := range 4 {
		addReportRun(t, store, now.Add(-time.Duration(10-i)*time.Hour), measurements.RunComplete)
	}
	runs, err := store.RunsSince(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	page := func(kept map[int64][]byte) []byte {
		t.Helper()
		l := &runLoader{store: store, targets: map[string][]measurements.Target{}, kept: kept, latest: runs[len(runs)-1].ID}
		var b bytes.Buffer
		if err := writeHTML(&b, l.runs(ctx, runs), now); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	judged := page(nil)
	if _, err := keepVerdicts(ctx, store, nil); err != nil {
		t.Fatal(err)
	}
	kept, err := store.RunVerdicts(ctx, analysis.Version, time.Time{})
	if err != nil || len(kept) != len(runs) {
		t.Fatalf("RunVerdicts: %d kept, %v; want %d", len(kept), err, len(runs))
	}
	if got := page(kept); !bytes.Equal(got, judged) {
		t.Errorf("the page with kept verdicts differs from the page judging every run")
	}
}

// TestKeepVerdictsUsesTheReportGiven: the report "run" made to tell a
// run's verdicts is the one kept, not judged a second time; the other runs
// are judged.
func TestKeepVerdictsUsesTheReportGiven(t *testing.T) {
	ctx := t.Context()
	store, err := measurements.Open(ctx, filepath.Join(t.TempDir(), "reachprobe.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	told := addReportRun(t, store, now.Add(-time.Hour), measurements.RunComplete)
	other := addReportRun(t, store, now.Add(-2*time.Hour), measurements.RunComplete)
	run, err := store.Run(ctx, told)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := analyzeRun(ctx, store, run)
	if err != nil || len(rep.Services) == 0 {
		t.Fatalf("judging run %d: %v, %d services", told, err, len(rep.Services))
	}
	// A mark no judgment of the run makes, to see which report is kept.
	rep.Services[0].Verdict = "the report told"
	if n, err := keepVerdicts(ctx, store, map[int64]analysis.Report{told: rep}); err != nil || n != 2 {
		t.Fatalf("keepVerdicts = %d, %v; want both runs kept", n, err)
	}
	kept, err := store.RunVerdicts(ctx, analysis.Version, now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[int64]bool{told: true, other: false} {
		if got := bytes.Contains(kept[id], []byte("the report told")); got != want || len(kept[id]) == 0 {
			t.Errorf("run %d: kept verdicts hold the told report's mark: %v, want %v", id, got, want)
		}
	}
}
