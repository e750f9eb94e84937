package main

// # The answer
//
// A run ends with what the user came to ask: can iMessage and FaceTime
// work from here, and if not, why. The verdicts are those analyze gives for
// the same run: the run is read back from the database and judged by
// judgeRun, the function analyze and report use, and the lines are written
// by analysis.Report.WriteVerdicts, which analyze's text starts with. So
// the two cannot drift; this file only chooses what to show around them.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/runner"
)

// answerApp and answerService are the "verdicts" event's apps and
// services: the fields of analyze --format json that say what works, not
// the evidence.
type answerApp struct {
	App     string `json:"app"`
	Verdict string `json:"verdict"`
	Reason  string `json:"reason"`
}

type answerService struct {
	Service    string              `json:"service"`
	Verdict    string              `json:"verdict"`
	Methods    []string            `json:"methods"`
	Confidence analysis.Confidence `json:"confidence"`
	Reason     string              `json:"reason"`
}

// tellVerdicts ends a run: it judges run runID as analyze would and writes
// the verdicts, as text on standard output when show, and as one
// "verdicts" event with --log-format json. dbPath is the database the
// run wrote, named in the commands suggested next. A run that cannot be
// judged is a warning: the measurements are stored, and the run's exit
// code says how measuring went.
// It returns the report, and whether it judged the run, so that the
// run's verdicts are kept without judging it again.
func tellVerdicts(ctx context.Context, env *environ, log *eventLog, store *measurements.Store, dbPath string, runID int64, summary *runner.Summary, show bool) (analysis.Report, bool) {
	if !show && !log.json() {
		return analysis.Report{}, false
	}
	run, err := store.Run(ctx, runID)
	if err != nil {
		log.warn(fmt.Sprintf("run %d cannot be judged: %v; \"reachprobe analyze %d\" may say more", runID, err, runID))
		return analysis.Report{}, false
	}
	rv, err := judgeRun(ctx, store, run)
	if err != nil {
		log.warn(fmt.Sprintf("run %d cannot be judged: %v", runID, err))
		return analysis.Report{}, false
	}
	rep := rv.Report
	log.event("verdicts", verdictsEvent(rep)...)
	if show {
		var b bytes.Buffer
		writeAnswer(&b, run, rep, summary, nextCommandsDB(env, dbPath))
		// Reasons can quote what the network sent (a certificate's
		// issuer), so nothing reaches the terminal unescaped.
		io.WriteString(env.stdout, escapeForTerminal(b.String()))
	}
	return rep, true
}

// verdictsEvent is the "verdicts" event's fields.
func verdictsEvent(rep analysis.Report) []any {
	apps := make([]answerApp, 0, len(rep.Apps))
	for _, a := range rep.Apps {
		apps = append(apps, answerApp{App: a.App, Verdict: a.Verdict, Reason: a.Reason})
	}
	services := make([]answerService, 0, len(rep.Services))
	for _, s := range rep.Services {
		methods := s.Methods
		if methods == nil {
			methods = []string{}
		}
		services = append(services, answerService{Service: s.Service, Verdict: s.Verdict, Methods: methods, Confidence: s.Confidence, Reason: s.Reason})
	}
	return []any{"run_id", rep.RunID, "network_status", rep.Network.Status, "network_reason", rep.Network.Reason,
		"apps", apps, "services", services}
}

// writeAnswer writes the end of a run for people: what was measured, the
// network, the verdicts (as analyze writes them), the endpoint counts, and
// where to look next. dbFlag is " --db FILE" when the commands suggested
// need it, else empty.
func writeAnswer(w io.Writer, run measurements.Run, rep analysis.Report, summary *runner.Summary, dbFlag string) {
	took := ""
	if !run.Ended.IsZero() {
		took = " in " + run.Ended.Sub(run.Started).Round(100*time.Millisecond).String()
	}
	fmt.Fprintf(w, "\nrun %d %s%s: %d observations stored\n", run.ID, run.Status, took, run.Observations)
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	noConnectivity := rep.Network.Status == analysis.NetworkNoConnectivity
	if noConnectivity {
		fmt.Fprintf(w, "\nNo connectivity: %s.\nCheck that this machine is online (cable, Wi-Fi, a captive portal to sign in to), then run again.\n\n", rep.Network.Reason)
	} else {
		fmt.Fprintf(w, "\nNetwork: %s (%s)\n", rep.Network.Status, rep.Network.Reason)
	}
	rep.WriteVerdicts(w)
	fmt.Fprintln(w)
	if line := countsLine(summary); line != "" && !noConnectivity {
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "Next: \"reachprobe analyze %d%s\" for the evidence; \"reachprobe report %d --format html -o reachprobe-run-%d.html%s\" for a page to share\n",
		run.ID, dbFlag, run.ID, run.ID, dbFlag)
}

// countsLine is the run's endpoint and lookup counts, per group, on one
// line: what a run printed before it gave verdicts.
func countsLine(s *runner.Summary) string {
	if s == nil || len(s.Groups) == 0 {
		return ""
	}
	var parts []string
	lookups, resolved := 0, 0
	for _, name := range s.GroupNames() {
		g := s.Groups[name]
		parts = append(parts, fmt.Sprintf("%s %d/%d", name, g.Reachable, g.Measured))
		lookups += g.Lookups
		resolved += g.Resolved
	}
	return fmt.Sprintf("Endpoints reachable: %s; lookups answered: %d/%d", strings.Join(parts, ", "), resolved, lookups)
}

// nextCommandsDB is the --db the suggested commands need: none when they
// would find dbPath on their own (the config file's or the default).
func nextCommandsDB(env *environ, dbPath string) string {
	if p, err := configuredDBPath(env, ""); err == nil && p == dbPath {
		return ""
	}
	return " --db " + shellQuote(dbPath)
}

// escapeForTerminal passes each line of s through
// measurements.TerminalText, keeping the line breaks, so that text from the
// network cannot move the cursor, retitle the window or reorder a line.
func escapeForTerminal(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = measurements.TerminalText(l)
	}
	return strings.Join(lines, "\n")
}
