package export

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// decodedExport is WriteJSON's document as a script reads it.
type decodedExport struct {
	Format        string `json:"format"`
	FormatVersion int    `json:"format_version"`
	Runs          []struct {
		Run struct {
			ID      int64      `json:"id"`
			Started time.Time  `json:"started"`
			Ended   *time.Time `json:"ended"`
			Status  string     `json:"status"`
		} `json:"run"`
		Network      measurements.Identity `json:"network"`
		Analysis     analysis.Report       `json:"analysis"`
		Observations []map[string]any      `json:"observations"`
	} `json:"runs"`
	History *analysis.HistoryReport `json:"history"`
}

func TestWriteJSON(t *testing.T) {
	runs := fixture(t)
	tests := []struct {
		name string
		runs []Run
	}{
		{"several runs", runs},
		{"one run", runs[:1]},
		{"no run", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteJSON(&buf, Slice(tt.runs)); err != nil {
				t.Fatal(err)
			}
			checkNoProbeAddress(t, "JSON", buf.Bytes())
			var got decodedExport
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("the document does not decode: %v", err)
			}
			if got.Format != JSONFormat || got.FormatVersion != JSONFormatVersion {
				t.Errorf("format %q version %d, want %q %d", got.Format, got.FormatVersion, JSONFormat, JSONFormatVersion)
			}
			if len(got.Runs) != len(tt.runs) {
				t.Fatalf("%d runs, want %d", len(got.Runs), len(tt.runs))
			}
			if got.History == nil || got.History.Runs != len(tt.runs) {
				t.Errorf("history = %+v, want one covering %d runs", got.History, len(tt.runs))
			}
			for i, r := range tt.runs {
				g := got.Runs[i]
				if g.Run.ID != r.Run.ID || g.Run.Status != r.Run.Status || g.Network != r.Network ||
					!g.Run.Started.Equal(r.Run.Started) || g.Run.Ended == nil || !g.Run.Ended.Equal(r.Run.Ended) {
					t.Errorf("run %d: got id %d status %q network %+v", r.Run.ID, g.Run.ID, g.Run.Status, g.Network)
				}
				if len(g.Observations) != len(r.Observations) {
					t.Errorf("run %d: %d observations, want %d", r.Run.ID, len(g.Observations), len(r.Observations))
				}
				scrubbed, err := Scrub(r)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(g.Analysis, scrubbed.Report) {
					t.Errorf("run %d: the analysis does not decode to the (scrubbed) report", r.Run.ID)
				}
				for j, o := range g.Observations {
					if o["step"] != string(r.Observations[j].Step) || o["id"] != float64(r.Observations[j].ID) {
						t.Errorf("run %d observation %d = %v", r.Run.ID, j, o)
						break
					}
					src := &r.Observations[j]
					details := map[string]bool{"dns": src.DNS != nil, "tcp": src.TCP != nil, "tls": src.TLS != nil, "stun": src.STUN != nil}
					for key, want := range details {
						if _, got := o[key]; got != want {
							t.Errorf("run %d observation %d: %q details present %v, want %v", r.Run.ID, j, key, got, want)
						}
					}
				}
			}
		})
	}
}
