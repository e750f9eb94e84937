package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// TestCheckAndPruneOnCorruptDatabase: "check" says ok for a sound
// database; on one whose header misstates its free pages (damage only a
// page-by-page check sees) "check" and "prune" exit with code 3 naming
// the file and what SQLite found, prune deletes nothing, and the readers
// that never read the damaged part still answer.
func TestCheckAndPruneOnCorruptDatabase(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	db := filepath.Join(dir, "reachprobe.db")
	store, err := measurements.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		addReportRun(t, store, time.Now().Add(-time.Duration(72+i)*time.Hour), measurements.RunComplete)
	}
	if err := store.Close(); err != nil { // checkpoints: no WAL left
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		code := runMain(context.Background(), env, args)
		return code, out.String(), errb.String()
	}
	for _, quick := range []bool{false, true} {
		args := []string{"check", "--db", db}
		want := "ok (integrity_check of "
		if quick {
			args, want = append(args, "--quick"), "ok (quick_check of "
		}
		if code, out, errs := run(args...); code != exitOK || !strings.Contains(out, want) {
			t.Errorf("%v on a sound database: exit %d, stdout %q, stderr %q; want 0 and %q", args, code, out, errs, want)
		}
	}

	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	copy(b[36:40], []byte{0, 0, 0, 7}) // header: total freelist pages
	if err := os.WriteFile(db, b, 0o600); err != nil {
		t.Fatal(err)
	}

	if code, out, errs := run("list", "--json", "--db", db); code != exitOK || strings.Count(out, `"id"`) != 3 {
		t.Errorf("list on a database damaged where it does not read: exit %d, stdout %q, stderr %q; want 0 and 3 runs", code, out, errs)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "--db", db}, "integrity_check: Freelist: size is 0 but should be 7"},
		{[]string{"check", "--quick", "--db", db}, "quick_check: Freelist: size is 0 but should be 7"},
		{[]string{"prune", "--older-than", "1d", "--db", db}, "nothing was pruned: database " + db + " is corrupt (quick_check: Freelist"},
	} {
		code, _, errs := run(tt.args...)
		if code != exitDatabase || !strings.Contains(errs, db) || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, code, errs, exitDatabase, tt.want)
		}
	}
	after, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, b) {
		t.Error("check or prune modified the corrupt database")
	}
}
