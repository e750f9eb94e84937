package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/probes/catalog"
)

// logEvent is the part of a JSON log line the tests read.
type logEvent struct {
	Time         time.Time `json:"time"`
	Level        string    `json:"level"`
	Event        string    `json:"event"`
	RunID        int64     `json:"run_id"`
	Target       string    `json:"target"`
	Status       string    `json:"status"`
	Observations int       `json:"observations"`
	ExitCode     int       `json:"exit_code"`
	Error        string    `json:"error"`
}

// parseLog decodes stderr, one JSON object per line.
func parseLog(t *testing.T, stderr string) []logEvent {
	t.Helper()
	var events []logEvent
	for _, line := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if line == "" {
			continue
		}
		var e logEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Errorf("stderr line %q is not JSON: %v", line, err)
			continue
		}
		if e.Time.IsZero() || e.Event == "" || e.Time.Location() != time.UTC {
			t.Errorf("event %q lacks a UTC time or a name", line)
		}
		events = append(events, e)
	}
	return events
}

func TestUnattendedRunOutput(t *testing.T) {
	l := startLoopbackLab(t)
	env := testEnviron(l.dir)
	fast := l.fastCatalog(t)
	cat, err := catalog.Load(fast)
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(l.dir, "log.db")

	if r := runBinary(t, env, l.runArgs(db, "--targets", fast)...); r.code != exitOK || r.stdout != "" || r.stderr != "" {
		t.Errorf("text run off a terminal: exit %d, stdout %q, stderr %q; want 0 and silence", r.code, r.stdout, r.stderr)
	}

	r := runBinary(t, env, l.runArgs(db, "--targets", fast, "--log-format", "json")...)
	if r.code != exitOK || r.stdout != "" {
		t.Fatalf("json run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// Other events (a warning, the network's identity) may come between.
	var events []logEvent
	for _, e := range parseLog(t, r.stderr) {
		switch e.Event {
		case "run_started", "target_done", "run_ended":
			events = append(events, e)
		}
	}
	if len(events) != len(cat.Targets)+2 {
		t.Fatalf("%d events, want run_started, a target_done per target (%d) and run_ended:\n%s", len(events), len(cat.Targets), r.stderr)
	}
	if first := events[0]; first.Event != "run_started" || first.RunID != 2 {
		t.Errorf("first event %+v, want run_started of run 2", first)
	}
	sum := 0
	for i, tg := range cat.Targets {
		e := events[1+i]
		if e.Event != "target_done" || e.Target != tg.Name || e.RunID != 2 {
			t.Errorf("event %d = %+v, want target_done of %s", 1+i, e, tg.Name)
		}
		sum += e.Observations
	}
	last := events[len(events)-1]
	if last.Event != "run_ended" || last.Status != "complete" || last.Observations != sum || sum == 0 {
		t.Errorf("last event %+v, want run_ended complete with the %d observations of the targets", last, sum)
	}
	if runs := readRuns(t, db); len(runs) != 2 || len(runs[1].Observations) != sum {
		t.Errorf("the database does not hold the %d observations the log counted", sum)
	}

	bad := runBinary(t, env, l.runArgs(db, "--parallel", "0", "--log-format", "json")...)
	if events := parseLog(t, bad.stderr); bad.code != exitUsage || len(events) != 1 || events[0].Event != "error" ||
		events[0].Level != "ERROR" || events[0].ExitCode != exitUsage {
		t.Errorf("usage error: exit %d, stderr %q; want one error event with exit_code %d", bad.code, bad.stderr, exitUsage)
	}
}

func TestInterruptedRunLog(t *testing.T) {
	l := startLoopbackLab(t)
	db := filepath.Join(l.dir, "interrupted.db")
	cmd := exec.Command(binary, l.runArgs(db, "--log-format", "json")...)
	cmd.Env = testEnviron(l.dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	var lines []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		// The blackhole's connect keeps the run going for 5 s after it starts.
		if strings.Contains(sc.Text(), `"event":"run_started"`) {
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted {
		t.Fatalf("exit = %v, want code %d", err, exitInterrupted)
	}
	events := parseLog(t, strings.Join(lines, "\n"))
	if len(events) < 2 {
		t.Fatalf("events: %q", lines)
	}
	var ended []logEvent
	for _, e := range events {
		if e.Event == "run_ended" {
			ended = append(ended, e)
		}
	}
	if len(ended) != 1 || ended[0].Status != "interrupted" {
		t.Errorf("run_ended events %+v, want one, interrupted", ended)
	}
	last := events[len(events)-1]
	if last.Event != "error" || last.ExitCode != exitInterrupted || !strings.Contains(last.Error, "interrupted") {
		t.Errorf("last event %+v, want an error with exit_code %d", last, exitInterrupted)
	}
}
