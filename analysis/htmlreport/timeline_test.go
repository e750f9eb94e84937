package htmlreport

import (
	"strconv"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
)

func TestTimelineScale(t *testing.T) {
	at := time.Date(2025, 11, 3, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		in        func(t testing.TB) Input
		marks     int // per row
		binned    bool
		flagged   bool // some mark of the FaceTime row carries the "some blocked" flag
		minTicks  int
		maxTicks  int
		wantLabel string // one tick label
	}{
		{"one run", func(t testing.TB) Input { return singleInput(t, "clean") }, 1, false, false, 1, 1, "3 Nov 2025, 10:00 UTC"},
		{"two runs at the same time", func(t testing.TB) Input {
			return historyInput(t, at, 0, stretch{"clean", 1}, stretch{"call_udp_dropped", 1})
		}, 1, true, false, 1, 1, "3 Nov 2025, 10:00 UTC"},
		{"24 runs, every 3 hours", labInput, 24, false, false, 3, maxTicks, "2 Nov"},
		{"1000 runs, hourly", func(t testing.TB) Input {
			// Every tenth run blocked: a minority in each group of runs.
			var plan []stretch
			for range 100 {
				plan = append(plan, stretch{"clean", 9}, stretch{"call_udp_dropped", 1})
			}
			return historyInput(t, labStart, time.Hour, plan...)
		}, maxSlots, true, true, 3, maxTicks, "1 Dec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in(t)
			tl := buildTimeline(in.Runs, analysis.History(in.Runs))
			if len(tl.Rows) != 7 {
				t.Fatalf("%d rows, want 7 (push, iMessage, FaceTime, identity, calls, QUIC, network)", len(tl.Rows))
			}
			flagged := false
			for _, r := range tl.Rows {
				if len(r.Marks) != tt.marks {
					t.Errorf("row %q has %d marks, want %d", r.Label, len(r.Marks), tt.marks)
				}
				for _, m := range r.Marks {
					x, _ := strconv.ParseFloat(m.X, 64)
					w, _ := strconv.ParseFloat(m.W, 64)
					if x < 0 || w <= 0 || x+w > chartWidth+0.01 {
						t.Errorf("row %q: mark at %v width %v lies outside the chart", r.Label, x, w)
					}
					if r.Label == "FaceTime" && m.Flag {
						flagged = true
					}
				}
			}
			if flagged != tt.flagged {
				t.Errorf("FaceTime row flagged = %v, want %v", flagged, tt.flagged)
			}
			if binned := tl.Scale != "Each mark is one run, placed at the time it started."; binned != tt.binned {
				t.Errorf("scale note %q: binned = %v, want %v", tl.Scale, binned, tt.binned)
			}
			if n := len(tl.Ticks); n < tt.minTicks || n > tt.maxTicks {
				t.Errorf("%d ticks, want %d to %d", n, tt.minTicks, tt.maxTicks)
			}
			found := false
			for _, tk := range tl.Ticks {
				found = found || tk.Label == tt.wantLabel
				left, _ := strconv.ParseFloat(tk.Left, 64)
				if left < 0 || left > 100 {
					t.Errorf("tick %q at %v%%, outside the chart", tk.Label, left)
				}
			}
			if !found {
				t.Errorf("no tick labelled %q in %+v", tt.wantLabel, tl.Ticks)
			}
		})
	}
}

// TestTimelineOrder checks that each run of a regular series gets its own
// mark, in time order, whatever its verdict.
func TestTimelineOrder(t *testing.T) {
	in := labInput(t)
	tl := buildTimeline(in.Runs, in.History)
	var facetime timelineRow
	for _, r := range tl.Rows {
		if r.Label == "FaceTime" {
			facetime = r
		}
	}
	want := make([]string, 0, 24)
	for range 10 {
		want = append(want, classOK)
	}
	want = append(want, classUnknown)
	for range 5 {
		want = append(want, classOK)
	}
	for range 8 {
		want = append(want, classBlocked)
	}
	if len(facetime.Marks) != len(want) {
		t.Fatalf("FaceTime row has %d marks, want %d", len(facetime.Marks), len(want))
	}
	prev := -1.0
	for i, m := range facetime.Marks {
		if m.Class != want[i] {
			t.Errorf("mark %d is %s, want %s", i, m.Class, want[i])
		}
		x, _ := strconv.ParseFloat(m.X, 64)
		if x <= prev {
			t.Errorf("mark %d at %v is not right of the one before (%v)", i, x, prev)
		}
		prev = x
	}
	if got, want := facetime.Summary, "working 15, cannot tell 1, blocked 8 (of 24 runs)"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
}

func TestMajority(t *testing.T) {
	tests := []struct {
		name    string
		classes []string
		want    string
	}{
		{"one", []string{classBlocked}, classBlocked},
		{"most common", []string{classOK, classBlocked, classOK}, classOK},
		{"tie goes to the latest", []string{classOK, classBlocked}, classBlocked},
		{"tie goes to the latest, the other way", []string{classBlocked, classOK}, classOK},
		{"tie among three", []string{classUnknown, classOK, classBlocked, classOK, classBlocked, classUnknown}, classUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ps []point
			for _, c := range tt.classes {
				ps = append(ps, point{class: c})
			}
			if got := majority(ps); got != tt.want {
				t.Errorf("majority(%v) = %s, want %s", tt.classes, got, tt.want)
			}
		})
	}
}

func TestRoughly(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{30 * time.Second, "30 seconds"},
		{10*time.Hour + 25*time.Minute, "10 hours"},
		{10*time.Hour + 35*time.Minute, "11 hours"},
		{90 * time.Minute, "90 minutes"},
		{3 * 24 * time.Hour, "3 days"},
	}
	for _, tt := range tests {
		if got := roughly(tt.d); got != tt.want {
			t.Errorf("roughly(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
