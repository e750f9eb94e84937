package measurements

// # Storage design
//
// A Store is one SQLite file in WAL mode, opened through database/sql with
// modernc.org/sqlite (pure Go, no cgo). Every observation is committed as
// soon as it is made, so a crash or kill -9 loses at most the steps in
// flight; the run it belonged to stays "running" until the next Open's
// caller marks it interrupted (MarkUnfinishedRuns). Until then, readers
// told that no writer is active (ReadOptions) show it as interrupted.
// Once a run has ended, its rows are packed into one compressed row of
// observation_packs (see pack.go): a run of the default catalog takes
// about 9 KB instead of 150.
//
// Open never writes to a file it has not vetted: it checks the SQLite
// header and reachprobe's mark with plain file reads (Inspect, see
// inspect.go), then sanity-checks the file (sanityCheck: the header's page
// count against the file's size, the schema readable) and reads the schema
// version over a read-only connection, and only then opens the file for
// writing. A foreign, corrupt or newer file is reported (ErrForeign,
// ErrCorrupt, ErrNewerSchema) and left as it was.
//
// # Integrity checks
//
// A check that reads every page costs time in the size of the file (about
// 1.3 s a GB here, far more on an SD card), so it runs where it protects
// data, not on every open: prune runs PRAGMA quick_check before it deletes
// anything, and "reachprobe check" runs PRAGMA integrity_check
// (CheckIntegrity). Open and OpenReadOnly only run sanityCheck, whose cost
// does not grow with the file: a 100-byte header read and the schema page.
// A reader that meets a damaged page later gets SQLite's "database disk
// image is malformed" for that query, and the file is never written.
//
// OpenReadOnly is for the commands that only read: it never creates,
// migrates, marks or changes the journal mode of a database, and reads
// through the WAL a live or killed writer left.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// BusyTimeout is how long a statement waits for a lock held by another
// connection (another reachprobe process reading or checkpointing the same
// file) before failing. Each write is one small row, so locks are held for
// milliseconds; waiting 10s rides out a slow checkpoint on a busy disk, and
// anything longer means a stuck process, which is better reported than
// waited on forever.
const BusyTimeout = 10 * time.Second

// File modes: the database records which services a network blocks, which
// is nobody else's business on a shared machine.
const (
	dirMode  os.FileMode = 0o700
	fileMode os.FileMode = 0o600
)

// sqliteMagic starts every SQLite 3 database file; headerSize is the length
// of the database header it begins.
const (
	sqliteMagic = "SQLite format 3\x00"
	headerSize  = 100
)

// checkLines caps how many problems of a failed integrity check an error
// quotes: the first few say what is wrong, the rest (up to 100) mostly
// repeat it cell by cell.
const checkLines = 3

// Errors of Open and of the queries. Open's errors name the file.
var (
	// ErrCorrupt: the file is not a SQLite database, or it is one that
	// fails its integrity check. Open left the file untouched.
	ErrCorrupt = errors.New("database is not a valid SQLite database")
	// ErrNewerSchema: the database was written by a newer reachprobe whose
	// schema this one does not know. Open left the file untouched.
	ErrNewerSchema = errors.New("database schema is newer than this reachprobe")
	// ErrNoRun: no run has the requested id, or there is no run at all.
	ErrNoRun = errors.New("no such run")
	// ErrNoCatalog: no catalog with the requested digest was stored.
	ErrNoCatalog = errors.New("no such catalog")
)

// openError is an error of Open with a message of its own that still
// matches its sentinel with errors.Is.
type openError struct {
	msg      string
	sentinel error
}

func (e *openError) Error() string { return e.msg }
func (e *openError) Unwrap() error { return e.sentinel }

func corruptError(path, format string, args ...any) error {
	return &openError{
		msg: fmt.Sprintf("database %s is corrupt or not a SQLite database (%s); it was left untouched: move it aside to start a new one",
			path, fmt.Sprintf(format, args...)),
		sentinel: ErrCorrupt,
	}
}

func newerSchemaError(path string, version, newest int) error {
	return &openError{
		msg: fmt.Sprintf("database %s has schema version %d, this reachprobe understands up to %d; upgrade reachprobe",
			path, version, newest),
		sentinel: ErrNewerSchema,
	}
}

// Store keeps runs, their catalogs and their observations in one SQLite
// file. It is safe for concurrent use.
//
// Concurrency: the Store holds a single connection (SetMaxOpenConns(1)),
// which database/sql lends to one caller at a time. That serializes this
// process's writes without any SQLITE_BUSY contention between our own
// connections, and every write is one short transaction (no fsync per
// commit in WAL mode with synchronous=NORMAL), so callers queue only
// briefly. Other processes use their own connections: WAL lets them read
// while this one writes, and BusyTimeout covers the rest.
type Store struct {
	db   *sql.DB
	path string
	// version is the schema version: len(migrations) for a writer, maybe
	// less for a reader of a database no newer reachprobe has written.
	version int
	// writerActive, set for readers, reports whether a writer holds the
	// database; nil means runs are shown as stored (see queryRuns).
	writerActive func() bool
}

// Open opens the database at path for writing, creating it and its parent
// directory if missing, and brings its schema up to date. A new database
// is marked with ApplicationID before it is switched to WAL; a database of
// an earlier reachprobe (FileUnmarked) is marked once.
//
// An existing file is vetted before anything is written to it: a file
// that is not a SQLite database or fails sanityCheck (truncated, schema
// unreadable) gives an error wrapping ErrCorrupt, another program's
// database ErrForeign, a schema newer than this reachprobe's
// ErrNewerSchema, and in each case the file is not modified. The vetting
// reads the header and the schema, not every page: CheckIntegrity does.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("measurements: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	kind, err := Inspect(ctx, path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(abs), dirMode); err != nil {
		return nil, fmt.Errorf("database %s: creating its directory: %w", path, err)
	}
	fresh, err := createFile(abs)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	if !fresh {
		if kind == FileNew { // made by another process since Inspect
			if kind, err = Inspect(ctx, path); err != nil {
				return nil, err
			}
		}
		if kind != FileNew {
			if err := vet(ctx, path, dsn(abs, true)); err != nil {
				return nil, err
			}
		}
		// SQLite would silently fall back to read-only; say so up front.
		f, err := os.OpenFile(abs, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("database %s is not writable: %w", path, err)
		}
		f.Close()
	}

	db, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	s := &Store{db: db, path: path, version: len(migrations)}
	if err := s.setUp(ctx, abs, kind == FileUnmarked); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// ReadOptions are the options of OpenReadOnly.
type ReadOptions struct {
	// WriterActive reports whether a writer (a run, a prune) holds the
	// database now. When it says no, before and after a query, a run still
	// stored as RunRunning was cut short (kill -9, a power cut) and is
	// returned as RunInterrupted, ended at its last observation; nothing
	// is written. nil returns runs as stored.
	WriterActive func() bool
}

// OpenReadOnly opens the database at path for reading only. It never
// creates, migrates, marks or changes the journal mode of the file: a
// missing or empty file gives an error wrapping ErrNoDatabase, and
// another program's database, a corrupt one or a newer schema the errors
// Open gives, with the file untouched. It reads a database in any state a
// writer leaves it: with a live writer, with a WAL a killed writer did not
// checkpoint, or at an older schema version.
func OpenReadOnly(ctx context.Context, path string, opts ReadOptions) (*Store, error) {
	if path == "" {
		return nil, errors.New("measurements: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	if _, err := os.Stat(abs); errors.Is(err, os.ErrNotExist) {
		return nil, &openError{msg: fmt.Sprintf("no database at %s: run \"reachprobe run\" first, or give --db", path), sentinel: ErrNoDatabase}
	}
	kind, err := Inspect(ctx, path)
	if err != nil {
		return nil, err
	}
	if kind == FileNew {
		return nil, &openError{msg: fmt.Sprintf("database %s is empty: run \"reachprobe run\" first", path), sentinel: ErrNoDatabase}
	}
	conn := dsn(abs, true)
	err = vet(ctx, path, conn)
	if err != nil && isCantOpen(err) {
		// A read-only directory: SQLite cannot make the -shm index a WAL
		// read needs. Without a WAL the file holds everything, and an
		// immutable open needs no index.
		if _, werr := os.Lstat(abs + "-wal"); errors.Is(werr, os.ErrNotExist) {
			conn += "&immutable=1"
			err = vet(ctx, path, conn)
		}
	}
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", conn)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	version, err := userVersion(ctx, db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s: reading schema version: %w", path, err)
	}
	return &Store{db: db, path: path, version: version, writerActive: opts.WriterActive}, nil
}

// isCantOpen reports whether err is SQLite's SQLITE_CANTOPEN.
func isCantOpen(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CANTOPEN
}

// Close closes the database. Observations already added are committed.
func (s *Store) Close() error { return s.db.Close() }

// Path is the database's file as it was given to Open.
func (s *Store) Path() string { return s.path }

// createFile creates the database file with mode 0600 if it does not
// exist, and reports whether it is new (or empty, which SQLite treats as a
// new database: a crash right after creating it leaves one).
func createFile(abs string) (fresh bool, err error) {
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
	if err == nil {
		defer f.Close()
		// The umask may have narrowed the mode; make it exactly 0600.
		if err := f.Chmod(fileMode); err != nil {
			return false, err
		}
		return true, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return false, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}
	return fi.Size() == 0, nil
}

// vet checks an existing database Inspect has accepted, without
// modifying it: sanity and schema version over the read-only connection
// conn.
func vet(ctx context.Context, path, conn string) error {
	db, err := sql.Open("sqlite", conn)
	if err != nil {
		return fmt.Errorf("database %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	if err := sanityCheck(ctx, path, db); err != nil {
		if isCorruption(err) {
			return corruptError(path, "%v", err)
		}
		return fmt.Errorf("database %s: checking integrity: %w", path, err)
	}
	version, err := userVersion(ctx, db)
	if err != nil {
		if isCorruption(err) {
			return corruptError(path, "%v", err)
		}
		return fmt.Errorf("database %s: reading schema version: %w", path, err)
	}
	if version > len(migrations) {
		return newerSchemaError(path, version, len(migrations))
	}
	return nil
}

// sanityCheck is the check of every open, whose cost does not grow with
// the database: the pages the header says the file holds must be in the
// file (a truncated copy or a full disk's short write fails here), and the
// schema must parse (a damaged first page fails here). Damage inside the
// file is CheckIntegrity's to find.
func sanityCheck(ctx context.Context, path string, db *sql.DB) error {
	if err := checkFileSize(path); err != nil {
		return err
	}
	var tables int
	return db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&tables)
}

// Offsets in the SQLite header (https://sqlite.org/fileformat.html).
const (
	headerPageSize     = 16 // big-endian uint16; 1 means 65536
	headerChangeCount  = 24 // big-endian uint32
	headerPageCount    = 28 // big-endian uint32, valid if headerValidFor matches headerChangeCount
	headerValidFor     = 92 // big-endian uint32
	walHeaderSize      = 32 // a WAL no longer than its header holds no frame
	maxSQLitePageSize  = 65536
	minSQLitePageSize  = 512
	pageSizeMeans65536 = 1
)

// checkFileSize compares the size the header states (page count times
// page size) with the file's. SQLite trusts the header's page count only
// while its version-valid-for number equals its change counter, and a
// WAL with frames may hold pages a crash kept from the file (a checkpoint
// cut short), so either case passes. Sizes are int64: a year of history
// is gigabytes, beyond a 32-bit int.
func checkFileSize(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	header := make([]byte, headerSize)
	if _, err := io.ReadFull(f, header); err != nil {
		return &integrityError{pragma: "header", problems: []string{fmt.Sprintf("cannot read the %d-byte header: %v", headerSize, err)}}
	}
	pageSize := int64(binary.BigEndian.Uint16(header[headerPageSize:]))
	if pageSize == pageSizeMeans65536 {
		pageSize = maxSQLitePageSize
	}
	if pageSize < minSQLitePageSize || pageSize > maxSQLitePageSize || pageSize&(pageSize-1) != 0 {
		return &integrityError{pragma: "header", problems: []string{fmt.Sprintf("page size %d is not a power of two from 512 to 65536", pageSize)}}
	}
	pages := int64(binary.BigEndian.Uint32(header[headerPageCount:]))
	if pages == 0 || !bytes.Equal(header[headerValidFor:headerValidFor+4], header[headerChangeCount:headerChangeCount+4]) {
		return nil
	}
	if wal, err := os.Stat(path + "-wal"); err == nil && wal.Size() > walHeaderSize {
		return nil
	}
	if want := pages * pageSize; fi.Size() < want {
		return &integrityError{pragma: "header", problems: []string{fmt.Sprintf(
			"the header says %d pages of %d bytes (%d bytes), the file has %d: it was cut short", pages, pageSize, want, fi.Size())}}
	}
	return nil
}

// IntegrityCheck says how thoroughly CheckIntegrity reads the database.
type IntegrityCheck int

const (
	// QuickCheck is PRAGMA quick_check: the structure of every b-tree
	// page, in time linear in the file's size.
	QuickCheck IntegrityCheck = iota
	// FullCheck is PRAGMA integrity_check: also that every index agrees
	// with its table, at several times the cost.
	FullCheck
)

func (c IntegrityCheck) pragma() string {
	if c == FullCheck {
		return "integrity_check"
	}
	return "quick_check"
}

// CheckIntegrity reads every page of the database and returns an error
// wrapping ErrCorrupt that quotes the first problems when SQLite finds
// any; another error means the check could not run (I/O, cancellation).
// It writes nothing.
func (s *Store) CheckIntegrity(ctx context.Context, how IntegrityCheck) error {
	if err := integrityCheck(ctx, s.db, how); err != nil {
		if isCorruption(err) {
			var ie *integrityError
			if !errors.As(err, &ie) { // SQLite stopped the check itself
				err = fmt.Errorf("%s: %w", how.pragma(), err)
			}
			return &openError{
				msg: fmt.Sprintf("database %s is corrupt (%v); keep a copy of the file before anything writes to it: \"sqlite3 %s .recover\" may save what is readable, or move it aside to start a new one",
					s.path, err, s.path),
				sentinel: ErrCorrupt,
			}
		}
		return fmt.Errorf("database %s: checking integrity: %w", s.path, err)
	}
	return nil
}

// integrityCheck runs PRAGMA quick_check or integrity_check and turns a
// report other than "ok" into an error wrapping a corruption code.
func integrityCheck(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, how IntegrityCheck) error {
	rows, err := db.QueryContext(ctx, "PRAGMA "+how.pragma())
	if err != nil {
		return err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var report string
		if err := rows.Scan(&report); err != nil {
			return err
		}
		// One row may hold many problems, a line each.
		for _, line := range strings.Split(report, "\n") {
			line = strings.TrimSpace(line)
			if line != "" && line != "ok" && line != "*** in database main ***" {
				problems = append(problems, line)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(problems) == 0 {
		return nil
	}
	return &integrityError{pragma: how.pragma(), problems: problems}
}

// integrityError is an integrity check's report other than "ok".
type integrityError struct {
	pragma   string
	problems []string
}

func (e *integrityError) Error() string {
	shown := e.problems[:min(len(e.problems), checkLines)]
	msg := e.pragma + ": " + strings.Join(shown, "; ")
	if more := len(e.problems) - len(shown); more > 0 {
		msg += fmt.Sprintf("; and %d more", more)
	}
	return msg
}

// isCorruption reports whether err says the file's content is damaged or
// not a database, as opposed to an I/O, permission or context error.
func isCorruption(err error) bool {
	var ie *integrityError
	if errors.As(err, &ie) {
		return true
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // primary code of an extended one
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return true
		}
	}
	return false
}

// setUp configures a freshly opened read-write connection, marks the
// database as reachprobe's and migrates the schema. Nothing is written
// before the schema version has been checked. unmarked says the database
// is an earlier release's, in WAL mode already.
func (s *Store) setUp(ctx context.Context, abs string, unmarked bool) error {
	version, err := userVersion(ctx, s.db)
	if err != nil {
		if isCorruption(err) {
			return corruptError(s.path, "%v", err)
		}
		return fmt.Errorf("database %s: reading schema version: %w", s.path, err)
	}
	if version > len(migrations) {
		return newerSchemaError(s.path, version, len(migrations))
	}
	// The mark goes in before WAL: set on a new file, it is written to the
	// file itself at once, so even a run killed now leaves a file Inspect
	// recognises. An earlier release's database (in WAL already) gets it
	// through the WAL, checkpointed below.
	var appID int64
	if err := s.db.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return fmt.Errorf("database %s: reading application_id: %w", s.path, err)
	}
	if appID != ApplicationID {
		// PRAGMA takes no parameters; ApplicationID is a constant.
		if _, err := s.db.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", ApplicationID)); err != nil {
			return fmt.Errorf("database %s: marking it as reachprobe's: %w", s.path, err)
		}
	}
	// journal_mode is stored in the file, so this is a no-op after the
	// first Open; it reports the mode in force, which is not "wal" where
	// the file system cannot share memory between processes.
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		return fmt.Errorf("database %s: enabling WAL: %w", s.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("database %s: journal mode is %q, want wal", s.path, mode)
	}
	if err := migrate(ctx, s.db, s.path, migrations); err != nil {
		return err
	}
	// Migration 7's rewrite, resumed at every open until done; later, the
	// rows of any run that ended unpacked (see pack.go).
	packed, err := s.packEndedRuns(ctx)
	if err != nil {
		return fmt.Errorf("database %s: %w", s.path, err)
	}
	if packed.Runs > 0 {
		if err := s.compactIfMostlyFree(ctx); err != nil {
			return err
		}
	}
	if unmarked {
		// Copies the mark into the file's header, where Inspect reads it.
		// A reader can hold the checkpoint back; the mark then reaches
		// the file later, and until then the schema still identifies it.
		var busy, frames, done int
		if err := s.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &done); err != nil {
			return fmt.Errorf("database %s: checkpointing its mark: %w", s.path, err)
		}
	}
	// SQLite creates -wal and -shm with the database file's mode; make
	// sure of 0600 regardless of how an older file or the umask set it.
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Chmod(abs+suffix, fileMode); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("database %s: %w", s.path, err)
		}
	}
	return nil
}

func userVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

// dsn is the modernc.org/sqlite data source name for the file at abs.
//
// synchronous=NORMAL in WAL mode appends each commit to the -wal file
// without an fsync; the WAL is synced when it is checkpointed into the
// database. A commit has been written to the operating system by the time
// it returns, so a crash or kill -9 of reachprobe loses nothing committed:
// the next open replays the WAL. Only an operating-system crash or power
// loss can drop the last few commits, and even then the database stays
// consistent. That is the right trade for a probe writing one row per step.
//
// _txlock=immediate makes transactions take the write lock at BEGIN, so a
// transaction never has to upgrade from reading to writing, which in WAL
// mode fails at once with SQLITE_BUSY instead of waiting for BusyTimeout.
func dsn(abs string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(BusyTimeout.Milliseconds(), 10)+")")
	if readOnly {
		q.Set("mode", "ro")
	} else {
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
	}
	// A URI, so that "?" or "#" in the path are escaped rather than taken
	// for the start of parameters.
	return "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + q.Encode()
}
