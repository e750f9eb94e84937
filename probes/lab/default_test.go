//go:build lab

package lab

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/catalog"
)

// labReportDir, when set, receives the HTML report of each default-catalog
// case, for looking at (docs/report-lab.png is a screenshot of one).
var labReportDir = flag.String("lab-report-dir", "", "write the HTML report of each default-catalog lab run into this directory")

// TestLabDefaultCatalog runs the embedded default catalog, as "reachprobe
// run" does with no --targets, in the lab: on a clean network every Apple
// endpoint it names must be reachable (the catalog, the probe and the
// fake internet agree), and on a network that drops every packet the run
// must end with nothing called blocked. It logs the run time and peak
// memory of each; the figures are reported, not asserted.
// defaultCatalogPlan skips t where the lab cannot run and returns the
// lab's plan for the embedded default catalog.
func defaultCatalogPlan(t testing.TB) *Plan {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(cat)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func TestLabDefaultCatalog(t *testing.T) {
	plan := defaultCatalogPlan(t)
	cases := []struct {
		name   string
		censor func(l *lab)
		check  func(t *testing.T, s *storedRun, rep *report)
	}{
		{"clean", nil, func(t *testing.T, s *storedRun, rep *report) {
			for _, o := range s.Observations {
				if o.Group != measurements.GroupCall && o.Step != measurements.StepDNS && !o.Succeeded() && !o.Control {
					t.Errorf("%s %s %s:%d: %s %s, want success on a clean network", o.Target, o.Step, o.Address, o.Port, o.Operation, o.Failure)
				}
			}
			for _, sv := range rep.Services {
				if sv.Service != measurements.GroupCall && sv.Verdict != "ok" {
					t.Errorf("service %s: %s, want ok", sv.Service, sv.Verdict)
				}
			}
			// Nothing is suspect on a clean network: no confirmation pass,
			// so a clean run takes no longer than before it existed.
			for _, o := range s.Observations {
				if o.Confirmation {
					t.Errorf("%s %s %s:%d measured again on a clean network", o.Target, o.Step, o.Address, o.Port)
					break
				}
			}
		}},
		{"drop-everything", func(l *lab) { l.forward("-j", "DROP") }, func(t *testing.T, s *storedRun, rep *report) {
			if rep.Network.Status != "no_connectivity" {
				t.Errorf("network status %q, want no_connectivity", rep.Network.Status)
			}
			for _, sv := range rep.Services {
				if sv.Verdict == "blocked" {
					t.Errorf("service %s called blocked on a network that drops everything", sv.Service)
				}
			}
		}},
		{"apple-dropped", func(l *lab) { l.forward("-d", "17.0.0.0/8", "-j", "DROP") }, func(t *testing.T, s *storedRun, rep *report) {
			if rep.Network.Status == "no_connectivity" {
				t.Error("network called no_connectivity while the control hosts answer")
			}
			// Bare silence toward all of Apple, confirmed after the pause:
			// a block or an outage, never called blocked.
			confirmed := false
			for _, o := range s.Observations {
				confirmed = confirmed || o.Confirmation
			}
			if !confirmed {
				t.Error("no confirmation pass though every Apple endpoint failed")
			}
			for _, p := range rep.blockedAnywhere() {
				t.Errorf("bare silence called blocked: %s", p)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l := newLab(t, plan)
			l.startInternet(false)
			if c.censor != nil {
				c.censor(l)
			}
			r := l.runProbeCatalog(1, "")
			t.Logf("default catalog, %s: run took %s, peak memory %d KiB", c.name, r.duration.Round(100_000_000), r.maxRSS)
			if r.err != nil {
				t.Fatalf("reachprobe run: %v\n%s\n%s", r.err, r.stdout, r.stderr)
			}
			s, err := r.observations()
			if err != nil {
				t.Fatal(err)
			}
			if s.Run.Status != measurements.RunComplete {
				t.Errorf("run status %q, want complete", s.Run.Status)
			}
			raw, rep, err := r.analyze()
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, s, rep)
			checkReports(t, r, c.name)
			if t.Failed() {
				t.Logf("analyze:\n%s\nprobe output:\n%s\n%s", raw, r.stdout, r.stderr)
			}
		})
	}
}

// checkReports exports the run in every format, checks that each parses,
// and that none holds the probe's address: in the lab the client's own
// address is the public address a STUN server reports.
func checkReports(t *testing.T, r *probeRun, name string) {
	t.Helper()
	for _, format := range []string{"html", "csv", "json", "ooni"} {
		out, err := reachprobe("report", "--db="+r.db, "--format="+format, "-o", "-")
		if err != nil {
			t.Errorf("report --format %s: %v", format, err)
			continue
		}
		if strings.Contains(out, clientAddr) {
			t.Errorf("report --format %s holds the probe's address %s", format, clientAddr)
		}
		switch format {
		case "html":
			if !strings.Contains(out, "<html") || strings.Contains(strings.ToLower(out), "<script") {
				t.Errorf("html report: not a page, or it holds a script")
			}
			if *labReportDir != "" {
				if err := os.WriteFile(filepath.Join(*labReportDir, "lab-"+name+".html"), []byte(out), 0o644); err != nil {
					t.Error(err)
				}
			}
		case "csv":
			rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
			if err != nil || len(rows) < 2 {
				t.Errorf("csv report: %d rows, %v", len(rows), err)
			}
		case "json":
			if !json.Valid([]byte(out)) {
				t.Error("json report is not valid JSON")
			}
		case "ooni":
			sc := bufio.NewScanner(strings.NewReader(out))
			sc.Buffer(nil, 64<<20)
			n := 0
			for sc.Scan() {
				var m struct {
					ProbeIP  string          `json:"probe_ip"`
					TestKeys json.RawMessage `json:"test_keys"`
				}
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m.ProbeIP != "127.0.0.1" || len(m.TestKeys) == 0 {
					t.Errorf("ooni line %d: probe_ip %q, %v", n+1, m.ProbeIP, err)
				}
				n++
			}
			if n == 0 {
				t.Error("ooni report is empty")
			}
		}
	}
}
