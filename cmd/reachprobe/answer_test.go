package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/analysis"
)

// analyzeVerdictLines runs "analyze RUN" and returns its verdict lines:
// the block between the "Network:" line's blank line and the next blank
// line (one line per app, then per service).
func analyzeVerdictLines(t *testing.T, db, run string) []string {
	t.Helper()
	out, err := exec.Command(binary, "analyze", run, "--db", db).Output()
	if err != nil {
		t.Fatalf("analyze %s: %v", run, err)
	}
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "Network: ") {
			continue
		}
		var block []string
		for _, v := range lines[i+2:] {
			if v == "" {
				break
			}
			block = append(block, v)
		}
		return block
	}
	t.Fatalf("analyze %s: no Network line in\n%s", run, out)
	return nil
}

// TestEndToEndRunOnTerminal is issue 12's test: on a terminal, a run ends
// with the verdicts analyze gives for it, apps first, then the counts and
// where to look next, and nothing after.
func TestEndToEndRunOnTerminal(t *testing.T) {
	l := startLoopbackLab(t)
	db := filepath.Join(l.dir, "tty.db")
	screen, err := runOnTerminal(t, l.runArgs(db)...)
	if err != nil {
		t.Fatalf("run on a terminal: %v\n%s", err, screen)
	}
	t.Logf("terminal:\n%s", screen)
	want := analyzeVerdictLines(t, db, "1")
	if len(want) < 2 || !strings.HasPrefix(want[0], "iMessage: ") || !strings.HasPrefix(want[1], "FaceTime: ") {
		t.Fatalf("analyze's verdict lines %q: want iMessage and FaceTime first", want)
	}

	lines := strings.Split(strings.TrimRight(screen, "\n"), "\n")
	start := -1
	for i, l := range lines {
		if l == want[0] {
			start = i
		}
	}
	if start < 0 {
		t.Fatalf("the run's terminal output lacks analyze's first verdict line %q", want[0])
	}
	if start+len(want) > len(lines) {
		t.Fatalf("the run's output ends inside the verdicts")
	}
	if got := lines[start : start+len(want)]; !reflect.DeepEqual(got, want) {
		t.Errorf("the run's verdict lines differ from analyze's:\nrun:\n%s\nanalyze:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// After the verdicts: a blank line, the counts, the next commands.
	tail := lines[start+len(want):]
	if len(tail) != 3 || tail[0] != "" || !strings.HasPrefix(tail[1], "Endpoints reachable: ") || !strings.HasPrefix(tail[2], "Next: ") {
		t.Errorf("after the verdicts, want a blank line, the counts and the next commands; got %q", tail)
	}
	if !strings.Contains(tail[len(tail)-1], `"reachprobe analyze 1 --db `+db+`"`) ||
		!strings.Contains(tail[len(tail)-1], "reachprobe report 1 --format html -o ") {
		t.Errorf("next commands %q: want analyze 1 and report 1 with this run's --db", tail[len(tail)-1])
	}
	// Before the verdicts: the run's header and the network.
	if start < 2 || !strings.HasPrefix(lines[start-1], "Network: ") || !strings.HasPrefix(lines[start-3], "run 1 complete in ") {
		t.Errorf("before the verdicts, want the run's header and the network line; got %q", lines[:start])
	}
}

// zeroCount matches a count of nothing out of something, " 0/12".
var zeroCount = regexp.MustCompile(`\s0/\d`)

// TestRunNoConnectivity: when nothing answers (every DNS server refuses,
// no address to connect to), the run says so in words, not a list of
// zeros.
func TestRunNoConnectivity(t *testing.T) {
	dir := t.TempDir()
	cat := filepath.Join(dir, "offline.catalog")
	os.WriteFile(cat, []byte("[target push]\ngroup = push\nhost = push.test\nports = 5223\ntransports = tcp, tls\n\n"+
		"[target control]\ngroup = control\nhost = control.test\nports = 443\ntransports = tcp, tls\n"), 0o644)
	// Nothing listens on port 1 of the loopback: DNS over UDP, DNS over
	// TCP and DoH are all refused at once.
	resolv := filepath.Join(dir, "resolv.conf")
	os.WriteFile(resolv, []byte("nameserver 127.0.0.1:1\n"), 0o644)
	db := filepath.Join(dir, "offline.db")
	var out, errb bytes.Buffer
	env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code := runMain(context.Background(), env, []string{"run", "-v", "--db", db, "--targets", cat, "--resolv-conf", resolv,
		"--control-doh", "https://127.0.0.1:1/dns-query", "--no-network-id"})
	if code != exitOK {
		t.Fatalf("run: exit %d, stderr %s", code, errb.String())
	}
	text := out.String()
	if !strings.Contains(text, "\nNo connectivity: ") || !strings.Contains(text, "then run again") {
		t.Errorf("the run does not say there was no connectivity:\n%s", text)
	}
	// A count reads " 0/12"; the database's path, which the "Next:" line
	// names, may hold "0/" too.
	if strings.Contains(text, "Endpoints reachable") || zeroCount.MatchString(text) {
		t.Errorf("the run lists zeros when nothing answered:\n%s", text)
	}
	if strings.Contains(text, "Network: ") {
		t.Errorf("the run prints the network's status code instead of words:\n%s", text)
	}
}

// TestVerdictsEvent: with --log-format json, the verdicts are one event,
// after run_ended, with the apps' and services' verdicts analyze gives.
func TestVerdictsEvent(t *testing.T) {
	rep := analysis.Report{
		RunID:   7,
		Network: analysis.Network{Status: analysis.NetworkOK, Reason: "control hosts answered"},
		Apps:    []analysis.AppVerdict{{App: analysis.AppIMessage, Title: "iMessage", Verdict: analysis.AppBlocked, Reason: "r1"}},
		Services: []analysis.ServiceVerdict{{Service: "push", Title: "Push", Verdict: analysis.VerdictBlocked, Methods: []string{"tcp.reset"},
			Reason: "r2", Confidence: analysis.Confidence{Level: "high", Endpoints: 3}, Evidence: []string{"not in the event"}}},
	}
	var b bytes.Buffer
	l := newEventLog(&b, logJSON)
	l.event("verdicts", verdictsEvent(rep)...)
	var got struct {
		Event         string
		RunID         int64  `json:"run_id"`
		NetworkStatus string `json:"network_status"`
		Apps          []map[string]any
		Services      []map[string]any
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("event %s: %v", b.String(), err)
	}
	if got.Event != "verdicts" || got.RunID != 7 || got.NetworkStatus != "ok" || len(got.Apps) != 1 || len(got.Services) != 1 {
		t.Fatalf("event = %s", b.String())
	}
	if got.Apps[0]["app"] != "imessage" || got.Apps[0]["verdict"] != "blocked" || got.Apps[0]["reason"] != "r1" {
		t.Errorf("app = %v", got.Apps[0])
	}
	s := got.Services[0]
	if s["verdict"] != "blocked" || s["reason"] != "r2" || s["confidence"].(map[string]any)["level"] != "high" || s["evidence"] != nil {
		t.Errorf("service = %v: want verdict, reason and confidence, no evidence", s)
	}
}

func TestEscapeForTerminal(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain: ok\nnext", "plain: ok\nnext"},
		{"issuer \x1b]0;owned\x07 CA", `issuer \x1b]0;owned\x07 CA`},
		{"abc\u202edcba", `abc\u202edcba`},
		{"\u009b31m", `\u009b31m`},
		{"Zürich", "Zürich"},
	}
	for _, tt := range tests {
		if got := escapeForTerminal(tt.in); got != tt.want {
			t.Errorf("escapeForTerminal(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
