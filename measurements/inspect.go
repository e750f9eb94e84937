package measurements

// # Whose file is it
//
// reachprobe marks its databases with SQLite's application_id (the header
// field at offset 68), set before the switch to WAL, so that even a first
// run killed at once leaves a file it recognises. Inspect reads the mark
// with plain file reads before SQLite opens anything: SQLite itself, even
// read-only, would create -wal and -shm files beside a WAL database.
// Databases written before the mark existed have application_id 0: they
// are recognised by their schema, compared with the schema reachprobe's
// migrations make, without creating anything beside them, and a writer
// marks them once. Every other non-empty file is refused, untouched.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
)

// ApplicationID is the application_id of reachprobe's SQLite databases:
// "RPRB" in ASCII, not among the identifiers registered in SQLite's
// magic.txt. Never change it: databases in the field carry it.
const ApplicationID = 0x52505242

// Header fields of a SQLite database file (https://sqlite.org/fileformat.html).
const (
	headerWriteVersion  = 18 // 2 when the database is in WAL mode
	headerReadVersion   = 19 // 2 when the database is in WAL mode
	headerApplicationID = 68 // big-endian uint32
	walVersion          = 2
)

// ErrForeign: the file is a SQLite database of another program (or one
// reachprobe cannot tell is its own). It was left untouched.
var ErrForeign = errors.New("not a reachprobe database")

// ErrNoDatabase: a command that only reads found no database, or an
// empty file, at the path. Nothing was created.
var ErrNoDatabase = errors.New("no database")

// FileKind is what Inspect found at a database path.
type FileKind int

const (
	// FileNew: no file, or an empty one; a writer makes a new database.
	FileNew FileKind = iota
	// FileOurs: a database carrying ApplicationID.
	FileOurs
	// FileUnmarked: a database of a reachprobe release from before
	// ApplicationID, recognised by its schema; a writer marks it.
	FileUnmarked
)

func foreignError(path, why string) error {
	return &openError{
		msg: fmt.Sprintf("database %s is not a reachprobe database (%s); it was left untouched: give another --db",
			path, why),
		sentinel: ErrForeign,
	}
}

// Inspect tells what the file at path is without writing to it or
// creating anything beside it. A file that is not a SQLite database gives
// an error wrapping ErrCorrupt; another program's database one wrapping
// ErrForeign. It does not check the file's integrity (Open does).
func Inspect(ctx context.Context, path string) (FileKind, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, fmt.Errorf("database %s: %w", path, err)
	}
	f, err := os.Open(abs)
	if errors.Is(err, os.ErrNotExist) {
		return FileNew, nil
	}
	if err != nil {
		return 0, fmt.Errorf("database %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, fmt.Errorf("database %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return 0, fmt.Errorf("database %s: not a regular file (%v)", path, fi.Mode().Type())
	}
	header := make([]byte, headerSize)
	n, err := io.ReadFull(f, header)
	f.Close()
	switch {
	case n == 0 && (err == io.EOF || err == nil):
		return FileNew, nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		return 0, corruptError(path, "%d bytes, shorter than a SQLite header", n)
	case err != nil:
		return 0, fmt.Errorf("database %s: %w", path, err)
	case !bytes.HasPrefix(header, []byte(sqliteMagic)):
		return 0, corruptError(path, "header is %q, not %q", header[:len(sqliteMagic)], sqliteMagic)
	}
	switch id := binary.BigEndian.Uint32(header[headerApplicationID:]); id {
	case ApplicationID:
		return FileOurs, nil
	case 0:
	default:
		return 0, foreignError(path, fmt.Sprintf("its SQLite application_id is %#x, reachprobe's is %#x", id, ApplicationID))
	}
	// Every release before the mark switched to WAL before creating a table.
	if header[headerWriteVersion] != walVersion || header[headerReadVersion] != walVersion {
		return 0, foreignError(path, "no reachprobe application_id, and not in WAL mode as reachprobe's databases are")
	}
	if err := recogniseSchema(ctx, path, abs); err != nil {
		return 0, err
	}
	return FileUnmarked, nil
}

// recogniseSchema accepts an unmarked database whose schema is exactly
// the one reachprobe's migrations make at its user_version (1 or more).
//
// It must not create -wal or -shm files beside a file that may be another
// program's. Without a -wal file the database file holds everything, and
// an immutable read-only open reads it with no locks and no -shm. With a
// -wal (a writer is live or was killed), committed data may still be only
// in the WAL: the file and its WAL are copied to a private directory and
// the copy is read. That copy is made at most once per database: a writer
// marks it.
func recogniseSchema(ctx context.Context, path, abs string) error {
	dsnOf := func(p string) string { return dsn(p, true) + "&immutable=1" }
	if _, err := os.Lstat(abs + "-wal"); err == nil {
		dir, err := os.MkdirTemp("", "reachprobe-inspect-")
		if err != nil {
			return fmt.Errorf("database %s: inspecting: %w", path, err)
		}
		defer os.RemoveAll(dir)
		cp := filepath.Join(dir, "db")
		for _, suffix := range []string{"", "-wal"} {
			if err := copyPlain(abs+suffix, cp+suffix); err != nil {
				return fmt.Errorf("database %s: inspecting: %w", path, err)
			}
		}
		abs = cp
		dsnOf = func(p string) string { return dsn(p, true) }
	}
	db, err := sql.Open("sqlite", dsnOf(abs))
	if err != nil {
		return fmt.Errorf("database %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	version, err := userVersion(ctx, db)
	if err != nil {
		if isCorruption(err) {
			return corruptError(path, "%v", err)
		}
		return fmt.Errorf("database %s: reading schema version: %w", path, err)
	}
	if version < 1 || version > len(migrations) {
		return foreignError(path, fmt.Sprintf("no reachprobe application_id, and schema version %d", version))
	}
	got, err := schemaOf(ctx, db)
	if err != nil {
		if isCorruption(err) {
			return corruptError(path, "%v", err)
		}
		return fmt.Errorf("database %s: reading its schema: %w", path, err)
	}
	want, err := migratedSchema(ctx, version)
	if err != nil {
		return fmt.Errorf("database %s: %w", path, err)
	}
	if !reflect.DeepEqual(got, want) {
		return foreignError(path, fmt.Sprintf("no reachprobe application_id, and its tables are not reachprobe's schema version %d", version))
	}
	return nil
}

// schemaEntry is one row of sqlite_schema, without its root page.
type schemaEntry struct{ Type, Name, Table, SQL string }

func schemaOf(ctx context.Context, db *sql.DB) ([]schemaEntry, error) {
	rows, err := db.QueryContext(ctx, `SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []schemaEntry
	for rows.Next() {
		var e schemaEntry
		if err := rows.Scan(&e.Type, &e.Name, &e.Table, &e.SQL); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// migratedSchema is the schema of a database migrated to version, made
// in memory.
func migratedSchema(ctx context.Context, version int) ([]schemaEntry, error) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one in-memory database
	for i, script := range migrations[:version] {
		if _, err := db.ExecContext(ctx, script); err != nil {
			return nil, fmt.Errorf("making schema version %d to compare: %w", i+1, err)
		}
	}
	return schemaOf(ctx, db)
}

// copyPlain copies from to a new file to, mode 0600.
func copyPlain(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
