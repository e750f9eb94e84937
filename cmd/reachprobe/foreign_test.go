package main

import (
	"bytes"
	"context"
	"database/sql"
	binenc "encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// dirFiles is every file of dir with its bytes.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

// sqliteExec runs statements on path with the SQLite driver directly, as
// another program would.
func sqliteExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// offlineRunArgs make a run that, were it ever to start, would send
// nothing off this machine: its resolver, DoH control and catalog are on
// loopback ports nobody listens on, and it asks no STUN server.
func offlineRunArgs(t *testing.T, dir string) []string {
	t.Helper()
	resolv := filepath.Join(dir, "resolv.conf")
	catalog := filepath.Join(dir, "offline.catalog")
	os.WriteFile(resolv, []byte("nameserver 127.0.0.1:9\n"), 0o600)
	os.WriteFile(catalog, []byte("[target loop]\ngroup = control\nhost = localhost\nports = 9\ntransports = tcp\n"), 0o600)
	return []string{"--targets", catalog, "--resolv-conf", resolv, "--control-doh", "https://127.0.0.1:9/dns-query", "--no-network-id", "--timeout", "5s"}
}

// TestForeignDatabaseRefusedByEveryCommand: another program's SQLite
// file, at user_version 0, 2 or 3, is refused by every command that opens
// a database, byte for byte unchanged, with nothing created beside it (no
// -wal, -shm or .lock).
func TestForeignDatabaseRefusedByEveryCommand(t *testing.T) {
	cfgDir := t.TempDir()
	run := offlineRunArgs(t, cfgDir)
	for _, version := range []int{0, 2, 3} {
		for _, journal := range []string{"delete", "wal"} {
			dir := t.TempDir()
			db := filepath.Join(dir, "app.db")
			sqliteExec(t, db, "PRAGMA journal_mode="+journal, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
				"INSERT INTO notes (body) VALUES ('keep me')", fmt.Sprintf("PRAGMA user_version = %d", version))
			before := dirFiles(t, dir)
			if len(before) != 1 {
				t.Fatalf("the other program left %d files, want 1", len(before))
			}
			for _, args := range [][]string{
				append([]string{"run", "--db", db}, run...),
				{"prune", "--db", db, "--older-than", "1d"},
				{"list", "--db", db},
				{"show", "latest", "--db", db},
				{"analyze", "--db", db},
				{"report", "--db", db, "--format", "json"},
			} {
				t.Run(fmt.Sprintf("%s version %d %s", args[0], version, journal), func(t *testing.T) {
					var out, errb bytes.Buffer
					env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
					code := runMain(context.Background(), env, args)
					if code != exitDatabase || !strings.Contains(errb.String(), db) || !strings.Contains(errb.String(), "not a reachprobe database") {
						t.Errorf("exit %d, stderr %q; want %d naming %s as not reachprobe's", code, errb.String(), exitDatabase, db)
					}
					after := dirFiles(t, dir)
					if len(after) != 1 || after["app.db"] != before["app.db"] {
						names := make([]string, 0, len(after))
						for n := range after {
							names = append(names, n)
						}
						t.Errorf("after %s the directory holds %q (database unchanged: %v); want the database alone, unchanged",
							args[0], names, after["app.db"] == before["app.db"])
					}
				})
			}
		}
	}
}

// TestReadersCreateNothing: list, show, analyze and report of a database
// that does not exist say so and create nothing, not even its directory.
func TestReadersCreateNothing(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "sub", "typo.db")
	for _, args := range [][]string{
		{"list", "--db", db}, {"show", "latest", "--db", db}, {"analyze", "--db", db}, {"report", "--db", db},
	} {
		var out, errb bytes.Buffer
		env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		code := runMain(context.Background(), env, args)
		if code != exitUsage || !strings.Contains(errb.String(), "no database at "+db) || !strings.Contains(errb.String(), `"reachprobe run`) {
			t.Errorf("%s: exit %d, stderr %q; want %d naming %s", args[0], code, errb.String(), exitUsage, db)
		}
	}
	if files := dirFiles(t, dir); len(files) != 0 {
		t.Errorf("the readers created %v", files)
	}
}

// TestUnmarkedDatabaseMarkedByRun: a database of a release from before
// the mark is read as it is by the readers, then marked by a run, and
// still read afterwards.
func TestUnmarkedDatabaseMarkedByRun(t *testing.T) {
	l := startLoopbackLab(t)
	env := testEnviron(l.dir)
	db := filepath.Join(l.dir, "old.db")
	fast := l.fastCatalog(t)
	if r := runBinary(t, env, l.runArgs(db, "--targets", fast)...); r.code != exitOK {
		t.Fatalf("first run: exit %d, stderr %q", r.code, r.stderr)
	}
	// What an earlier release left: the same schema, no application_id.
	sqliteExec(t, db, "PRAGMA application_id = 0")
	appID := func() uint32 {
		b, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		return binenc.BigEndian.Uint32(b[68:72])
	}
	if id := appID(); id != 0 {
		t.Fatalf("application_id = %#x after clearing it", id)
	}
	before, _ := os.ReadFile(db)
	for _, args := range [][]string{{"list", "--db", db}, {"show", "1", "--db", db}, {"analyze", "1", "--db", db}} {
		if r := runBinary(t, env, args...); r.code != exitOK || !strings.Contains(r.stdout, "complete") {
			t.Errorf("%s of the unmarked database: exit %d, stdout %q, stderr %q", args[0], r.code, r.stdout, r.stderr)
		}
	}
	if after, _ := os.ReadFile(db); !bytes.Equal(after, before) || appID() != 0 {
		t.Error("a reader changed or marked the unmarked database")
	}
	if r := runBinary(t, env, l.runArgs(db, "--targets", fast)...); r.code != exitOK {
		t.Fatalf("run on the unmarked database: exit %d, stderr %q", r.code, r.stderr)
	}
	if id := appID(); id != measurements.ApplicationID {
		t.Errorf("application_id after a run = %#x, want %#x", id, measurements.ApplicationID)
	}
	list := runBinary(t, env, "list", "--db", db)
	if list.code != exitOK || strings.Count(list.stdout, "complete") != 2 {
		t.Errorf("list after marking: exit %d, stdout %q; want both runs complete", list.code, list.stdout)
	}
}

// TestReadersOnReadOnlyMount: readers read a database on a read-only file
// system, where SQLite cannot make the -shm index of a WAL read.
func TestReadersOnReadOnlyMount(t *testing.T) {
	mountNamespaceCheck(t)
	dir := filepath.Join(t.TempDir(), "ro")
	os.Mkdir(dir, 0o700)
	db := filepath.Join(dir, "reachprobe.db")
	store, err := measurements.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	addReportRun(t, store, time.Now().Add(-time.Hour), measurements.RunComplete)
	store.Close()
	const script = `set -e
mount --bind "$DIR" "$DIR"
mount -o remount,bind,ro "$DIR"
"$@"
`
	r := runBinary(t, append(os.Environ(), "DIR="+dir), "/usr/bin/env", "unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", binary, "list", "--db", db)
	if r.code != exitOK || !strings.Contains(r.stdout, "complete") {
		t.Errorf("list on a read-only mount: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
