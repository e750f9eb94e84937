package export

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// probeAddress stands for the probe's own address: the fixture plants it
// in free text, and no export may contain it.
const probeAddress = "203.0.113.77"

// fixtureCases are analysis golden cases, one run each: every step kind,
// late DNS responses, an intercepted chain and skipped bogon addresses.
var fixtureCases = []string{"clean", "push_injection", "identity_interception", "push_bogon"}

var fixtureNetwork = measurements.Identity{ProbeASN: 3320, ProbeNetworkName: "Deutsche Telekom AG", ProbeCC: "DE",
	ResolverASN: 15169, ResolverNetworkName: "Google LLC", ResolverCC: "US"}

// loadCase reads analysis/testdata/<name>/observations.json as run id.
func loadCase(t testing.TB, name string, id int64) Run {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name, "observations.json"))
	if err != nil {
		t.Fatal(err)
	}
	var in analysis.Input
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	in.Run.ID = id
	in.Run.Started = in.Run.Started.Add(time.Duration(id) * time.Hour)
	in.Run.Ended = in.Run.Ended.Add(time.Duration(id) * time.Hour)
	for i := range in.Observations {
		in.Observations[i].RunID = id
		in.Observations[i].Started = in.Observations[i].Started.Add(time.Duration(id) * time.Hour)
	}
	return Run{Run: in.Run, Network: fixtureNetwork, Targets: in.Targets, Observations: in.Observations,
		Report: analysis.Analyze(in)}
}

// fixture returns the runs of fixtureCases with the probe's address
// planted in free text: an unknown failure, a certificate error, a note of
// the report. It also adds a raw DNS response and a name a spreadsheet
// would run as a formula.
func fixture(t testing.TB) []Run {
	t.Helper()
	var runs []Run
	for i, name := range fixtureCases {
		r := loadCase(t, name, int64(i+1))
		planted := false
		for j := range r.Observations {
			o := &r.Observations[j]
			switch {
			case o.Step == measurements.StepTCP && !planted:
				o.Failure = "unknown_failure: dial tcp " + probeAddress + ":50123->" + o.Address + ":443: weird"
				o.Operation = "connect"
				planted = true
			case o.Step == measurements.StepTLS && o.TLS != nil && o.TLS.VerifyFailure != "":
				o.TLS.VerifyFailure += " (seen from " + probeAddress + ")"
			case o.Step == measurements.StepDNS && o.DNS.Engine == measurements.EngineUDP:
				o.DNS.RawResponse = []byte{0xbe, 0xef, 0x81, 0x80}
				o.DNS.Resolver = "8.8.8.8:53"
			}
		}
		r.Observations[0].Host = "=HYPERLINK(\"http://example.com\")"
		r.Report.Notes = append(r.Report.Notes, "the probe at "+probeAddress+" saw "+r.Observations[len(r.Observations)-1].Address)
		runs = append(runs, r)
	}
	return runs
}

func countObservations(runs []Run) int {
	n := 0
	for _, r := range runs {
		n += len(r.Observations)
	}
	return n
}

// checkNoProbeAddress fails if out holds the planted address.
func checkNoProbeAddress(t *testing.T, format string, out []byte) {
	t.Helper()
	if i := strings.Index(string(out), probeAddress); i >= 0 {
		t.Errorf("%s export holds the probe's address: ...%s...", format, out[max(0, i-80):min(len(out), i+40)])
	}
}
