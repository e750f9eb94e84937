package main

// # Overlap
//
// Commands that write to the database (run, prune) first take an exclusive
// advisory lock (flock) on a lock file next to it, DB + ".lock", and hold it
// until they end; the kernel drops it when the process exits, kill -9
// included, so a lock never outlives its holder and the file is never
// removed (removing a lock file others may have open breaks the lock).
// A run takes the lock before it marks unfinished runs interrupted, so a
// live run is never mistaken for a killed one. Readers (list, show,
// analyze) take no lock: WAL lets them read while a run writes.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/reachprobe/reachprobe/measurements"
)

// lockPollInterval is how often a command waiting for the lock tries it
// again: flock cannot wait with a deadline, and a quarter of a second is
// nothing next to a run's minutes while costing no noticeable CPU.
const lockPollInterval = 250 * time.Millisecond

// lockFileMode: the lock file holds only the holder's pid, but it sits next
// to a private database.
const lockFileMode os.FileMode = 0o600

// lockedError: another process holds the database's lock.
type lockedError struct {
	lockFile string
	pid      int // the holder's, 0 if unknown
	waited   time.Duration
}

func (e lockedError) Error() string {
	holder := "another reachprobe"
	if e.pid > 0 {
		holder = fmt.Sprintf("another reachprobe (pid %d)", e.pid)
	}
	msg := fmt.Sprintf("%s is using the database: its lock file %s is held", holder, e.lockFile)
	if e.waited > 0 {
		return msg + fmt.Sprintf(" and was not released within %s; nothing was written", e.waited)
	}
	return msg + "; nothing was written: try again later, or give --wait DURATION to queue behind it"
}

// dbLock is a held database lock.
type dbLock struct {
	f    *os.File
	path string
}

// lockPath is the lock file of the database at dbPath.
func lockPath(dbPath string) string { return dbPath + ".lock" }

// lockDatabase takes the exclusive lock of the database at dbPath,
// creating the lock file (and the database's directory) if needed. When
// another process holds it, it tries again every lockPollInterval for up
// to wait (0: not at all), calling waiting once before the first pause,
// and then returns a lockedError.
func lockDatabase(ctx context.Context, dbPath string, wait time.Duration, waiting func(lockFile string, pid int)) (*dbLock, error) {
	abs, err := filepath.Abs(dbPath)
	if err != nil {
		return nil, dbError{fmt.Errorf("database %s: %w", dbPath, err)}
	}
	dir := filepath.Dir(abs)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, dbError{fmt.Errorf("database %s: creating its directory: %w", dbPath, explainWriteError(err))}
	}
	// Two names for one file (a symlinked directory) must share a lock.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		abs = filepath.Join(real, filepath.Base(abs))
	}
	path := lockPath(abs)
	f, err := openLockFile(path)
	if err != nil {
		return nil, dbError{fmt.Errorf("database %s: lock file: %w", dbPath, explainWriteError(err))}
	}
	deadline := time.Now().Add(wait)
	for first := true; ; first = false {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, dbError{fmt.Errorf("database %s: locking %s: %w", dbPath, path, err)}
		}
		pid := lockHolder(path)
		if wait <= 0 || !time.Now().Before(deadline) {
			f.Close()
			return nil, lockedError{lockFile: path, pid: pid, waited: wait}
		}
		if first && waiting != nil {
			waiting(path, pid)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, interruptedError{fmt.Errorf("stopped while waiting for the lock %s: %w", path, ctx.Err())}
		case <-time.After(min(lockPollInterval, time.Until(deadline))):
		}
	}
	// The pid is for the message of whoever finds the lock held; failing to
	// write it (a full disk) does not matter.
	if f.Truncate(0) == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dbLock{f: f, path: path}, nil
}

// openLockFile opens the lock file for writing the pid, or read-only where
// it exists but cannot be written (flock works on either). A read-only file
// system is reported: nothing could be stored there.
func openLockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, lockFileMode)
	if err == nil || errors.Is(err, syscall.EROFS) {
		return f, err
	}
	if ro, rerr := os.Open(path); rerr == nil {
		return ro, nil
	}
	return nil, err
}

// lockHolder reads the pid the holder wrote into the lock file, or 0.
func lockHolder(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// release drops the lock. The file stays for the next holder.
func (l *dbLock) release() {
	if l == nil {
		return
	}
	l.f.Close() // closing the last descriptor drops the flock
}

// explainWriteError adds what happened and what to do to the errors of
// writing to a full, limited or read-only disk, which SQLite words
// tersely ("database or disk is full", "disk I/O error").
func explainWriteError(err error) error {
	switch {
	case err == nil:
		return nil
	case isDiskFull(err):
		return fmt.Errorf("%w: no space left for the database (the disk is full, or a file size limit was reached); what was stored before is kept: free space, or delete old observations with \"reachprobe prune --older-than\"", err)
	case isReadOnly(err):
		return fmt.Errorf("%w: the database is on a read-only file system; what was stored before is kept", err)
	case isWriteIOError(err):
		return fmt.Errorf("%w: writing to the disk failed (it may be full, over a file size limit, or failing); what was stored before is kept", err)
	}
	return err
}

// isWriteIOError reports whether err is SQLite's failure to write or grow
// a file, which is what running into a file size limit (EFBIG) gives.
func isWriteIOError(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_IOERR_WRITE, sqlite3.SQLITE_IOERR_TRUNCATE, sqlite3.SQLITE_IOERR_FSYNC, sqlite3.SQLITE_IOERR_SHMSIZE:
		return true
	}
	return false
}

// isDiskFull reports whether err says a write found no room: SQLite's
// SQLITE_FULL, or ENOSPC or EFBIG (a file size limit) from the system.
func isDiskFull(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL {
		return true
	}
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EFBIG)
}

// isReadOnly reports whether err says the database cannot be written:
// SQLite's SQLITE_READONLY, or EROFS from the system.
func isReadOnly(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_READONLY {
		return true
	}
	return errors.Is(err, syscall.EROFS)
}

// openLocked takes the database's lock for a command that writes (run,
// prune), logging a wait for it, then opens the database. The caller
// closes the store and then calls release.
func openLocked(ctx context.Context, env *environ, log *eventLog, dbPath string, wait time.Duration) (store *measurements.Store, release func(), err error) {
	lock, err := lockDatabase(ctx, dbPath, wait, func(lockFile string, pid int) {
		log.event("waiting_for_lock", "lock_file", lockFile, "holder_pid", pid, "wait_s", wait.Seconds())
	})
	if err != nil {
		return nil, nil, err
	}
	store, err = openStore(ctx, env, dbPath)
	if err != nil {
		lock.release()
		return nil, nil, err
	}
	return store, func() { store.Close(); lock.release() }, nil
}
