package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
)

func TestParseAge(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"90d", 90 * 24 * time.Hour, false},
		{"1d", 24 * time.Hour, false},
		{"2160h", 2160 * time.Hour, false},
		{"36h30m", 36*time.Hour + 30*time.Minute, false},
		{"0d", 0, true},
		{"0s", 0, true},
		{"-5h", 0, true},
		{"3w", 0, true},
		{"1.5d", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := parseAge(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseAge(%q) = %s, %v; want %s (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
	for _, d := range []time.Duration{90 * 24 * time.Hour, 15 * time.Minute, 6 * time.Hour, 90 * time.Minute, 36 * time.Second} {
		if back, err := parseAge(formatAge(d)); err != nil || back != d {
			t.Errorf("formatAge(%s) = %q reads back as %s, %v", d, formatAge(d), back, err)
		}
	}
}

// ageRuns moves runs with ids in [from, to] back by age, as if they had
// been made then.
func ageRuns(t *testing.T, db string, from, to int64, age time.Duration) {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Exec(`UPDATE runs SET started = started - ?, ended = ended - ? WHERE id BETWEEN ? AND ?`,
		int64(age), int64(age), from, to); err != nil {
		t.Fatal(err)
	}
}

// analyzeJSON runs "analyze --format json" in-process and decodes it.
func analyzeJSON(t *testing.T, db string, args ...string) map[string]any {
	t.Helper()
	var out, errb bytes.Buffer
	env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if code := runMain(context.Background(), env, append([]string{"analyze", "--db=" + db, "--format=json"}, args...)); code != exitOK {
		t.Fatalf("analyze %v: exit %d, stderr %q", args, code, errb.String())
	}
	var v map[string]any
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// sqlInt runs a query of one integer on db, read-only.
func sqlInt(t *testing.T, db, query string) int64 {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n sql.NullInt64
	if err := conn.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n.Int64
}

func fileSize(t *testing.T, db string) int64 {
	t.Helper()
	var total int64
	for _, f := range []string{db, db + "-wal"} {
		if fi, err := os.Stat(f); err == nil {
			total += fi.Size()
		}
	}
	return total
}

// TestPruneKeepsHistory prunes real runs of the loopback lab and checks
// that history reads the same, that runs made since keep everything, and
// that the file shrinks.
func TestPruneKeepsHistory(t *testing.T) {
	l := startLoopbackLab(t)
	env := testEnviron(l.dir)
	fast := l.fastCatalog(t)
	db := filepath.Join(l.dir, "prune.db")
	const runs = 6
	for range runs {
		if r := runBinary(t, env, l.runArgs(db, "--targets", fast)...); r.code != exitOK {
			t.Fatalf("run: exit %d, stderr %q", r.code, r.stderr)
		}
	}
	ageRuns(t, db, 1, 4, 100*24*time.Hour)
	before := readRuns(t, db)
	history := analyzeJSON(t, db, "--since=5000h")
	oldReport := analyzeJSON(t, db, "2")

	dry := runBinary(t, env, "prune", "--db", db, "--older-than", "30d", "--dry-run")
	if dry.code != exitOK || !strings.Contains(dry.stdout, "would prune") || !strings.Contains(dry.stdout, "runs 1-4") {
		t.Errorf("dry run: exit %d, stdout %q", dry.code, dry.stdout)
	}
	if got := readRuns(t, db); !reflect.DeepEqual(got, before) {
		t.Error("the dry run changed the database")
	}

	sizeBefore := fileSize(t, db)
	packed := sqlInt(t, db, `SELECT sum(length(pack)) FROM observation_packs WHERE run_id <= 4`)
	if packed == 0 {
		t.Fatal("runs 1-4 were not packed when they ended")
	}
	r := runBinary(t, env, "prune", "--db", db, "--older-than", "30d")
	if r.code != exitOK || !strings.Contains(r.stdout, "of 4 runs") || r.stderr != "" {
		t.Fatalf("prune: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	sizeAfter := fileSize(t, db)
	t.Logf("prune of 4 of %d runs: %s\ndatabase: %d bytes before, %d after", runs, strings.TrimSpace(r.stdout), sizeBefore, sizeAfter)
	// The runs' observations are packed, a few KB each: the file gives
	// back at least half their bytes (pages are 4 KB) and keeps no free
	// page.
	if sizeBefore-sizeAfter < packed/2 {
		t.Errorf("database is %d bytes after pruning, %d before: want at least %d bytes given back, half the pruned packs", sizeAfter, sizeBefore, packed/2)
	}
	if free := sqlInt(t, db, `PRAGMA freelist_count`); free != 0 {
		t.Errorf("%d free pages after pruning, want 0: the space goes back to the file system", free)
	}
	checkIntegrity(t, db)

	after := readRuns(t, db)
	if len(after) != runs {
		t.Fatalf("%d runs after pruning, want all %d kept", len(after), runs)
	}
	for i, a := range after {
		b := before[i]
		if i < 4 {
			b.Run.Observations, b.Observations = 0, nil
		}
		sameRun(t, "run "+strconv.FormatInt(a.Run.ID, 10), a, b)
	}
	// The history is the same but for saying which runs were pruned, and
	// that this analysis judged them before they were.
	got := analyzeJSON(t, db, "--since=5000h")
	judged := got["history"].(map[string]any)["judged_by"]
	wantJudged := []any{map[string]any{"analysis_version": float64(analysis.Version), "current": true, "runs": float64(runs), "pruned": float64(4),
		"from": before[0].Run.Started.Format(time.RFC3339Nano), "to": before[runs-1].Run.Started.Format(time.RFC3339Nano)}}
	if !reflect.DeepEqual(judged, wantJudged) {
		t.Errorf("judged_by after pruning 4 runs = %v, want %v", judged, wantJudged)
	}
	delete(got["history"].(map[string]any), "judged_by")
	delete(history["history"].(map[string]any), "judged_by")
	if !reflect.DeepEqual(got, history) {
		g, _ := json.Marshal(got["history"])
		w, _ := json.Marshal(history["history"])
		t.Errorf("analyze --since changed by pruning:\n got %s\nwant %s", g, w)
	}
	text := runBinary(t, env, "analyze", "--db", db, "--since=5000h")
	if want := fmt.Sprintf("%d runs judged by this analysis (version %d), 4 of them pruned", runs, analysis.Version); !strings.Contains(text.stdout, want) {
		t.Errorf("analyze --since does not say %q:\n%s", want, text.stdout)
	}
	pruned := analyzeJSON(t, db, "2")
	for _, k := range []string{"apps", "services", "network", "run_id", "run_status"} {
		if !reflect.DeepEqual(pruned[k], oldReport[k]) {
			t.Errorf("report of pruned run 2: %s = %v, want %v", k, pruned[k], oldReport[k])
		}
	}
	if notes, _ := json.Marshal(pruned["notes"]); !strings.Contains(string(notes), "were pruned") {
		t.Errorf("report of pruned run 2 does not say it was pruned: notes %s", notes)
	}

	// A run pruned before summaries kept the analysis's version.
	forgetSummaryVersion(t, db, 1)
	text = runBinary(t, env, "analyze", "--db", db, "--since=5000h")
	if want := "1 run judged by an analysis whose version was not recorded, pruned, started"; !strings.Contains(text.stdout, want) {
		t.Errorf("analyze --since does not say %q:\n%s", want, text.stdout)
	}

	again := runBinary(t, env, "prune", "--db", db, "--older-than", "30d")
	if again.code != exitOK || !strings.Contains(again.stdout, "no run started before") {
		t.Errorf("second prune: exit %d, stdout %q", again.code, again.stdout)
	}

	// A run that prunes after itself, as a schedule may make it.
	ageRuns(t, db, 5, 5, 40*24*time.Hour)
	if r := runBinary(t, env, l.runArgs(db, "--targets", fast, "--prune-older-than", "30d", "--log-format", "json")...); r.code != exitOK || r.stdout != "" ||
		!strings.Contains(r.stderr, `"event":"pruned"`) {
		t.Fatalf("run --prune-older-than: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	final := readRuns(t, db)
	if len(final) != runs+1 || final[4].Run.Observations != 0 || final[5].Run.Observations == 0 || final[6].Run.Observations == 0 {
		t.Errorf("after run --prune-older-than 30d: want run 5 pruned, runs 6 and 7 kept; got %d runs", len(final))
		for _, f := range final {
			t.Logf("run %d: %d observations", f.Run.ID, f.Run.Observations)
		}
	}
}

// forgetSummaryVersion makes run id's summary one kept before summaries
// recorded the analysis's version, and forgets its kept verdicts, as a
// database of that time had none.
func forgetSummaryVersion(t *testing.T, db string, id int64) {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res, err := conn.Exec(`UPDATE run_summaries SET summary = json_remove(summary, '$.analysis_version') WHERE run_id = ?`, id)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("run %d has no summary", id)
	}
	if _, err := conn.Exec(`DELETE FROM run_verdicts WHERE run_id = ?`, id); err != nil {
		t.Fatal(err)
	}
}
