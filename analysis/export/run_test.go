package export

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"net/netip"
)

func TestScrub(t *testing.T) {
	for _, r := range fixture(t) {
		before, _ := json.Marshal(r)
		if !strings.Contains(string(before), probeAddress) {
			t.Fatalf("run %d: the fixture lacks the planted address; the test proves nothing", r.Run.ID)
		}
		s, err := Scrub(r)
		if err != nil {
			t.Fatal(err)
		}
		after, _ := json.Marshal(s)
		checkNoProbeAddress(t, "scrubbed run", after)
		if again, _ := json.Marshal(r); string(again) != string(before) {
			t.Errorf("run %d: Scrub modified its argument", r.Run.ID)
		}
		// The note names a measured address too: it stays.
		note := s.Report.Notes[len(s.Report.Notes)-1]
		measured := r.Observations[len(r.Observations)-1].Address
		if want := "the probe at [scrubbed] saw " + measured; note != want {
			t.Errorf("run %d: note %q, want %q", r.Run.ID, note, want)
		}
		for i, o := range s.Observations {
			if o.Failure != r.Observations[i].Failure && !strings.Contains(o.Failure, "[scrubbed]:50123->"+r.Observations[i].Address) {
				t.Errorf("run %d: failure %q, want the probe's address scrubbed and the target's kept", r.Run.ID, o.Failure)
			}
		}
	}
}

// TestScrubReportReachesEveryString fills every string of a report,
// whatever fields analysis adds later, with an address and checks that
// none survives.
func TestScrubReportReachesEveryString(t *testing.T) {
	rep := loadCase(t, "push_injection", 1).Report
	rep.Notes = []string{"note"}
	planted := 0
	scrubStrings(reflect.ValueOf(&rep).Elem(), func(string) string { planted++; return "x " + probeAddress + " y" })
	if planted < 100 {
		t.Fatalf("only %d strings planted; the walk misses most of the report", planted)
	}
	got, err := scrubReport(rep, func(a netip.Addr) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	checkNoProbeAddress(t, "scrubbed report", b)
}

// TestScrubReportKeepsEverything checks that the JSON copy loses nothing:
// a report with nothing to scrub comes back equal.
func TestScrubReportKeepsEverything(t *testing.T) {
	for _, name := range fixtureCases {
		r := loadCase(t, name, 1)
		got, err := scrubReport(r.Report, func(netip.Addr) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r.Report) {
			t.Errorf("%s: the report changed in the copy", name)
		}
	}
}
