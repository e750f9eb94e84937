package main

// # Overlap
//
// Commands that write to the database (run, prune) first take an exclusive
// advisory lock on a lock file next to it, DB + ".lock", and hold it until
// they end; the kernel drops it when the process exits, kill -9 included,
// so a lock never outlives its holder and the file is never removed
// (removing a lock file others may have open breaks the lock). A run takes
// the lock before it marks unfinished runs interrupted, so a live run is
// never mistaken for a killed one.
//
// The lock is two locks on one open file: flock, which earlier releases
// took and which still keeps a writer of an older release out, and an
// open-file-description (OFD) lock from fcntl, which, unlike flock, can be
// queried without being taken (F_OFD_GETLK). Readers (list, show, analyze,
// report) take no lock: WAL lets them read while a run writes, and they
// query the OFD lock (writerActive) to tell a run that is still being
// measured from one whose process was killed. A query never takes the
// lock, so a reader never makes a concurrent run exit with code 5.
//
// The lock file is opened without following a symlink and without
// blocking on a FIFO, and used only if it is a regular file of this user
// with one link: a planted DB.lock cannot redirect the pid reachprobe
// writes into another file. The pid is written only once the lock is held.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"golang.org/x/sys/unix"

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
		err := tryLock(f)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, dbError{fmt.Errorf("database %s: locking %s: %w", dbPath, path, err)}
		}
		pid := lockHolder(f)
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

// lockOpenFlags open a lock file without following a symlink planted in
// its place (ELOOP) and without waiting for a writer on a planted FIFO.
const lockOpenFlags = unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC

// maxPIDBytes bounds what is read of a lock file for the holder's pid: a
// pid and a newline take at most 20 bytes.
const maxPIDBytes = 32

// openLockFile opens the lock file for writing the pid, or read-only where
// it exists but cannot be written (both locks work on either), and checks
// it is a lock file of ours (checkLockFile). A read-only file system is
// reported: nothing could be stored there. Nothing is truncated or written
// here: only the holder of the lock writes its pid.
func openLockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|lockOpenFlags, lockFileMode)
	if errors.Is(err, syscall.EACCES) {
		f, err = os.OpenFile(path, os.O_RDONLY|lockOpenFlags, 0)
	}
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s is a symbolic link, not a lock file: remove it (it was not followed)", path)
		}
		return nil, err
	}
	if err := checkLockFile(f, path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkLockFile refuses an open lock file that is not a regular file owned
// by this user with exactly one link: a FIFO, a device, another user's
// file, or a hard link to a file that has another name.
func checkLockFile(f *os.File, path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("%s is not a regular file (mode %#o): remove it so reachprobe can make its lock file", path, st.Mode&unix.S_IFMT)
	case st.Uid != uint32(os.Geteuid()):
		return fmt.Errorf("%s belongs to user id %d, not to this user (%d): remove it so reachprobe can make its lock file", path, st.Uid, os.Geteuid())
	case st.Nlink != 1:
		return fmt.Errorf("%s has %d links (a hard link to another file?): remove it so reachprobe can make its lock file", path, st.Nlink)
	}
	return nil
}

// tryLock takes both locks on f without waiting (see Overlap): flock
// first, which keeps out writers of earlier releases too, then the OFD
// lock readers query. The OFD lock is a write lock where f is writable, a
// read lock otherwise (F_WRLCK needs a writable descriptor); either
// conflicts with the readers' write-lock query, and flock alone decides
// between writers. It fails with EWOULDBLOCK when another holds either.
func tryLock(f *os.File) error {
	fd := int(f.Fd())
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return err
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0); err == nil && flags&unix.O_ACCMODE == unix.O_RDONLY {
		lk.Type = unix.F_RDLCK
	}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		unix.Flock(fd, unix.LOCK_UN)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			return unix.EWOULDBLOCK
		}
		return err
	}
	return nil
}

// lockHolder reads the pid the holder wrote into the open lock file, or 0.
func lockHolder(f *os.File) int {
	b := make([]byte, maxPIDBytes)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// writerActive reports whether a writer (run, prune) holds the lock of the
// database at dbPath, without taking it: it asks the kernel with
// F_OFD_GETLK which lock a write lock would meet. A missing lock file, a
// symlink or anything but a regular file means no writer (writers refuse
// those). The lock file is opened read-only and never created.
func writerActive(dbPath string) bool {
	path := lockPath(dbPath)
	if abs, err := filepath.Abs(dbPath); err == nil {
		if real, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
			path = lockPath(filepath.Join(real, filepath.Base(abs)))
		}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|lockOpenFlags, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return false
	}
	return lk.Type != unix.F_UNLCK
}

// release drops the lock. The file stays for the next holder.
func (l *dbLock) release() {
	if l == nil {
		return
	}
	l.f.Close() // closing the last descriptor drops both locks
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
//
// Another program's file is refused before the lock is taken, so that
// nothing (not even DB.lock) is created beside it.
func openLocked(ctx context.Context, env *environ, log *eventLog, dbPath string, wait time.Duration) (store *measurements.Store, release func(), err error) {
	if _, err := measurements.Inspect(ctx, dbPath); err != nil {
		return nil, nil, dbError{err}
	}
	lock, err := lockDatabase(ctx, dbPath, wait, func(lockFile string, pid int) {
		log.event("waiting_for_lock", "lock_file", lockFile, "holder_pid", pid, "wait_s", wait.Seconds())
	})
	if err != nil {
		return nil, nil, err
	}
	store, err = measurements.Open(ctx, dbPath)
	if err != nil {
		lock.release()
		return nil, nil, dbError{explainWriteError(err)}
	}
	return store, func() { store.Close(); lock.release() }, nil
}
