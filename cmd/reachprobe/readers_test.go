package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// readerStatus asks list, show and analyze (text and JSON) for the status
// of run 1 of db, and fails the test unless they agree.
func readerStatus(t *testing.T, env []string, db string) string {
	t.Helper()
	list := runBinary(t, env, "list", "--db", db)
	show := runBinary(t, env, "show", "1", "--db", db)
	text := runBinary(t, env, "analyze", "1", "--db", db)
	js := runBinary(t, env, "analyze", "1", "--db", db, "--format", "json")
	for name, r := range map[string]binaryResult{"list": list, "show": show, "analyze": text, "analyze --format json": js} {
		if r.code != exitOK {
			t.Fatalf("%s: exit %d, stderr %q", name, r.code, r.stderr)
		}
	}
	var rep struct {
		RunStatus string `json:"run_status"`
	}
	if err := json.Unmarshal([]byte(js.stdout), &rep); err != nil {
		t.Fatalf("analyze --format json: %v", err)
	}
	status := rep.RunStatus
	fields := strings.Fields(strings.Split(list.stdout, "\n")[1])
	if len(fields) < 5 || fields[0] != "1" || fields[4] != status {
		t.Errorf("list's line for run 1 is %q, want status %s", fields, status)
	}
	if !strings.HasPrefix(show.stdout, "run 1  "+status+"  ") {
		t.Errorf("show starts %q, want run 1 %s", strings.SplitN(show.stdout, "\n", 2)[0], status)
	}
	if !strings.Contains(strings.SplitN(text.stdout, "\n", 2)[0], "("+status) {
		t.Errorf("analyze starts %q, want status %s", strings.SplitN(text.stdout, "\n", 2)[0], status)
	}
	return status
}

// TestReadersSeeKilledRun: while a run's process holds the database lock,
// readers show its run as running; once it is killed by SIGKILL, as
// interrupted, though the database still says running and the readers
// write nothing.
func TestReadersSeeKilledRun(t *testing.T) {
	l := startLoopbackLab(t)
	env := testEnviron(l.dir)
	db := filepath.Join(l.dir, "killed.db")

	cmd := startRunUntilStored(t, l, db, env)
	if got := readerStatus(t, env, db); got != measurements.RunRunning {
		t.Errorf("readers during the run say %q, want running", got)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exit) {
		t.Fatalf("run ended with %v, want killed", err)
	}
	before, _ := os.ReadFile(db)
	wal, _ := os.ReadFile(db + "-wal")
	if got := readerStatus(t, env, db); got != measurements.RunInterrupted {
		t.Errorf("readers after the kill say %q, want interrupted", got)
	}
	after, _ := os.ReadFile(db)
	walAfter, _ := os.ReadFile(db + "-wal")
	if !bytes.Equal(before, after) || !bytes.Equal(wal, walAfter) {
		t.Error("the readers changed the database or its WAL")
	}
	if runs := readRuns(t, db); len(runs) != 1 || runs[0].Run.Status != measurements.RunRunning {
		t.Errorf("stored runs %+v; want the killed run still stored as running (readers write nothing)", runs)
	}
}

// TestReadersDuringRun reads while a run writes: every reader succeeds,
// and the run is never made to fail or exit 5 by them.
func TestReadersDuringRun(t *testing.T) {
	l := startLoopbackLab(t)
	env := testEnviron(l.dir)
	db := filepath.Join(l.dir, "live.db")

	cmd := startRunUntilStored(t, l, db, env)
	ended := make(chan error, 1)
	go func() { ended <- cmd.Wait() }()
	reads := 0
	for running := true; running; reads++ {
		select {
		case err := <-ended:
			if err != nil {
				t.Fatalf("the run failed while readers read: %v", err)
			}
			running = false
		default:
		}
		for _, args := range [][]string{
			{"list", "--db", db},
			{"show", "latest", "--db", db},
			{"analyze", "--db", db, "--format", "json"},
			{"report", "--db", db, "--format", "csv"},
		} {
			if r := runBinary(t, env, args...); r.code != exitOK {
				t.Fatalf("%v during the run: exit %d, stderr %q", args, r.code, r.stderr)
			}
		}
	}
	if reads < 2 {
		t.Errorf("only %d rounds of reads overlapped the run", reads)
	}
	if got := readerStatus(t, env, db); got != measurements.RunComplete {
		t.Errorf("after the run, readers say %q, want complete", got)
	}
}
