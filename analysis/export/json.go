package export

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// JSONFormat and JSONFormatVersion identify WriteJSON's document. The
// version changes when a key changes meaning or goes away; new keys do not
// change it.
const (
	JSONFormat        = "reachprobe-export"
	JSONFormatVersion = 1
)

// jsonRun is one run of the JSON document.
type jsonRun struct {
	Run          jsonRunInfo           `json:"run"`
	Network      measurements.Identity `json:"network"`
	Analysis     analysis.Report       `json:"analysis"`
	Observations []jsonObservation     `json:"observations"`
}

// jsonRunInfo is a stored run.
type jsonRunInfo struct {
	ID              int64      `json:"id"`
	Started         time.Time  `json:"started"`
	Ended           *time.Time `json:"ended"` // null while running
	Status          string     `json:"status"`
	SoftwareVersion string     `json:"software_version"`
	CatalogName     string     `json:"catalog_name"`
	CatalogDigest   string     `json:"catalog_digest"`
}

// jsonObservation is one observation; exactly one of the detail keys is
// present, matching step. Byte strings (certificates, raw DNS responses,
// STUN transaction IDs) are base64.
type jsonObservation struct {
	ID        int64             `json:"id"`
	Step      measurements.Step `json:"step"`
	Group     string            `json:"group"`
	Target    string            `json:"target"`
	Host      string            `json:"host"`
	Address   string            `json:"address"`
	Port      int               `json:"port"`
	Transport string            `json:"transport"`
	Repeat    int               `json:"repeat"`
	Control   bool              `json:"control"`
	// Confirmation and PortCheck: a step of the run's confirmation pass,
	// and a connect to a control host on a suspect port.
	Confirmation bool                      `json:"confirmation,omitempty"`
	PortCheck    bool                      `json:"port_check,omitempty"`
	Started      *time.Time                `json:"started"`
	DurationMS   float64                   `json:"duration_ms"`
	Failure      string                    `json:"failure"`
	Operation    string                    `json:"operation"`
	Skipped      string                    `json:"skipped"`
	DNS          *measurements.DNSDetails  `json:"dns,omitempty"`
	TCP          *measurements.TCPDetails  `json:"tcp,omitempty"`
	TLS          *measurements.TLSDetails  `json:"tls,omitempty"`
	STUN         *measurements.STUNDetails `json:"stun,omitempty"`
	// Arrival has no address but the target's; Trace has none at all
	// (traceView drops every hop's).
	Arrival *measurements.ArrivalDetails `json:"arrival,omitempty"`
	Trace   *exportTrace                 `json:"trace,omitempty"`
}

// WriteJSON writes one JSON document: the format's name and version, every
// run with its network, its analysis (analysis.Report, documented in
// analysis/FORMAT.md) and its observations, then the history of the
// runs' verdicts (analysis.HistoryReport). Runs are streamed: the history
// comes last because it is known only once every run has been read. Free
// text is scrubbed (Scrub).
func WriteJSON(w io.Writer, runs Runs) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "{\n  \"format\": %q,\n  \"format_version\": %d,\n  \"runs\": [", JSONFormat, JSONFormatVersion)
	// The history keeps each run's points, never its report.
	var history analysis.HistoryBuilder
	first := true
	for r, err := range runs {
		if err != nil {
			return err
		}
		r, err = Scrub(r)
		if err != nil {
			return err
		}
		b, err := json.MarshalIndent(newJSONRun(&r), "    ", "  ")
		if err != nil {
			return fmt.Errorf("encoding run %d: %w", r.Run.ID, err)
		}
		if !first {
			bw.WriteString(",")
		}
		first = false
		bw.WriteString("\n    ")
		bw.Write(b)
		history.Add(r.Verdicts())
	}
	if !first {
		bw.WriteString("\n  ")
	}
	bw.WriteString("],\n  \"history\": ")
	if err := history.History().WriteJSON(bw, "  ", "  "); err != nil {
		return fmt.Errorf("encoding the history: %w", err)
	}
	bw.WriteString("\n}\n")
	return bw.Flush()
}

func newJSONRun(r *Run) jsonRun {
	out := jsonRun{
		Run: jsonRunInfo{
			ID: r.Run.ID, Started: r.Run.Started, Ended: timeOrNil(r.Run.Ended), Status: r.Run.Status,
			SoftwareVersion: r.Run.SoftwareVersion, CatalogName: r.Run.CatalogName, CatalogDigest: r.Run.CatalogDigest,
		},
		Network:      r.Network.Normalized(),
		Analysis:     r.Report,
		Observations: make([]jsonObservation, len(r.Observations)),
	}
	for i := range r.Observations {
		o := &r.Observations[i]
		out.Observations[i] = jsonObservation{
			ID: o.ID, Step: o.Step, Group: o.Group, Target: o.Target, Host: o.Host, Address: o.Address,
			Port: o.Port, Transport: o.Transport, Repeat: o.Repeat, Control: o.Control, Confirmation: o.Confirmation, PortCheck: o.PortCheck, Started: timeOrNil(o.Started),
			DurationMS: float64(o.Duration) / float64(time.Millisecond), Failure: o.Failure, Operation: o.Operation,
			Skipped: o.Skipped, DNS: o.DNS, TCP: o.TCP, TLS: o.TLS, STUN: o.STUN,
			Arrival: o.Arrival, Trace: traceView(o.Trace),
		}
	}
	return out
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
