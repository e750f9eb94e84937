package analysis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// historyRuns is five daily runs: clean, clean, calls blocked twice, clean
// again; given out of order, as a caller might.
func historyRuns() []RunVerdicts {
	worlds := []func() *world{
		func() *world { return &world{} },
		func() *world { return &world{} },
		func() *world {
			return &world{step: func(s *stepCtx) {
				if forApple(s) && s.o.Step == measurements.StepUDP {
					s.fail(failTimeout, "read")
				}
			}}
		},
		func() *world {
			return &world{step: func(s *stepCtx) {
				if forApple(s) && s.o.Step == measurements.StepUDP {
					s.fail(failTimeout, "read")
				}
			}}
		},
		func() *world { return &world{} },
	}
	var runs []RunVerdicts
	for i, w := range worlds {
		in := w().build()
		in.Run.ID = int64(i + 1)
		in.Run.Started = runStart.Add(time.Duration(i) * 24 * time.Hour)
		// The first two were pruned, one before summaries recorded the
		// analysis's version; the others were judged by an older one
		// (versions other than this one's keep the golden files apart
		// from Version).
		rv := RunVerdicts{Run: in.Run, Report: Analyze(in), AnalysisVersion: 1}
		if i < 2 {
			rv.AnalysisVersion, rv.Pruned = i, true
		}
		runs = append(runs, rv)
	}
	// Newest first: History must sort by start time.
	for i, j := 0, len(runs)-1; i < j; i, j = i+1, j-1 {
		runs[i], runs[j] = runs[j], runs[i]
	}
	return runs
}

func day(i int) time.Time { return runStart.Add(time.Duration(i) * 24 * time.Hour) }

func TestHistory(t *testing.T) {
	h := History(historyRuns())
	if h.Runs != 5 || !h.From.Equal(day(0)) || !h.To.Equal(day(4)) {
		t.Fatalf("runs %d from %v to %v, want 5 from %v to %v", h.Runs, h.From, h.To, day(0), day(4))
	}
	byService := map[string]ServiceHistory{}
	for _, s := range h.Services {
		byService[s.Service] = s
	}
	call := byService[measurements.GroupCall]
	var verdicts []string
	for _, p := range call.Points {
		verdicts = append(verdicts, p.Verdict)
	}
	if want := []string{"ok", "ok", "blocked", "blocked", "ok"}; !equalStrings(verdicts, want) {
		t.Errorf("call verdicts = %v, want %v", verdicts, want)
	}
	if call.FirstSeenBlocked == nil || !call.FirstSeenBlocked.Equal(day(2)) {
		t.Errorf("call first seen blocked = %v, want %v", call.FirstSeenBlocked, day(2))
	}
	if call.LastSeenOK == nil || !call.LastSeenOK.Equal(day(4)) {
		t.Errorf("call last seen ok = %v, want %v", call.LastSeenOK, day(4))
	}
	wantChanges := []Change{{RunID: 3, Time: day(2), From: "ok", To: "blocked"}, {RunID: 5, Time: day(4), From: "blocked", To: "ok"}}
	if len(call.Changes) != len(wantChanges) {
		t.Fatalf("call changes = %+v, want %+v", call.Changes, wantChanges)
	}
	for i, c := range call.Changes {
		w := wantChanges[i]
		if c.RunID != w.RunID || !c.Time.Equal(w.Time) || c.From != w.From || c.To != w.To {
			t.Errorf("change %d = %+v, want %+v", i, c, w)
		}
	}
	if call.Latest != "ok" || call.Agreeing != 3 || call.Steadiness != 0.6 {
		t.Errorf("call latest %s, agreeing %d, steadiness %v; want ok, 3, 0.6", call.Latest, call.Agreeing, call.Steadiness)
	}
	push := byService[measurements.GroupPush]
	if push.FirstSeenBlocked != nil || len(push.Changes) != 0 || push.Steadiness != 1 {
		t.Errorf("push: first blocked %v, changes %v, steadiness %v; want never, none, 1", push.FirstSeenBlocked, push.Changes, push.Steadiness)
	}
	for _, a := range h.Apps {
		if a.App == AppIMessage && len(a.Changes) != 0 {
			t.Errorf("imessage changed: %+v", a.Changes)
		}
		if a.App == AppFaceTime && (a.FirstSeenBlocked == nil || !a.FirstSeenBlocked.Equal(day(2)) || a.LastSeenOK == nil || !a.LastSeenOK.Equal(day(4))) {
			t.Errorf("facetime first blocked %v, last working %v; want %v, %v", a.FirstSeenBlocked, a.LastSeenOK, day(2), day(4))
		}
	}
}

func TestHistoryEmpty(t *testing.T) {
	h := History(nil)
	if h.Runs != 0 || len(h.Services) != 0 || len(h.Apps) != 0 {
		t.Errorf("History(nil) = %+v, want an empty history", h)
	}
	var b bytes.Buffer
	if err := h.WriteText(&b); err != nil || b.Len() == 0 {
		t.Errorf("WriteText = %q, %v; want a line saying there is nothing", b.String(), err)
	}
}

// TestGoldenHistory pins the history's JSON and text, regenerated with
// -update like the analysis golden files.
func TestGoldenHistory(t *testing.T) {
	h := History(historyRuns())
	var txt bytes.Buffer
	if err := h.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("testdata", "history")
	files := map[string][]byte{"history.json": marshal(t, h), "history.txt": txt.Bytes()}
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, got := range files {
		if want := readFile(t, filepath.Join(dir, name)); !bytes.Equal(got, want) {
			t.Errorf("%s: %s", name, firstDiff(want, got))
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestForHistoryKeepsHistory: on every golden case, taken as one run of a
// history, the history of ForHistory's reduced reports, kept as JSON and
// read back, is the history of the full reports.
func TestForHistoryKeepsHistory(t *testing.T) {
	var full, reduced []RunVerdicts
	for i, sc := range append(scenarios(), dnsQuirkScenarios()...) {
		in := sc.world().build()
		in.Run.ID = int64(i + 1)
		in.Run.Started = runStart.Add(time.Duration(i) * time.Hour)
		rep := Analyze(in)
		full = append(full, RunVerdicts{Run: in.Run, Report: rep, AnalysisVersion: Version})
		// As reachprobe keeps them: ForHistory's report through JSON.
		var kept Report
		if err := json.Unmarshal(marshal(t, ForHistory(in.Run, rep).Report), &kept); err != nil {
			t.Fatal(err)
		}
		reduced = append(reduced, ForHistory(in.Run, kept))
	}
	want, got := marshal(t, History(full)), marshal(t, History(reduced))
	if !bytes.Equal(got, want) {
		t.Errorf("history of reduced reports: %s", firstDiff(want, got))
	}
	if h := History(full); len(h.Services) == 0 || len(h.Services[0].Changes) == 0 {
		t.Errorf("the golden cases make a history without changes; the comparison proves little: %+v", h.Services)
	}
}

// TestJudgedBy: runs are counted by the analysis version that judged
// them, newest first, and the text says so only when it is news.
func TestJudgedBy(t *testing.T) {
	at := func(h int) time.Time { return runStart.Add(time.Duration(h) * time.Hour) }
	rv := func(id int64, version int, pruned bool) RunVerdicts {
		return RunVerdicts{Run: measurements.Run{ID: id, Started: at(int(id))}, AnalysisVersion: version, Pruned: pruned}
	}
	tests := []struct {
		name  string
		runs  []RunVerdicts
		want  []JudgedBy
		notes []string
	}{
		{"all by this analysis", []RunVerdicts{rv(1, Version, false), rv(2, Version, false)},
			[]JudgedBy{{AnalysisVersion: Version, Current: true, Runs: 2, From: at(1), To: at(2)}}, nil},
		{"pruned by this analysis", []RunVerdicts{rv(1, Version, true), rv(2, Version, false)},
			[]JudgedBy{{AnalysisVersion: Version, Current: true, Runs: 2, Pruned: 1, From: at(1), To: at(2)}},
			[]string{fmt.Sprintf("2 runs judged by this analysis (version %d), 1 of them pruned", Version)}},
		{"old pruned runs, one unrecorded", []RunVerdicts{rv(1, 0, true), rv(2, Version-1, true), rv(3, Version-1, true), rv(4, Version, false)},
			[]JudgedBy{
				{AnalysisVersion: Version, Current: true, Runs: 1, From: at(4), To: at(4)},
				{AnalysisVersion: Version - 1, Runs: 2, Pruned: 2, From: at(2), To: at(3)},
				{AnalysisVersion: 0, Runs: 1, Pruned: 1, From: at(1), To: at(1)},
			},
			[]string{
				fmt.Sprintf("1 run judged by this analysis (version %d)", Version),
				fmt.Sprintf("2 runs judged by analysis version %d, not this one, all pruned, from %s to %s: their observations are gone, so their verdicts stay as that analysis gave them",
					Version-1, at(2).Format(textTime), at(3).Format(textTime)),
				fmt.Sprintf("1 run judged by an analysis whose version was not recorded, pruned, started %s: its observations are gone, so its verdicts stay as that analysis gave them",
					at(1).Format(textTime)),
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := History(tt.runs)
			if !reflect.DeepEqual(h.JudgedBy, tt.want) {
				t.Errorf("JudgedBy = %+v\nwant %+v", h.JudgedBy, tt.want)
			}
			if got := h.JudgedByNotes(); !reflect.DeepEqual(got, tt.notes) {
				t.Errorf("JudgedByNotes = %q\nwant %q", got, tt.notes)
			}
		})
	}
}

// TestHistoryWriteJSON: WriteJSON writes what json.MarshalIndent does,
// byte for byte, for histories with and without lists, at the depths the
// exports use.
func TestHistoryWriteJSON(t *testing.T) {
	full := History(historyRuns())
	noApps := full
	noApps.Apps = []AppHistory{}
	for _, tt := range []struct {
		name           string
		h              HistoryReport
		prefix, indent string
	}{
		{"golden", full, "", "  "},
		{"in an export", full, "  ", "  "},
		{"tabs", full, "\t", "\t"},
		{"no apps", noApps, "  ", "  "},
		{"empty", History(nil), "  ", "  "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.MarshalIndent(tt.h, tt.prefix, tt.indent)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := tt.h.WriteJSON(&got, tt.prefix, tt.indent); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("WriteJSON differs from MarshalIndent: %s", firstDiff(want, got.Bytes()))
			}
		})
	}
}
