package analysis

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// RunVerdicts is one run and its report, for History, which reads only
// its Apps and Services (see ForHistory).
type RunVerdicts struct {
	Run    measurements.Run
	Report Report
	// AnalysisVersion is the Version of the analysis that judged the run:
	// this one's for a run judged now or whose verdicts were kept under
	// it; for a pruned run, the one that judged it before its
	// observations went, or 0 when that was not recorded (a run pruned
	// before versions were kept with summaries).
	AnalysisVersion int
	// Pruned is whether the run's observations were deleted and its
	// verdicts come from the summary kept then.
	Pruned bool
}

// ForHistory is run and rep as a history needs them: the app and service
// verdicts (with methods and scope) History reads and the network's
// status a timeline shows; no reasons, no per-target, per-name or
// per-endpoint evidence, which are nearly all of a report's memory. A
// history of a year of hourly runs keeps 8760 of these, a few hundred
// bytes each, not 8760 reports.
func ForHistory(run measurements.Run, rep Report) RunVerdicts {
	return RunVerdicts{Run: run, Report: rep, AnalysisVersion: Version}.Slim()
}

// Slim is rv with only what History reads of its report (see ForHistory).
func (rv RunVerdicts) Slim() RunVerdicts {
	rep := rv.Report
	kept := Report{Network: Network{Status: rep.Network.Status}}
	for _, a := range rep.Apps {
		kept.Apps = append(kept.Apps, AppVerdict{App: a.App, Verdict: a.Verdict, Scope: a.Scope})
	}
	for _, s := range rep.Services {
		kept.Services = append(kept.Services, ServiceVerdict{Service: s.Service, Verdict: s.Verdict, Methods: s.Methods, Scope: s.Scope})
	}
	rv.Report = kept
	return rv
}

// HistoryReport follows app and service verdicts across runs.
type HistoryReport struct {
	FormatVersion int              `json:"format_version"`
	Runs          int              `json:"runs"`
	From          time.Time        `json:"from"`
	To            time.Time        `json:"to"`
	Apps          []AppHistory     `json:"apps"`
	Services      []ServiceHistory `json:"services"`
	// JudgedBy says which analysis judged the runs, newest version first:
	// a pruned run keeps the verdicts of the analysis that judged it when
	// its observations were deleted, which may be older than this one.
	JudgedBy []JudgedBy `json:"judged_by"`
}

// JudgedBy counts the runs of a history judged by one analysis version.
type JudgedBy struct {
	// AnalysisVersion is the analysis's Version; 0 when unrecorded (runs
	// pruned before versions were kept with their summaries).
	AnalysisVersion int `json:"analysis_version"`
	// Current is whether it is this analysis.
	Current bool `json:"current"`
	Runs    int  `json:"runs"`
	// Pruned counts those whose observations were deleted: their verdicts
	// cannot be judged again.
	Pruned int `json:"pruned"`
	// From and To are the first and last of these runs' starts.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// AppHistory is one app's verdicts across runs.
type AppHistory struct {
	App   string `json:"app"`
	Title string `json:"title"`
	SeriesHistory
}

// ServiceHistory is one service's verdicts across runs.
type ServiceHistory struct {
	Service string `json:"service"`
	Title   string `json:"title"`
	SeriesHistory
}

// SeriesHistory is a sequence of verdicts, oldest first, and what it says.
type SeriesHistory struct {
	// Latest is the verdict of the newest run.
	Latest string         `json:"latest"`
	Points []HistoryPoint `json:"points"`
	// FirstSeenBlocked is the start of the oldest run with a blocked
	// verdict; null if never.
	FirstSeenBlocked *time.Time `json:"first_seen_blocked"`
	// LastSeenOK is the start of the newest run with an ok verdict
	// ("working" for apps); null if never.
	LastSeenOK *time.Time `json:"last_seen_ok"`
	// Changes lists every run whose verdict differs from the run before.
	Changes []Change `json:"changes"`
	// Agreeing counts runs with the latest verdict; Steadiness is their
	// share of all runs (1 when the verdict never changed).
	Agreeing   int     `json:"agreeing"`
	Steadiness float64 `json:"steadiness"`
	kind       string
}

// HistoryPoint is one run's verdict.
type HistoryPoint struct {
	RunID   int64     `json:"run_id"`
	Time    time.Time `json:"time"`
	Verdict string    `json:"verdict"`
	Methods []string  `json:"methods,omitempty"`
}

// Change is a run whose verdict differs from the previous run's.
type Change struct {
	RunID int64     `json:"run_id"`
	Time  time.Time `json:"time"`
	From  string    `json:"from"`
	To    string    `json:"to"`
}

// History follows verdicts across runs. Runs are sorted by start time (then
// ID), oldest first; times come from the runs, never from the clock. A run
// whose report lacks a service or app adds no point to it.
func History(runs []RunVerdicts) HistoryReport {
	var b HistoryBuilder
	for _, rv := range runs {
		b.Add(rv)
	}
	return b.History()
}

// HistoryBuilder makes History's report one run at a time, keeping of
// each run its points and a few words on who judged it (about 500 bytes),
// never its report: an export that streams its runs keeps this, so its
// memory grows with the points its history prints and nothing else. The
// zero value is ready to use.
type HistoryBuilder struct {
	runs     []judgedRun
	apps     map[string][]HistoryPoint
	services map[string][]HistoryPoint
}

// judgedRun is what JudgedBy needs of a run.
type judgedRun struct {
	id      int64
	started time.Time
	version int
	pruned  bool
}

// Add adds rv's points, in any order of runs.
func (b *HistoryBuilder) Add(rv RunVerdicts) {
	if b.apps == nil {
		b.apps, b.services = map[string][]HistoryPoint{}, map[string][]HistoryPoint{}
	}
	b.runs = append(b.runs, judgedRun{id: rv.Run.ID, started: rv.Run.Started, version: rv.AnalysisVersion, pruned: rv.Pruned})
	for _, a := range rv.Report.Apps {
		b.apps[a.App] = append(b.apps[a.App], HistoryPoint{RunID: rv.Run.ID, Time: rv.Run.Started, Verdict: a.Verdict})
	}
	for _, sv := range rv.Report.Services {
		b.services[sv.Service] = append(b.services[sv.Service], HistoryPoint{RunID: rv.Run.ID, Time: rv.Run.Started, Verdict: sv.Verdict, Methods: sv.Methods})
	}
}

// History is the history of the runs added so far.
func (b *HistoryBuilder) History() HistoryReport {
	slices.SortStableFunc(b.runs, func(x, y judgedRun) int {
		return cmp.Or(x.started.Compare(y.started), cmp.Compare(x.id, y.id))
	})
	h := HistoryReport{FormatVersion: FormatVersion, Runs: len(b.runs), Apps: []AppHistory{}, Services: []ServiceHistory{}, JudgedBy: judgedBy(b.runs)}
	if len(b.runs) == 0 {
		return h
	}
	h.From, h.To = b.runs[0].started, b.runs[len(b.runs)-1].started
	series := func(points []HistoryPoint, kind string) SeriesHistory {
		slices.SortStableFunc(points, func(x, y HistoryPoint) int {
			return cmp.Or(x.Time.Compare(y.Time), cmp.Compare(x.RunID, y.RunID))
		})
		return SeriesHistory{kind: kind, Points: points}
	}
	for _, app := range []string{AppIMessage, AppFaceTime} {
		if points := b.apps[app]; len(points) > 0 {
			s := series(points, "app")
			s.summarise(AppBlocked, AppWorking)
			h.Apps = append(h.Apps, AppHistory{App: app, Title: appTitles[app], SeriesHistory: s})
		}
	}
	for _, svc := range Services {
		if points := b.services[svc]; len(points) > 0 {
			s := series(points, "service")
			s.summarise(VerdictBlocked, VerdictOK)
			h.Services = append(h.Services, ServiceHistory{Service: svc, Title: serviceTitles[svc], SeriesHistory: s})
		}
	}
	return h
}

// summarise fills everything but Points from Points.
func (s *SeriesHistory) summarise(blocked, ok string) {
	s.Changes = []Change{}
	s.Latest = s.Points[len(s.Points)-1].Verdict
	for i, p := range s.Points {
		if p.Verdict == blocked && s.FirstSeenBlocked == nil {
			t := p.Time
			s.FirstSeenBlocked = &t
		}
		if p.Verdict == ok {
			t := p.Time
			s.LastSeenOK = &t
		}
		if i > 0 && p.Verdict != s.Points[i-1].Verdict {
			s.Changes = append(s.Changes, Change{RunID: p.RunID, Time: p.Time, From: s.Points[i-1].Verdict, To: p.Verdict})
		}
		if p.Verdict == s.Latest {
			s.Agreeing++
		}
	}
	s.Steadiness = float64(s.Agreeing) / float64(len(s.Points))
}

// judgedBy counts runs (sorted by start) by the analysis version that
// judged them, newest version first.
func judgedBy(runs []judgedRun) []JudgedBy {
	out := []JudgedBy{}
	at := map[int]int{}
	for _, r := range runs {
		i, ok := at[r.version]
		if !ok {
			i = len(out)
			at[r.version] = i
			out = append(out, JudgedBy{AnalysisVersion: r.version, Current: r.version == Version, From: r.started})
		}
		out[i].Runs++
		if r.pruned {
			out[i].Pruned++
		}
		out[i].To = r.started
	}
	slices.SortFunc(out, func(a, b JudgedBy) int { return cmp.Compare(b.AnalysisVersion, a.AnalysisVersion) })
	return out
}

// WriteJSON writes h as json.MarshalIndent(h, prefix, indent) would, byte
// for byte, but one app or service at a time: a year of hourly runs has
// megabytes of points, and an export that streams its runs should not
// hold them twice more as encoded text.
func (h HistoryReport) WriteJSON(w io.Writer, prefix, indent string) error {
	apps, services := h.Apps, h.Services
	h.Apps, h.Services = []AppHistory{}, []ServiceHistory{}
	frame, err := json.MarshalIndent(h, prefix, indent)
	if err != nil {
		return err
	}
	// The frame names each list once: no other field of a history is
	// called so, and its other values are numbers, times and
	// verdicts' words.
	const appsKey, servicesKey = `"apps": []`, `"services": []`
	i, j := bytes.Index(frame, []byte(appsKey)), bytes.Index(frame, []byte(servicesKey))
	if i < 0 || j < i || bytes.Count(frame, []byte(appsKey)) != 1 || bytes.Count(frame, []byte(servicesKey)) != 1 {
		return fmt.Errorf("analysis: history frame without its lists: %s", frame)
	}
	// The lists' depth: the frame's lines start with prefix, then one
	// indent per level, and the lists sit one level in.
	inner := prefix + indent
	writeList := func(n int, elem func(int) any) error {
		if n == 0 {
			_, err := io.WriteString(w, "[]")
			return err
		}
		io.WriteString(w, "[")
		for k := range n {
			b, err := json.MarshalIndent(elem(k), inner+indent, indent)
			if err != nil {
				return err
			}
			if k > 0 {
				io.WriteString(w, ",")
			}
			io.WriteString(w, "\n"+inner+indent)
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		_, err := io.WriteString(w, "\n"+inner+"]")
		return err
	}
	if _, err := w.Write(frame[:i+len(appsKey)-2]); err != nil {
		return err
	}
	if err := writeList(len(apps), func(k int) any { return apps[k] }); err != nil {
		return err
	}
	if _, err := w.Write(frame[i+len(appsKey) : j+len(servicesKey)-2]); err != nil {
		return err
	}
	if err := writeList(len(services), func(k int) any { return services[k] }); err != nil {
		return err
	}
	_, err = w.Write(frame[j+len(servicesKey):])
	return err
}
