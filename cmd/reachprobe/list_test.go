package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// TestListJSON: "list --json" gives every run, newest first, with the
// fields the README documents, and "[]" for a database without runs, so a
// cron wrapper finds the latest run without parsing the table.
func TestListJSON(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	db := filepath.Join(dir, "reachprobe.db")
	store, err := measurements.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	old := addReportRun(t, store, now.Add(-2*time.Hour), measurements.RunComplete)
	running := addReportRun(t, store, now.Add(-time.Minute), measurements.RunRunning)
	store.Close()
	empty := filepath.Join(dir, "empty.db")
	if s, err := measurements.Open(ctx, empty); err != nil {
		t.Fatal(err)
	} else {
		s.Close()
	}
	// The running run's writer is alive while it holds the lock.
	held, err := lockDatabase(ctx, db, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.release()

	list := func(t *testing.T, db string) []map[string]any {
		t.Helper()
		var out, errb bytes.Buffer
		env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		if code := runMain(ctx, env, []string{"list", "--json", "--db", db}); code != exitOK {
			t.Fatalf("list --json: exit %d: %s", code, errb.String())
		}
		var got []map[string]any
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("list --json printed %q: %v", out.String(), err)
		}
		if got == nil {
			t.Fatalf("list --json printed %q, want an array", out.String())
		}
		return got
	}

	got := list(t, db)
	if len(got) != 2 {
		t.Fatalf("list --json gave %d runs, want 2: %v", len(got), got)
	}
	newest, oldest := got[0], got[1]
	if newest["id"] != float64(running) || oldest["id"] != float64(old) {
		t.Errorf("ids %v, %v; want %d then %d (newest first)", newest["id"], oldest["id"], running, old)
	}
	if newest["status"] != measurements.RunRunning {
		t.Errorf("newest status %v, want %s", newest["status"], measurements.RunRunning)
	}
	if _, ok := newest["ended"]; ok {
		t.Errorf("a running run has an end: %v", newest["ended"])
	}
	wantStarted := now.Add(-2 * time.Hour).Format(time.RFC3339Nano)
	if oldest["started"] != wantStarted || oldest["status"] != measurements.RunComplete {
		t.Errorf("oldest run started %v, status %v; want %s, %s", oldest["started"], oldest["status"], wantStarted, measurements.RunComplete)
	}
	if oldest["duration_ns"] != float64(time.Minute) || oldest["observations"] != float64(1) {
		t.Errorf("oldest run: duration_ns %v, observations %v; want %d, 1", oldest["duration_ns"], oldest["observations"], time.Minute)
	}
	for _, key := range []string{"catalog_name", "catalog_digest", "software_version"} {
		if s, _ := oldest[key].(string); s == "" {
			t.Errorf("%s is %v, want a string", key, oldest[key])
		}
	}

	if got := list(t, empty); len(got) != 0 {
		t.Errorf("an empty database lists %v, want []", got)
	}
}

// TestWriteTableMatchesTabwriter: list's hand-made table is laid out as
// text/tabwriter laid it out before, wide characters and an empty cell
// included.
func TestWriteTableMatchesTabwriter(t *testing.T) {
	rows := [][]string{
		{"RUN", "STARTED (UTC)", "STATUS", "CATALOG"},
		{"10", "2026-01-02 03:04:05", "complete", "default"},
		{"9", "", "running", "catalogué-ü.toml"},
		{"12345", "x", "\\x1b[2J", ""},
	}
	var want bytes.Buffer
	tw := tabwriter.NewWriter(&want, 0, 4, 2, ' ', 0)
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := writeTable(&got, rows); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("writeTable wrote\n%s\ntabwriter\n%s", got.String(), want.String())
	}
}
