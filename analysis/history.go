package analysis

import (
	"cmp"
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
	runs = slices.Clone(runs)
	slices.SortStableFunc(runs, func(a, b RunVerdicts) int {
		return cmp.Or(a.Run.Started.Compare(b.Run.Started), cmp.Compare(a.Run.ID, b.Run.ID))
	})
	h := HistoryReport{FormatVersion: FormatVersion, Runs: len(runs), Apps: []AppHistory{}, Services: []ServiceHistory{}, JudgedBy: judgedBy(runs)}
	if len(runs) == 0 {
		return h
	}
	h.From, h.To = runs[0].Run.Started, runs[len(runs)-1].Run.Started
	for _, app := range []string{AppIMessage, AppFaceTime} {
		s := SeriesHistory{kind: "app"}
		for _, rv := range runs {
			for _, a := range rv.Report.Apps {
				if a.App == app {
					s.Points = append(s.Points, HistoryPoint{RunID: rv.Run.ID, Time: rv.Run.Started, Verdict: a.Verdict})
				}
			}
		}
		if len(s.Points) > 0 {
			s.summarise(AppBlocked, AppWorking)
			h.Apps = append(h.Apps, AppHistory{App: app, Title: appTitles[app], SeriesHistory: s})
		}
	}
	for _, svc := range Services {
		s := SeriesHistory{kind: "service"}
		for _, rv := range runs {
			for _, sv := range rv.Report.Services {
				if sv.Service == svc {
					s.Points = append(s.Points, HistoryPoint{RunID: rv.Run.ID, Time: rv.Run.Started, Verdict: sv.Verdict, Methods: sv.Methods})
				}
			}
		}
		if len(s.Points) > 0 {
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
func judgedBy(runs []RunVerdicts) []JudgedBy {
	out := []JudgedBy{}
	at := map[int]int{}
	for _, rv := range runs {
		i, ok := at[rv.AnalysisVersion]
		if !ok {
			i = len(out)
			at[rv.AnalysisVersion] = i
			out = append(out, JudgedBy{AnalysisVersion: rv.AnalysisVersion, Current: rv.AnalysisVersion == Version, From: rv.Run.Started})
		}
		out[i].Runs++
		if rv.Pruned {
			out[i].Pruned++
		}
		out[i].To = rv.Run.Started
	}
	slices.SortFunc(out, func(a, b JudgedBy) int { return cmp.Compare(b.AnalysisVersion, a.AnalysisVersion) })
	return out
}
