package measurements

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	in, err := os.Open(from)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}

// writeRealDB writes a closed database with enough observations to span
// many pages, and returns its path and bytes.
func writeRealDB(tb testing.TB, dir string) (string, []byte) {
	tb.Helper()
	path := filepath.Join(dir, "real.db")
	s, err := Open(tb.Context(), path)
	if err != nil {
		tb.Fatal(err)
	}
	run := beginTestRun(tb, s, t0)
	for i := range 300 {
		o := sampleObservations(run)[0]
		o.Target = fmt.Sprintf("target-%d", i)
		o.DNS.RawResponse = bytes.Repeat([]byte{byte(i)}, 600)
		if err := s.AddObservation(tb.Context(), &o); err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	return path, readFile(tb, path)
}

// pragma reads one value of a PRAGMA on the store's connection.
func pragma(tb testing.TB, s *Store, name string) string {
	tb.Helper()
	var v string
	if err := s.db.QueryRowContext(tb.Context(), "PRAGMA "+name).Scan(&v); err != nil {
		tb.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestOpenSettings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "reachprobe.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	beginTestRun(t, s, t0) // a write, so the WAL is in use

	for _, tt := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"synchronous", "1"}, // NORMAL
		{"busy_timeout", fmt.Sprint(BusyTimeout.Milliseconds())},
		{"user_version", fmt.Sprint(len(migrations))},
	} {
		if got := pragma(t, s, tt.pragma); got != tt.want {
			t.Errorf("PRAGMA %s = %q, want %q", tt.pragma, got, tt.want)
		}
	}

	modes := []struct {
		path     string
		want     os.FileMode
		optional bool // SQLite may have removed it
	}{
		{dir, 0o700, false},
		{filepath.Dir(dir), 0o700, false},
		{path, 0o600, false},
		{path + "-wal", 0o600, true},
		{path + "-shm", 0o600, true},
	}
	for _, m := range modes {
		fi, err := os.Stat(m.path)
		if m.optional && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Errorf("stat %s: %v", m.path, err)
			continue
		}
		// The umask may narrow a directory's mode, never widen it.
		if got := fi.Mode().Perm(); got&^m.want != 0 || (!fi.IsDir() && got != m.want) {
			t.Errorf("%s has mode %v, want %v", filepath.Base(m.path), got, m.want)
		}
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("no -wal file while open: %v", err)
	}
}

func TestReopenIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reachprobe.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	run := beginTestRun(t, s, t0)
	schema := func(s *Store) string {
		var sql string
		if err := s.db.QueryRowContext(t.Context(),
			"SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_schema ORDER BY name)").Scan(&sql); err != nil {
			t.Fatal(err)
		}
		return sql
	}
	want := schema(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		if got := schema(s); got != want {
			t.Errorf("reopen %d: schema\n%s\nwant\n%s", i, got, want)
		}
		if got := pragma(t, s, "user_version"); got != fmt.Sprint(len(migrations)) {
			t.Errorf("reopen %d: user_version %s, want %d", i, got, len(migrations))
		}
		if _, err := s.Run(t.Context(), run); err != nil {
			t.Errorf("reopen %d: Run(%d): %v", i, run, err)
		}
		s.Close()
	}
}

func TestFailedMigrationRollsBack(t *testing.T) {
	s := newTestStore(t)
	scripts := append(append([]string{}, migrations...),
		"CREATE TABLE added (x INTEGER); CREATE TABLE broken (", // the second statement fails
	)
	err := migrate(t.Context(), s.db, "test.db", scripts)
	if err == nil {
		t.Fatal("migrate with a broken script succeeded")
	}
	if got := pragma(t, s, "user_version"); got != fmt.Sprint(len(migrations)) {
		t.Errorf("user_version after a failed migration = %s, want %d", got, len(migrations))
	}
	var n int
	if err := s.db.QueryRowContext(t.Context(), "SELECT count(*) FROM sqlite_schema WHERE name = 'added'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("table of the failed migration exists; the migration was not rolled back")
	}
}

func TestOpenRejectsForeignFiles(t *testing.T) {
	tests := []struct {
		name    string
		content []byte
	}{
		{"text", []byte(strings.Repeat("this is not a database\n", 200))},
		{"png", append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 4000)...)},
		{"zeros", make([]byte, 8192)},
		{"short header", []byte(sqliteMagic + "\x10\x00")},
		{"header then junk", append([]byte(sqliteMagic), bytes.Repeat([]byte{0xa5}, 8192)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "reachprobe.db")
			if err := os.WriteFile(path, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(t.Context(), path)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want ErrCorrupt")
			}
			if !(errors.Is(err, ErrCorrupt) || errors.Is(err, ErrForeign)) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open: err = %v, want ErrCorrupt or ErrForeign naming %s", err, path)
			}
			if got := readFile(t, path); !bytes.Equal(got, tt.content) {
				t.Errorf("Open modified the file")
			}
			// Refused before SQLite opened it: not even a -wal or -shm.
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("directory has %d entries, want only the file", len(entries))
			}
		})
	}
}

// TestCorruptDatabase: damage that Open's cheap sanity check can see (a
// truncated file, an unreadable schema) is refused at Open; damage inside
// the file is found by CheckIntegrity, quick and full, which quote
// SQLite's report. Neither modifies the file.
func TestCorruptDatabase(t *testing.T) {
	_, valid := writeRealDB(t, t.TempDir())
	const page = 4096
	if len(valid) < 20*page {
		t.Fatalf("test database is %d bytes, too small to corrupt in the middle", len(valid))
	}
	tests := []struct {
		name    string
		corrupt func([]byte) []byte
		atOpen  bool   // Open's sanity check refuses it
		wantMsg string // in the error, when the damage has a specific report
	}{
		{"middle pages overwritten", func(b []byte) []byte {
			mid := len(b) / 2 / page * page
			junk := bytes.Repeat([]byte("junk\x00\xff\x13\x37"), 4*page/8)
			copy(b[mid:], junk)
			return b
		}, false, ""},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2/page*page] }, true, "it was cut short"},
		{"schema page overwritten", func(b []byte) []byte {
			copy(b[headerSize:page], bytes.Repeat([]byte{0x0d}, page-headerSize))
			return b
		}, true, ""},
		{"freelist count wrong", func(b []byte) []byte {
			copy(b[36:40], []byte{0, 0, 0, 7}) // header: total freelist pages
			return b
		}, false, "Freelist: size is 0 but should be 7"},
		{"cell pointers of a middle page", func(b []byte) []byte {
			mid := len(b) / 2 / page * page
			copy(b[mid+3:mid+5], []byte{0, 200}) // b-tree page header: number of cells
			return b
		}, false, "; and 97 more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "reachprobe.db")
			bad := tt.corrupt(bytes.Clone(valid))
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if got := readFile(t, path); !bytes.Equal(got, bad) {
					t.Errorf("the corrupt file was modified")
				}
			}()
			wantErr := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("%s: err = %v, want ErrCorrupt naming %s and saying %q", what, err, path, tt.wantMsg)
				}
			}
			if tt.atOpen {
				for name, open := range map[string]func() (*Store, error){
					"Open":         func() (*Store, error) { return Open(t.Context(), path) },
					"OpenReadOnly": func() (*Store, error) { return OpenReadOnly(t.Context(), path, ReadOptions{}) },
				} {
					s, err := open()
					if err == nil {
						s.Close()
						t.Fatalf("%s succeeded, want ErrCorrupt", name)
					}
					wantErr(name, err)
				}
				return
			}
			s, err := OpenReadOnly(t.Context(), path, ReadOptions{})
			if err != nil {
				t.Fatalf("OpenReadOnly: %v (its sanity check should not read every page)", err)
			}
			defer s.Close()
			for _, how := range []IntegrityCheck{QuickCheck, FullCheck} {
				err := s.CheckIntegrity(t.Context(), how)
				if err == nil {
					t.Fatalf("CheckIntegrity(%s) found nothing, want ErrCorrupt", how.pragma())
				}
				wantErr(how.pragma(), err)
				if !strings.Contains(err.Error(), how.pragma()+": ") {
					t.Errorf("CheckIntegrity: %v, want it to name %s", err, how.pragma())
				}
			}
		})
	}
}

// TestCheckIntegrityOfSoundDatabase: a sound database passes both checks.
func TestCheckIntegrityOfSoundDatabase(t *testing.T) {
	path, _ := writeRealDB(t, t.TempDir())
	s, err := OpenReadOnly(t.Context(), path, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, how := range []IntegrityCheck{QuickCheck, FullCheck} {
		if err := s.CheckIntegrity(t.Context(), how); err != nil {
			t.Errorf("CheckIntegrity(%s): %v", how.pragma(), err)
		}
	}
}

func TestOpenRejectsNewerSchema(t *testing.T) {
	path, _ := writeRealDB(t, t.TempDir())
	raw, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(t.Context(), "PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil { // checkpoints the WAL into the file
		t.Fatal(err)
	}
	before := readFile(t, path)

	s, err := Open(t.Context(), path)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded, want ErrNewerSchema")
	}
	if !errors.Is(err, ErrNewerSchema) {
		t.Errorf("Open: err = %v, want ErrNewerSchema", err)
	}
	want := fmt.Sprintf("database %s has schema version 99, this reachprobe understands up to %d; upgrade reachprobe",
		path, len(migrations))
	if err != nil && err.Error() != want {
		t.Errorf("Open: error %q, want %q", err, want)
	}
	if got := readFile(t, path); !bytes.Equal(got, before) {
		t.Errorf("Open modified the file")
	}
}

func TestOpenReadOnlyFile(t *testing.T) {
	path, _ := writeRealDB(t, t.TempDir())
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		f.Close()
		t.Skip("the file is still writable after chmod 0400 (running as root or with CAP_DAC_OVERRIDE); cannot test a read-only database")
	}
	before := readFile(t, path)
	s, err := Open(t.Context(), path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a read-only database succeeded, want an error")
	}
	t.Logf("Open: %v", err)
	if errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Errorf("Open: err = %v, want an error naming %s that is not ErrCorrupt", err, path)
	}
	if got := readFile(t, path); !bytes.Equal(got, before) {
		t.Errorf("Open modified the file")
	}
}

// TestCommittedSurvivesCrash copies a database and its WAL while the store
// is open, which is what a kill -9 leaves behind, and opens the copy.
func TestCommittedSurvivesCrash(t *testing.T) {
	s := newTestStore(t)
	run := beginTestRun(t, s, t0)
	in := sampleObservations(run)
	for i := range in {
		if err := s.AddObservation(t.Context(), &in[i]); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "crashed.db")
	abs, err := filepath.Abs(s.path)
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, abs, path)
	copyFile(t, abs+"-wal", path+"-wal")

	c, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open after a crash: %v", err)
	}
	defer c.Close()
	obs, err := c.Observations(t.Context(), run)
	if err != nil || len(obs) != len(in) {
		t.Errorf("Observations after a crash = %d, %v; want %d, nil", len(obs), err, len(in))
	}
	if n, err := c.MarkUnfinishedRuns(t.Context(), t0.Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("MarkUnfinishedRuns after a crash = %d, %v; want 1, nil", n, err)
	}
}

func TestOpenPaths(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the path to open
		ok    bool
	}{
		{"URI characters in the path", func(t *testing.T, dir string) string {
			return filepath.Join(dir, "we?ird #dir%20", "db?x#y")
		}, true},
		{"existing empty file", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "empty.db")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, true},
		{"directory", func(t *testing.T, dir string) string { return dir }, false},
		{"parent is a file", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "file")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(p, "reachprobe.db")
		}, false},
		{"empty path", func(t *testing.T, dir string) string { return "" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tt.setup(t, dir)
			s, err := Open(t.Context(), path)
			if !tt.ok {
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			beginTestRun(t, s, t0)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
				t.Errorf("database not written at %q: %v", path, err)
			}
		})
	}
}

// FuzzOpen opens arbitrary bytes as a database: Open must not panic, and
// when it refuses the file it must leave it as it was.
func FuzzOpen(f *testing.F) {
	_, valid := writeRealDB(f, f.TempDir())
	f.Add([]byte{})
	f.Add([]byte("not a database"))
	f.Add([]byte(sqliteMagic))
	f.Add(valid[:4096])
	f.Add(valid[:len(valid)/2])
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(t.TempDir(), "fuzz.db")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(t.Context(), path)
		if err != nil {
			if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNewerSchema) || errors.Is(err, ErrForeign) {
				if got := readFile(t, path); !bytes.Equal(got, content) {
					t.Errorf("Open refused the file (%v) but modified it", err)
				}
			}
			return
		}
		defer s.Close()
		if _, err := s.Runs(t.Context()); err != nil {
			t.Errorf("Runs on a database Open accepted: %v", err)
		}
	})
}
