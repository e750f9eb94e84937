package htmlreport

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// Synthetic inputs built from analysis's golden scenarios: each scenario's
// observations are analysed once, then copied into as many runs as a test
// needs, at the times it needs.

// scenarioDir is where analysis keeps its golden scenarios.
const scenarioDir = "../testdata"

var (
	scenarioMu    sync.Mutex
	scenarioCache = map[string]scenarioData{}
)

type scenarioData struct {
	in  analysis.Input
	rep analysis.Report
}

// loadScenario reads and analyses analysis/testdata/<name>/observations.json.
func loadScenario(t testing.TB, name string) scenarioData {
	t.Helper()
	scenarioMu.Lock()
	defer scenarioMu.Unlock()
	if d, ok := scenarioCache[name]; ok {
		return d
	}
	raw, err := os.ReadFile(filepath.Join(scenarioDir, name, "observations.json"))
	if err != nil {
		t.Fatalf("reading scenario %s: %v", name, err)
	}
	var in analysis.Input
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatalf("decoding scenario %s: %v", name, err)
	}
	d := scenarioData{in: in, rep: analysis.Analyze(in)}
	scenarioCache[name] = d
	return d
}

// scenarioNames lists every scenario with observations.
func scenarioNames(t testing.TB) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(scenarioDir, "*", "observations.json"))
	if err != nil || len(matches) == 0 {
		t.Fatalf("no scenarios under %s (%v)", scenarioDir, err)
	}
	var names []string
	for _, m := range matches {
		names = append(names, filepath.Base(filepath.Dir(m)))
	}
	slices.Sort(names)
	return names
}

// stretch is a run of consecutive runs made of one scenario.
type stretch struct {
	scenario string
	runs     int
}

// historyInput builds an Input of runs every interval from start, one
// scenario per stretch, with the latest run's observations as evidence.
func historyInput(t testing.TB, start time.Time, every time.Duration, plan ...stretch) Input {
	t.Helper()
	var in Input
	var last scenarioData
	id := int64(100)
	for _, s := range plan {
		d := loadScenario(t, s.scenario)
		for range s.runs {
			at := start.Add(time.Duration(id-100) * every)
			id++
			run := d.in.Run
			run.ID, run.Started, run.SoftwareVersion = id, at, "0.4.0"
			if !run.Ended.IsZero() {
				run.Ended = at.Add(d.in.Run.Ended.Sub(d.in.Run.Started))
			}
			rep := d.rep
			rep.RunID, rep.RunStarted = id, at
			in.Runs = append(in.Runs, analysis.RunVerdicts{Run: run, Report: rep, AnalysisVersion: analysis.Version})
			last = d
		}
	}
	if len(in.Runs) > 0 {
		latest := in.Runs[len(in.Runs)-1].Run
		shift := latest.Started.Sub(last.in.Run.Started)
		for _, o := range last.in.Observations {
			o.RunID = latest.ID
			o.Started = o.Started.Add(shift)
			in.Evidence = append(in.Evidence, o)
		}
	}
	in.History = analysis.History(in.Runs)
	in.Network = NetworkInfo{ASN: 64500, NetworkName: "Example Telecom", CountryCode: "DE"}
	in.SoftwareVersion = "0.4.0"
	in.GeneratedAt = time.Date(2025, 11, 4, 12, 0, 0, 0, time.UTC)
	return in
}

// labStart is when the synthetic lab history begins.
var labStart = time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)

// labInput is a lab history in which FaceTime calls become blocked
// midway: clean runs every three hours, one run while the link was down,
// clean again, then runs where UDP to Apple's relays is dropped.
func labInput(t testing.TB) Input {
	return historyInput(t, labStart, 3*time.Hour,
		stretch{"clean", 10}, stretch{"link_down", 1}, stretch{"clean", 5}, stretch{"call_udp_dropped", 8})
}

// singleInput is one run of one scenario.
func singleInput(t testing.TB, scenario string) Input {
	return historyInput(t, time.Date(2025, 11, 3, 10, 0, 0, 0, time.UTC), time.Hour, stretch{scenario, 1})
}

// findObservation returns the index of the first observation keep
// accepts, -1 if none: tests plant values in the evidence with it.
func findObservation(obs []measurements.Observation, keep func(*measurements.Observation) bool) int {
	for i := range obs {
		if keep(&obs[i]) {
			return i
		}
	}
	return -1
}
