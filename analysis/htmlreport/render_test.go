package htmlreport

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
)

// update rewrites the golden report:
// go test ./analysis/htmlreport -run TestGolden -update
var update = flag.Bool("update", false, "rewrite testdata/lab.golden.html")

func render(t testing.TB, in Input) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Render(&b, in); err != nil {
		t.Fatalf("Render: %v", err)
	}
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	got := render(t, labInput(t))
	path := filepath.Join("testdata", "lab.golden.html")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("report differs from %s at line %d (run with -update after checking the change):\ngot:  %.300s\nwant: %.300s", path, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("report differs from %s in length: got %d lines, want %d", path, len(gl), len(wl))
	}
}

// TestDeterministic renders the same input from several goroutines: the
// bytes must not depend on map order, timing or the clock.
func TestDeterministic(t *testing.T) {
	in := labInput(t)
	want := render(t, in)
	var wg sync.WaitGroup
	outs := make([][]byte, 4)
	for i := range outs {
		wg.Go(func() {
			var b bytes.Buffer
			if err := Render(&b, in); err == nil {
				outs[i] = b.Bytes()
			}
		})
	}
	wg.Wait()
	for i, got := range outs {
		if !bytes.Equal(got, want) {
			t.Errorf("render %d differs from the first (%d bytes, want %d)", i, len(got), len(want))
		}
	}
}

// TestHistoryComputed checks that an Input without History gets the one
// analysis.History computes.
func TestHistoryComputed(t *testing.T) {
	in := labInput(t)
	want := render(t, in)
	in.History = analysis.HistoryReport{}
	if got := render(t, in); !bytes.Equal(got, want) {
		t.Errorf("report without History differs from the one with analysis.History(Runs)")
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Input)
		want error
	}{
		{"runs newest first", func(in *Input) {
			in.Runs[0], in.Runs[len(in.Runs)-1] = in.Runs[len(in.Runs)-1], in.Runs[0]
		}, ErrRunOrder},
		{"evidence of an older run", func(in *Input) { in.Evidence[3].RunID = in.Runs[0].Run.ID }, ErrEvidenceRun},
		{"evidence without runs", func(in *Input) { in.Runs = nil }, ErrEvidenceRun},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := labInput(t)
			in.Runs = append([]analysis.RunVerdicts(nil), in.Runs...)
			in.Evidence = append(in.Evidence[:0:0], in.Evidence...)
			tt.edit(&in)
			var b bytes.Buffer
			err := Render(&b, in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Render error = %v, want %v", err, tt.want)
			}
			if b.Len() != 0 {
				t.Errorf("Render wrote %d bytes on bad input, want none", b.Len())
			}
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteError(t *testing.T) {
	if err := Render(failingWriter{}, singleInput(t, "clean")); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Render to a failing writer: error = %v, want the writer's", err)
	}
}

// TestHeadline checks the three answers a reader sees first.
func TestHeadline(t *testing.T) {
	at := time.Date(2025, 11, 3, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   func(t testing.TB) Input
		// want are the answers for push, iMessage and FaceTime; since
		// is a phrase the FaceTime card's since line must hold.
		want  [3]string
		since string
		sure  string // FaceTime's "how sure"
	}{
		{"lab: calls blocked midway", labInput,
			[3]string{"Yes, working", "Yes, working", "Blocked since 3 Nov 2025"},
			"Blocked since 3 Nov 2025, 00:00 UTC; before that: working.", "Medium"},
		{"one clean run", func(t testing.TB) Input { return singleInput(t, "clean") },
			[3]string{"Yes, working", "Yes, working", "Yes, working"}, "Measured once, on 3 Nov 2025, 10:00 UTC.", "Medium"},
		{"link down is not blocking", func(t testing.TB) Input { return singleInput(t, "link_down") },
			[3]string{"Cannot tell", "Cannot tell", "Cannot tell"}, "Measured once", "Low"},
		{"identity outage is not blocking", func(t testing.TB) Input { return singleInput(t, "identity_outage") },
			[3]string{"Yes, working", "Down, not blocked", "Down, not blocked"}, "Measured once", "Low"},
		{"port 5223 blocked: degraded", func(t testing.TB) Input { return singleInput(t, "push_5223_drop") },
			[3]string{"Partly blocked", "Partly blocked", "Partly blocked"}, "Measured once", "Medium"},
		{"Apple silent everywhere: unreachable, not blocked", func(t testing.TB) Input { return singleInput(t, "apple_blackhole") },
			[3]string{"Unreachable: a block or an outage", "Unreachable: a block or an outage", "Unreachable: a block or an outage"}, "Measured once", "Medium"},
		{"a web-only firewall: FaceTime closed by the network", func(t testing.TB) Input { return singleInput(t, "web_only_firewall") },
			[3]string{"Yes, working", "Yes, working", "Closed by this network"}, "Measured once", "Medium"},
		{"blocked in every run: may have started earlier", func(t testing.TB) Input {
			return historyInput(t, at, time.Hour, stretch{"push_sni_reset", 3})
		}, [3]string{"Blocked", "Blocked", "Blocked"}, "Blocked in every run since the first, on 3 Nov 2025, 10:00 UTC; it may have started earlier.", "Medium"},
		{"an outage between blocked runs does not restart the clock", func(t testing.TB) Input {
			return historyInput(t, at, time.Hour, stretch{"clean", 2}, stretch{"call_udp_dropped", 2}, stretch{"link_down", 1}, stretch{"call_udp_dropped", 1})
		}, [3]string{"Yes, working", "Yes, working", "Blocked since 3 Nov 2025"}, "Blocked since 3 Nov 2025, 12:00 UTC (1 run could not tell); before that: working.", "Medium"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in(t)
			v := buildView(in)
			if len(v.Cards) != 3 {
				t.Fatalf("%d cards, want 3", len(v.Cards))
			}
			for i, c := range v.Cards {
				if c.Answer != tt.want[i] {
					t.Errorf("card %q answer = %q, want %q", c.Name, c.Answer, tt.want[i])
				}
			}
			ft := v.Cards[2]
			if !strings.Contains(ft.Since, tt.since) {
				t.Errorf("FaceTime since = %q, want it to hold %q", ft.Since, tt.since)
			}
			if ft.Sure != tt.sure {
				t.Errorf("FaceTime how sure = %q, want %q", ft.Sure, tt.sure)
			}
			out := string(render(t, in))
			for _, c := range v.Cards {
				if !strings.Contains(out, "<span>"+c.Answer+"</span>") {
					t.Errorf("rendered page lacks the answer %q", c.Answer)
				}
			}
		})
	}
}

// TestEvidence checks that the evidence table of the lab report says, per
// blocked endpoint, what failed, during which operation, how long it took
// and which control worked.
func TestEvidence(t *testing.T) {
	in := labInput(t)
	v := buildView(in)
	if got := len(v.Endpoints.Problems); got != 4 {
		t.Fatalf("%d endpoints with problems, want the 4 FaceTime relay ports", got)
	}
	for _, r := range v.Endpoints.Problems {
		if r.Verdict != analysis.VerdictBlocked || r.Method != analysis.MethodUDPTimeout {
			t.Errorf("%s: verdict %s %s, want blocked udp.timeout", r.Endpoint, r.Verdict, r.Method)
		}
		if r.Failure != "generic_timeout_error" || r.Operation != "read" {
			t.Errorf("%s: failure %q during %q, want generic_timeout_error during read", r.Endpoint, r.Failure, r.Operation)
		}
		if len(r.Timings) != 1 || !strings.Contains(r.Timings[0], "10.0 s") {
			t.Errorf("%s: timings %q, want one STUN exchange of 10.0 s", r.Endpoint, r.Timings)
		}
		if !strings.Contains(r.Control, "stun.cloudflare.com answered") {
			t.Errorf("%s: control %q, want the STUN control that answered", r.Endpoint, r.Control)
		}
	}
	if len(v.Endpoints.Working) == 0 {
		t.Error("no working endpoints listed")
	}
	for _, r := range v.Endpoints.Working {
		if len(r.Timings) == 0 {
			t.Errorf("%s (%s): no timings, want those of the latest run's observations", r.Endpoint, r.Transport)
		}
	}
}

// TestEmpty renders a report with no runs: a page that says so.
func TestEmpty(t *testing.T) {
	out := string(render(t, Input{GeneratedAt: time.Date(2025, 11, 4, 0, 0, 0, 0, time.UTC)}))
	for _, want := range []string{"Nothing to report", "Unknown network", "No runs in range."} {
		if !strings.Contains(out, want) {
			t.Errorf("empty report lacks %q", want)
		}
	}
	checkSafe(t, []byte(out))
}

// TestSize keeps reports small enough to mail or attach: sizes are logged
// (go test -v) and bounded.
func TestSize(t *testing.T) {
	tests := []struct {
		name  string
		in    func(t testing.TB) Input
		limit int
	}{
		{"one run", func(t testing.TB) Input { return singleInput(t, "identity_interception") }, 150 << 10},
		{"lab, 24 runs", labInput, 200 << 10},
		{"1000 runs", func(t testing.TB) Input {
			return historyInput(t, labStart, time.Hour, stretch{"clean", 600}, stretch{"call_udp_dropped", 400})
		}, 400 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(render(t, tt.in(t)))
			t.Logf("%s: %d bytes (%.1f KiB)", tt.name, n, float64(n)/1024)
			if n > tt.limit {
				t.Errorf("report is %d bytes, want at most %d", n, tt.limit)
			}
		})
	}
}

func TestNetworkLabel(t *testing.T) {
	tests := []struct {
		name string
		n    NetworkInfo
		want string
	}{
		{"known", NetworkInfo{ASN: 64500, NetworkName: "Example Telecom", CountryCode: "DE"}, "AS64500 · Example Telecom · DE"},
		{"unknown, as stored", NetworkInfo{CountryCode: "ZZ"}, "Unknown network"},
		{"zero value", NetworkInfo{}, "Unknown network"},
		{"number only", NetworkInfo{ASN: 3320, CountryCode: "ZZ"}, "AS3320"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildNetwork(tt.n).Label; got != tt.want {
				t.Errorf("label = %q, want %q", got, tt.want)
			}
		})
	}
}
