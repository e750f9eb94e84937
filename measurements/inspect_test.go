package measurements

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dirState is every file of a directory and its bytes.
func dirState(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	state := map[string][]byte{}
	for _, e := range entries {
		state[e.Name()] = readFile(tb, filepath.Join(dir, e.Name()))
	}
	return state
}

// sameDir fails unless dir holds exactly the files of before, unchanged.
func sameDir(tb testing.TB, dir string, before map[string][]byte) {
	tb.Helper()
	after := dirState(tb, dir)
	for name, b := range before {
		if a, ok := after[name]; !ok || !bytes.Equal(a, b) {
			tb.Errorf("%s changed or went away", name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			tb.Errorf("%s was created", name)
		}
	}
}

// rawDB opens path with the SQLite driver and no vetting, read-write.
func rawDB(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	return db
}

func execSQL(tb testing.TB, db *sql.DB, stmts ...string) {
	tb.Helper()
	for _, s := range stmts {
		if _, err := db.ExecContext(tb.Context(), s); err != nil {
			tb.Fatalf("%s: %v", s, err)
		}
	}
}

// foreignDB writes another application's database: its own table, at
// userVersion, in WAL mode or not, with appID. With open, the connection
// stays open (a live WAL beside the file) until the test ends.
func foreignDB(tb testing.TB, path string, userVersion int, wal bool, appID uint32, open bool) {
	tb.Helper()
	db := rawDB(tb, path)
	if wal {
		execSQL(tb, db, "PRAGMA journal_mode=WAL")
	}
	execSQL(tb, db, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)", "INSERT INTO notes (body) VALUES ('keep me')",
		fmt.Sprintf("PRAGMA user_version = %d", userVersion), fmt.Sprintf("PRAGMA application_id = %d", appID))
	if open {
		execSQL(tb, db, "INSERT INTO notes (body) VALUES ('only in the WAL')")
		tb.Cleanup(func() { db.Close() })
		return
	}
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
}

// legacyDB writes a database as releases before ApplicationID did: WAL
// first, then migrations up to version, one run. With open, the
// connection stays open, its commits in the WAL only.
func legacyDB(tb testing.TB, path string, version int, open bool) int64 {
	tb.Helper()
	if err := os.WriteFile(path, nil, fileMode); err != nil {
		tb.Fatal(err)
	}
	db := rawDB(tb, path)
	execSQL(tb, db, "PRAGMA wal_autocheckpoint=0", "PRAGMA journal_mode=WAL")
	if err := migrate(tb.Context(), db, path, migrations[:version]); err != nil {
		tb.Fatal(err)
	}
	s := &Store{db: db, path: path, version: version}
	run := beginTestRun(tb, s, t0)
	o := sampleObservations(run)[0]
	if err := s.AddObservation(tb.Context(), &o); err != nil {
		tb.Fatal(err)
	}
	if open {
		tb.Cleanup(func() { db.Close() })
		return run
	}
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
	return run
}

func headerAppID(tb testing.TB, path string) uint32 {
	tb.Helper()
	return binary.BigEndian.Uint32(readFile(tb, path)[headerApplicationID:])
}

func TestInspect(t *testing.T) {
	tests := []struct {
		name    string
		make    func(t *testing.T, path string)
		want    FileKind
		wantErr error
	}{
		{"missing", func(t *testing.T, path string) {}, FileNew, nil},
		{"empty", func(t *testing.T, path string) { os.WriteFile(path, nil, 0o600) }, FileNew, nil},
		{"ours", func(t *testing.T, path string) {
			s, err := Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
		}, FileOurs, nil},
		{"ours, open", func(t *testing.T, path string) {
			s, err := Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
		}, FileOurs, nil},
		{"earlier release, version 1", func(t *testing.T, path string) { legacyDB(t, path, 1, false) }, FileUnmarked, nil},
		{"earlier release, version 2", func(t *testing.T, path string) { legacyDB(t, path, 2, false) }, FileUnmarked, nil},
		{"earlier release, version 3", func(t *testing.T, path string) { legacyDB(t, path, 3, false) }, FileUnmarked, nil},
		{"earlier release, WAL not checkpointed", func(t *testing.T, path string) { legacyDB(t, path, 3, true) }, FileUnmarked, nil},
		{"earlier release with a table added", func(t *testing.T, path string) {
			legacyDB(t, path, 3, false)
			db := rawDB(t, path)
			execSQL(t, db, "CREATE TABLE extra (x)")
			db.Close()
		}, 0, ErrForeign},
		{"empty WAL database", func(t *testing.T, path string) {
			db := rawDB(t, path)
			execSQL(t, db, "PRAGMA journal_mode=WAL")
			db.Close()
		}, 0, ErrForeign},
		{"another app, version 0", func(t *testing.T, path string) { foreignDB(t, path, 0, false, 0, false) }, 0, ErrForeign},
		{"another app, version 2", func(t *testing.T, path string) { foreignDB(t, path, 2, false, 0, false) }, 0, ErrForeign},
		{"another app, version 3", func(t *testing.T, path string) { foreignDB(t, path, 3, false, 0, false) }, 0, ErrForeign},
		{"another app in WAL, version 0", func(t *testing.T, path string) { foreignDB(t, path, 0, true, 0, false) }, 0, ErrForeign},
		{"another app in WAL, version 3", func(t *testing.T, path string) { foreignDB(t, path, 3, true, 0, false) }, 0, ErrForeign},
		{"another app in WAL, open", func(t *testing.T, path string) { foreignDB(t, path, 2, true, 0, true) }, 0, ErrForeign},
		{"another app's application_id", func(t *testing.T, path string) { foreignDB(t, path, 3, true, 0x0f055111, false) }, 0, ErrForeign},
		{"not SQLite", func(t *testing.T, path string) { os.WriteFile(path, []byte(strings.Repeat("text\n", 100)), 0o600) }, 0, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.db")
			tt.make(t, path)
			before := dirState(t, dir)
			got, err := Inspect(t.Context(), path)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Errorf("Inspect = %v, %v; want an error wrapping %v naming %s", got, err, tt.wantErr, path)
				}
			} else if err != nil || got != tt.want {
				t.Errorf("Inspect = %v, %v; want %v", got, err, tt.want)
			}
			sameDir(t, dir, before)
		})
	}
}

// TestForeignDatabaseUntouched: neither Open nor OpenReadOnly changes
// another program's database or creates anything beside it.
func TestForeignDatabaseUntouched(t *testing.T) {
	for _, version := range []int{0, 2, 3} {
		for _, wal := range []bool{false, true} {
			for _, open := range []bool{false, true} {
				if open && !wal {
					continue
				}
				t.Run(fmt.Sprintf("version %d wal %v open %v", version, wal, open), func(t *testing.T) {
					dir := t.TempDir()
					path := filepath.Join(dir, "app.db")
					foreignDB(t, path, version, wal, 0, open)
					before := dirState(t, dir)
					open := map[string]func() error{
						"Open": func() error { s, err := Open(t.Context(), path); closeIf(s); return err },
						"OpenReadOnly": func() error {
							s, err := OpenReadOnly(t.Context(), path, ReadOptions{})
							closeIf(s)
							return err
						},
					}
					for name, f := range open {
						if err := f(); !errors.Is(err, ErrForeign) || !strings.Contains(err.Error(), path) {
							t.Errorf("%s: err = %v, want ErrForeign naming %s", name, err, path)
						}
						sameDir(t, dir, before)
					}
				})
			}
		}
	}
}

func closeIf(s *Store) {
	if s != nil {
		s.Close()
	}
}

// TestNewDatabaseMarkedBeforeWAL: the mark is in the file itself as soon
// as Open returns, before any checkpoint: a run killed then leaves a file
// Inspect recognises.
func TestNewDatabaseMarkedBeforeWAL(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "new.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	header := readFile(t, path)[:headerSize]
	if id := binary.BigEndian.Uint32(header[headerApplicationID:]); id != ApplicationID {
		t.Errorf("application_id in the file = %#x, want %#x", id, ApplicationID)
	}
	if header[headerWriteVersion] != walVersion || header[headerReadVersion] != walVersion {
		t.Errorf("header bytes 18, 19 = %d, %d; want WAL (2, 2)", header[headerWriteVersion], header[headerReadVersion])
	}
	// What a kill -9 now leaves: the file without its WAL.
	killed := filepath.Join(t.TempDir(), "killed.db")
	copyFile(t, path, killed)
	if kind, err := Inspect(t.Context(), killed); err != nil || kind != FileOurs {
		t.Errorf("Inspect of the file of a run killed at once = %v, %v; want FileOurs", kind, err)
	}
}

// TestUnmarkedDatabaseMarked: a database of an earlier release is read as
// it is by OpenReadOnly and marked, and migrated, by Open.
func TestUnmarkedDatabaseMarked(t *testing.T) {
	for _, version := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("version %d", version), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "old.db")
			run := legacyDB(t, path, version, false)
			before := readFile(t, path)

			r, err := OpenReadOnly(t.Context(), path, ReadOptions{})
			if err != nil {
				t.Fatalf("OpenReadOnly: %v", err)
			}
			runs, err := r.Runs(t.Context())
			if err != nil || len(runs) != 1 || runs[0].ID != run || runs[0].Observations != 1 {
				t.Errorf("Runs = %+v, %v; want run %d with 1 observation", runs, err, run)
			}
			if _, err := r.RunSummary(t.Context(), run); !errors.Is(err, ErrNoSummary) {
				t.Errorf("RunSummary = %v, want ErrNoSummary", err)
			}
			if id, err := r.RunNetwork(t.Context(), run); err != nil || id != UnknownIdentity() {
				t.Errorf("RunNetwork = %+v, %v; want unknown", id, err)
			}
			if err := r.AddObservation(t.Context(), &sampleObservations(run)[1]); err == nil {
				t.Error("a read-only store stored an observation")
			}
			r.Close()
			if !bytes.Equal(readFile(t, path), before) {
				t.Error("OpenReadOnly changed the file")
			}

			w, err := Open(t.Context(), path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if v := pragma(t, w, "user_version"); v != fmt.Sprint(len(migrations)) {
				t.Errorf("user_version after Open = %s, want %d", v, len(migrations))
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if id := headerAppID(t, path); id != ApplicationID {
				t.Errorf("application_id after Open = %#x, want %#x", id, ApplicationID)
			}
			if kind, err := Inspect(t.Context(), path); err != nil || kind != FileOurs {
				t.Errorf("Inspect after Open = %v, %v; want FileOurs", kind, err)
			}
		})
	}
}

func TestOpenReadOnlyMissingOrEmpty(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "sub", "typo.db")
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	before := dirState(t, dir)
	for _, path := range []string{missing, empty} {
		s, err := OpenReadOnly(t.Context(), path, ReadOptions{})
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "reachprobe run") {
			t.Errorf("OpenReadOnly(%s) = %v, want ErrNoDatabase naming it and saying to run first", path, err)
		}
	}
	sameDir(t, dir, before)
}

// TestOpenReadOnlyReadsLiveAndCrashedWAL reads while a writer writes, and
// a copy of what a kill -9 leaves (the file and an uncheckpointed WAL).
func TestOpenReadOnlyReadsLiveAndCrashedWAL(t *testing.T) {
	w := newTestStore(t)
	run := beginTestRun(t, w, t0)
	in := sampleObservations(run)
	r, err := OpenReadOnly(t.Context(), w.path, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := range in {
		if err := w.AddObservation(t.Context(), &in[i]); err != nil {
			t.Fatal(err)
		}
		obs, err := r.Observations(t.Context(), run)
		if err != nil || len(obs) != i+1 {
			t.Fatalf("reader sees %d observations (%v) after %d writes", len(obs), err, i+1)
		}
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "crashed.db")
	copyFile(t, w.path, path)
	copyFile(t, w.path+"-wal", path+"-wal")
	before := readFile(t, path)
	c, err := OpenReadOnly(t.Context(), path, ReadOptions{})
	if err != nil {
		t.Fatalf("OpenReadOnly of a crashed database: %v", err)
	}
	defer c.Close()
	if obs, err := c.Observations(t.Context(), run); err != nil || len(obs) != len(in) {
		t.Errorf("Observations = %d, %v; want %d", len(obs), err, len(in))
	}
	if !bytes.Equal(readFile(t, path), before) {
		t.Error("OpenReadOnly changed the crashed database")
	}
}

// TestOpenReadOnlyInReadOnlyDirectory: with no WAL, a database in a
// directory the reader cannot write to (no -shm can be made) still reads.
func TestOpenReadOnlyInReadOnlyDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	beginTestRun(t, s, t0)
	s.Close()
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	if f, err := os.Create(filepath.Join(dir, "probe")); err == nil {
		f.Close()
		t.Skip("the directory is still writable after chmod 0500 (running as root)")
	}
	r, err := OpenReadOnly(t.Context(), path, ReadOptions{})
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	defer r.Close()
	if runs, err := r.Runs(t.Context()); err != nil || len(runs) != 1 {
		t.Errorf("Runs = %d, %v; want 1", len(runs), err)
	}
}

// TestReaderSeesKilledRun: with no writer, a run stored as running reads
// as interrupted, ended at its last observation; with one, as running.
func TestReaderSeesKilledRun(t *testing.T) {
	w := newTestStore(t)
	done := beginTestRun(t, w, t0)
	if err := w.EndRun(t.Context(), done, RunComplete, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	running := beginTestRun(t, w, t0.Add(time.Hour))
	obs := sampleObservations(running)
	for i := range obs {
		obs[i].Started = t0.Add(time.Hour + time.Duration(i)*time.Second)
		if err := w.AddObservation(t.Context(), &obs[i]); err != nil {
			t.Fatal(err)
		}
	}
	var lastEnd time.Time // when the last observation to finish finished
	for _, o := range obs {
		if end := o.Started.Add(o.Duration); end.After(lastEnd) {
			lastEnd = end
		}
	}

	for _, active := range []bool{true, false} {
		r, err := OpenReadOnly(t.Context(), w.path, ReadOptions{WriterActive: func() bool { return active }})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus, wantEnd := RunRunning, time.Time{}
		if !active {
			wantStatus, wantEnd = RunInterrupted, lastEnd
		}
		runs, err := r.Runs(t.Context())
		if err != nil || len(runs) != 2 {
			t.Fatalf("Runs = %v, %v", runs, err)
		}
		one, err := r.Run(t.Context(), running)
		if err != nil {
			t.Fatal(err)
		}
		for _, got := range []Run{runs[0], one} {
			if got.ID != running || got.Status != wantStatus || !got.Ended.Equal(wantEnd) {
				t.Errorf("writer active %v: run %d %s ended %v; want %s ended %v", active, got.ID, got.Status, got.Ended, wantStatus, wantEnd)
			}
		}
		if runs[1].Status != RunComplete {
			t.Errorf("writer active %v: the finished run reads as %s", active, runs[1].Status)
		}
		r.Close()
	}
	// The database itself still says running: readers write nothing.
	if got, err := w.Run(t.Context(), running); err != nil || got.Status != RunRunning {
		t.Errorf("stored run = %+v, %v; want still running", got, err)
	}
}

// FuzzInspect: whatever the file holds, Inspect does not panic, changes
// nothing and creates nothing beside it, and accepts a non-empty file
// only when it carries the mark or reachprobe's schema.
func FuzzInspect(f *testing.F) {
	_, valid := writeRealDB(f, f.TempDir())
	f.Add([]byte{})
	f.Add([]byte(sqliteMagic))
	f.Add(valid[:headerSize])
	f.Add(valid)
	unmarked := bytes.Clone(valid)
	binary.BigEndian.PutUint32(unmarked[headerApplicationID:], 0)
	f.Add(unmarked)
	f.Fuzz(func(t *testing.T, content []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "fuzz.db")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		kind, err := Inspect(t.Context(), path)
		sameDir(t, dir, map[string][]byte{"fuzz.db": content})
		if err != nil {
			return
		}
		switch {
		case len(content) == 0:
			if kind != FileNew {
				t.Errorf("empty file: kind %v, want FileNew", kind)
			}
		case kind == FileOurs:
			if binary.BigEndian.Uint32(content[headerApplicationID:]) != ApplicationID {
				t.Error("FileOurs without the mark")
			}
		case kind == FileUnmarked:
			if binary.BigEndian.Uint32(content[headerApplicationID:]) != 0 {
				t.Error("FileUnmarked with an application_id")
			}
		default:
			t.Errorf("non-empty file: kind %v", kind)
		}
	})
}
