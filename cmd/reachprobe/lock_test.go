package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

func TestLockDatabase(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "sub", "reachprobe.db")
	held, err := lockDatabase(ctx, db, 0, nil)
	if err != nil {
		t.Fatalf("first lock: %v", err)
	}
	fi, err := os.Stat(db + ".lock")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file: %v, mode %v; want mode 0600", err, fi.Mode().Perm())
	}
	if got := lockHolder(held.f); got != os.Getpid() {
		t.Errorf("lock file names pid %d, want %d", got, os.Getpid())
	}

	// flock locks belong to an open file, so a second open in this same
	// process contends as another process would.
	tests := []struct {
		name    string
		wait    time.Duration
		wantMsg string
	}{
		{"no wait", 0, "give --wait DURATION"},
		{"bounded wait", 3 * lockPollInterval / 2, "was not released within"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var waited []string
			start := time.Now()
			l, err := lockDatabase(ctx, db, tt.wait, func(lockFile string, pid int) { waited = append(waited, lockFile) })
			took := time.Since(start)
			var le lockedError
			if !errors.As(err, &le) {
				l.release()
				t.Fatalf("second lock: err = %v, want a lockedError", err)
			}
			msg := err.Error()
			for _, want := range []string{db + ".lock", "pid " + strconv.Itoa(os.Getpid()), tt.wantMsg} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not contain %q", msg, want)
				}
			}
			if took < tt.wait {
				t.Errorf("gave up after %s, want at least %s", took, tt.wait)
			}
			if (tt.wait > 0) != (len(waited) == 1) {
				t.Errorf("waiting callback called %d times with wait %s", len(waited), tt.wait)
			}
			var out bytes.Buffer
			if code := exitCode(&environ{stderr: &out}, err); code != exitLocked {
				t.Errorf("exit code %d, want %d", code, exitLocked)
			}
		})
	}

	// A waiter gets the lock once the holder lets go.
	got := make(chan error, 1)
	go func() {
		l, err := lockDatabase(ctx, db, time.Minute, nil)
		l.release()
		got <- err
	}()
	held.release()
	select {
	case err := <-got:
		if err != nil {
			t.Errorf("waiting lock after release: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiter did not get the lock after its release")
	}

	// A cancelled wait ends at once as an interruption.
	held, err = lockDatabase(ctx, db, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.release()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := lockDatabase(cctx, db, time.Minute, nil); !errors.As(err, new(interruptedError)) {
		t.Errorf("cancelled wait: err = %v, want an interruptedError", err)
	}
}

func TestPruneRespectsLock(t *testing.T) {
	db := filepath.Join(t.TempDir(), "reachprobe.db")
	store, err := measurements.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	store.Close()
	stored, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	held, err := lockDatabase(context.Background(), db, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.release()
	var out, errb bytes.Buffer
	env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code := runMain(context.Background(), env, []string{"prune", "--db", db, "--older-than", "30d", "--log-format", "json"})
	if code != exitLocked {
		t.Errorf("prune while locked: exit %d, want %d; stderr %q", code, exitLocked, errb.String())
	}
	var ev struct {
		Event    string `json:"event"`
		ExitCode int    `json:"exit_code"`
		Error    string `json:"error"`
	}
	if err := json.Unmarshal(errb.Bytes(), &ev); err != nil || ev.Event != "error" || ev.ExitCode != exitLocked || !strings.Contains(ev.Error, db+".lock") {
		t.Errorf("stderr %q (%v): want one JSON error event with exit_code %d naming the lock file", errb.String(), err, exitLocked)
	}
	if now, err := os.ReadFile(db); err != nil || !bytes.Equal(now, stored) {
		t.Errorf("prune changed the database while locked out (%v)", err)
	}
	if code := runMain(context.Background(), env, []string{"prune", "--db", db + ".missing", "--older-than", "30d"}); code != exitUsage {
		t.Errorf("prune of a missing database: exit %d, want %d", code, exitUsage)
	}
	if _, err := os.Stat(db + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("prune created a missing database: %v", err)
	}
}

// TestOverlappingRuns starts a run, then a second run that must give up at
// once, and a third that must queue behind the first.
func TestOverlappingRuns(t *testing.T) {
	l := startLoopbackLab(t)
	env := testEnviron(l.dir)
	db := filepath.Join(l.dir, "overlap.db")
	fast := l.fastCatalog(t)

	first := startRunUntilStored(t, l, db, env)

	second := runBinary(t, env, l.runArgs(db, "--targets", fast)...)
	wantMsg := "pid " + strconv.Itoa(first.Process.Pid)
	if second.code != exitLocked || !strings.Contains(second.stderr, db+".lock") || !strings.Contains(second.stderr, wantMsg) {
		t.Errorf("second run: exit %d, stderr %q; want %d naming the lock file and %s", second.code, second.stderr, exitLocked, wantMsg)
	}

	third := exec.Command(binary, l.runArgs(db, "--targets", fast, "--wait", "2m", "--log-format", "json")...)
	third.Env = env
	stderr, err := third.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := third.Start(); err != nil {
		t.Fatal(err)
	}
	var events []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var ev struct{ Event string }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Errorf("stderr line %q is not JSON: %v", sc.Text(), err)
		}
		events = append(events, ev.Event)
	}
	if err := third.Wait(); err != nil {
		t.Errorf("third run: %v", err)
	}
	if err := first.Wait(); err != nil {
		t.Errorf("first run: %v", err)
	}
	if len(events) == 0 || events[0] != "waiting_for_lock" {
		t.Errorf("third run's events %v, want waiting_for_lock first", events)
	}

	checkIntegrity(t, db)
	runs := readRuns(t, db)
	if len(runs) != 2 {
		t.Fatalf("%d runs stored, want 2 (the second run must not start)", len(runs))
	}
	a, c := runs[0], runs[1]
	for _, r := range runs {
		if r.Run.Status != measurements.RunComplete || len(r.Observations) == 0 {
			t.Errorf("run %d: %s with %d observations, want complete (never marked interrupted by another)", r.Run.ID, r.Run.Status, len(r.Observations))
		}
	}
	if c.Run.Started.Before(a.Run.Ended) {
		t.Errorf("third run started %s, before the first ended %s", c.Run.Started, a.Run.Ended)
	}
	if lastA, firstC := a.Observations[len(a.Observations)-1], c.Observations[0]; lastA.ID > firstC.ID || firstC.Started.Before(lastA.Started) {
		t.Errorf("observations interleave: the first run's last is #%d at %s, the third's first #%d at %s",
			lastA.ID, lastA.Started, firstC.ID, firstC.Started)
	}
}

// TestLockFileRefusesPlantedFiles plants in DB.lock's place what an
// attacker sharing the directory could, and checks the lock refuses it
// without writing through it.
func TestLockFileRefusesPlantedFiles(t *testing.T) {
	tests := []struct {
		name    string
		plant   func(t *testing.T, lock, victim string)
		wantMsg string
	}{
		{"symlink to a user file", func(t *testing.T, lock, victim string) {
			if err := os.Symlink(victim, lock); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link"},
		{"dangling symlink", func(t *testing.T, lock, victim string) {
			if err := os.Symlink(victim+".new", lock); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link"},
		{"fifo", func(t *testing.T, lock, victim string) {
			if err := syscall.Mkfifo(lock, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"hard link to a user file", func(t *testing.T, lock, victim string) {
			if err := os.Link(victim, lock); err != nil {
				t.Fatal(err)
			}
		}, "2 links"},
		{"directory", func(t *testing.T, lock, victim string) {
			if err := os.Mkdir(lock, 0o700); err != nil {
				t.Fatal(err)
			}
		}, lockPathSuffix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "reachprobe.db")
			victim := filepath.Join(dir, "precious.txt")
			const content = "a user's file\n"
			if err := os.WriteFile(victim, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			tt.plant(t, lockPath(db), victim)
			l, err := lockDatabase(t.Context(), db, 0, nil)
			if err == nil {
				l.release()
				t.Fatal("lockDatabase accepted the planted lock file")
			}
			if msg := err.Error(); !strings.Contains(msg, lockPath(db)) || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("error %q: want it to name %s and say %q", msg, lockPath(db), tt.wantMsg)
			}
			if got, err := os.ReadFile(victim); err != nil || string(got) != content {
				t.Errorf("the user's file is now %q (%v), want it unchanged", got, err)
			}
			if _, err := os.Stat(victim + ".new"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the dangling symlink's target was created: %v", err)
			}
			if writerActive(db) {
				t.Error("writerActive says a writer holds a planted lock file")
			}
		})
	}
}

// lockPathSuffix is in every error about a lock file.
const lockPathSuffix = ".db.lock"

// TestLockFileOfAnotherUser: root can make a file owned by someone else.
func TestLockFileOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a file owned by another user")
	}
	db := filepath.Join(t.TempDir(), "reachprobe.db")
	if err := os.WriteFile(lockPath(db), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(lockPath(db), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if l, err := lockDatabase(t.Context(), db, 0, nil); err == nil || !strings.Contains(err.Error(), "belongs to user id 65534") {
		l.release()
		t.Errorf("lockDatabase: err = %v, want a refusal naming the owner", err)
	}
}

// TestLockWritesPIDOnlyWhenHeld: a process that fails to get the lock
// leaves the holder's pid in the file.
func TestLockWritesPIDOnlyWhenHeld(t *testing.T) {
	db := filepath.Join(t.TempDir(), "reachprobe.db")
	held, err := lockDatabase(t.Context(), db, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.release()
	// Another process's pid, as a holder in another process would write it.
	const holder = "4242\n"
	if err := os.WriteFile(lockPath(db), []byte(holder), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = lockDatabase(t.Context(), db, 0, nil)
	var le lockedError
	if !errors.As(err, &le) || le.pid != 4242 {
		t.Errorf("second lock: err = %v, want a lockedError naming pid 4242", err)
	}
	if got, _ := os.ReadFile(lockPath(db)); string(got) != holder {
		t.Errorf("lock file is %q after a failed lock, want the holder's %q", got, holder)
	}
}

// TestWriterActive queries the lock without taking it.
func TestWriterActive(t *testing.T) {
	db := filepath.Join(t.TempDir(), "reachprobe.db")
	if writerActive(db) {
		t.Error("writerActive with no lock file = true")
	}
	if _, err := os.Stat(lockPath(db)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("writerActive created the lock file: %v", err)
	}
	held, err := lockDatabase(t.Context(), db, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !writerActive(db) {
		t.Error("writerActive while the lock is held = false")
	}
	held.release()
	if writerActive(db) {
		t.Error("writerActive after release = true")
	}
	// Queries never take the lock: a writer always gets it between them.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			writerActive(db)
		}
	}()
	for i := range 200 {
		l, err := lockDatabase(t.Context(), db, 0, nil)
		if err != nil {
			t.Fatalf("lock %d while readers query it: %v", i, err)
		}
		l.release()
	}
	<-done
}
