package main

// # Logging
//
// A run under cron or systemd has nobody watching: off a terminal it
// prints nothing but errors, so cron mails only when something went wrong.
// With --log-format json it writes instead one JSON object per line to
// standard error for each event (run_started, target_done, run_ended,
// network_identified, verdicts, waiting_for_lock, runs_marked_interrupted,
// pruned, warning, error), for the journal or a log collector. The README lists the events and their
// fields.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// Log formats.
const (
	logText = "text"
	logJSON = "json"
)

// logFormat is the value of --log-format.
type logFormat string

func (f *logFormat) String() string {
	if *f == "" {
		return logText
	}
	return string(*f)
}

// Choices are the formats, for shell completion.
func (f *logFormat) Choices() []string { return []string{logText, logJSON} }

func (f *logFormat) Set(s string) error {
	if s != logText && s != logJSON {
		return errors.New(`want "text" or "json"`)
	}
	*f = logFormat(s)
	return nil
}

// eventLog writes a command's events to standard error: in text, only
// warnings (main prints errors); in json, every event.
type eventLog struct {
	w      io.Writer
	logger *slog.Logger // nil in text
}

func newEventLog(w io.Writer, format logFormat) *eventLog {
	l := &eventLog{w: w}
	if format == logJSON {
		l.logger = slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: renameLogAttr}))
	}
	return l
}

// renameLogAttr names slog's message "event" and writes times in UTC.
func renameLogAttr(groups []string, a slog.Attr) slog.Attr {
	switch {
	case len(groups) > 0:
	case a.Key == slog.MessageKey:
		a.Key = "event"
	case a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime:
		a.Value = slog.TimeValue(a.Value.Time().UTC())
	}
	return a
}

// json reports whether events are written.
func (l *eventLog) json() bool { return l != nil && l.logger != nil }

// event writes one event in json; nothing in text. attrs are alternating
// keys and values, as slog takes them.
func (l *eventLog) event(name string, attrs ...any) {
	if l.json() {
		l.logger.Info(name, attrs...)
	}
}

// warn reports a problem that does not stop the command.
func (l *eventLog) warn(msg string) {
	if l.json() {
		l.logger.Warn("warning", "message", msg)
		return
	}
	io.WriteString(l.w, "reachprobe: "+msg+"\n")
}

// commandError reports the error that ends the command and its exit code.
func (l *eventLog) commandError(err error, code int) {
	if l.json() {
		l.logger.Log(context.Background(), slog.LevelError, "error", "error", err.Error(), "exit_code", code)
		return
	}
	io.WriteString(l.w, "reachprobe: "+err.Error()+"\n")
}

// runTally counts a run's observations per target, for the target_done
// and run_ended events.
type runTally struct {
	mu      sync.Mutex
	targets map[string]*tally
	total   tally
}

// tally counts observations: all of them, the failed and the skipped ones,
// and keeps the first failure seen.
type tally struct {
	Observations int
	Failed       int
	Skipped      int
	FirstFailure string
}

func (t *tally) add(o *measurements.Observation) {
	t.Observations++
	switch {
	case o.Skipped != "":
		t.Skipped++
	case o.Failure != "":
		t.Failed++
		if t.FirstFailure == "" {
			t.FirstFailure = string(o.Step) + " " + o.Operation + ": " + o.Failure
		}
	}
}

func newRunTally() *runTally { return &runTally{targets: map[string]*tally{}} }

func (r *runTally) add(o *measurements.Observation) {
	if o == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.targets[o.Target]
	if t == nil {
		t = &tally{}
		r.targets[o.Target] = t
	}
	t.add(o)
	r.total.add(o)
}

// report writes a target_done event per target of cat that has
// observations, in catalog order, then run_ended.
func (r *runTally) report(l *eventLog, cat measurements.Catalog, runID int64, status string, started time.Time, result error) {
	if !l.json() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range cat.Targets {
		// Only the targets that finished something: a run cut short in a
		// catalog of 100,000 targets logs what it did, not the catalog.
		c := r.targets[t.Name]
		if c == nil {
			continue
		}
		attrs := []any{"run_id", runID, "target", t.Name, "group", t.Group, "host", t.Host,
			"observations", c.Observations, "failed", c.Failed, "skipped", c.Skipped}
		if c.FirstFailure != "" {
			attrs = append(attrs, "first_failure", c.FirstFailure)
		}
		l.event("target_done", attrs...)
	}
	attrs := []any{"run_id", runID, "status", status, "duration_s", time.Since(started).Round(time.Millisecond).Seconds(),
		"targets", len(cat.Targets), "targets_measured", len(r.targets), "observations", r.total.Observations, "failed", r.total.Failed, "skipped", r.total.Skipped}
	if result != nil {
		attrs = append(attrs, "error", result.Error())
	}
	l.event("run_ended", attrs...)
}
