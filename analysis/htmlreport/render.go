package htmlreport

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// Input is everything a report shows. Render reads nothing else.
type Input struct {
	// Runs are the runs in range with their reports, oldest first; the
	// last one is the headline and the one the evidence belongs to.
	Runs []analysis.RunVerdicts
	// History follows verdicts across Runs (analysis.History(Runs)). When
	// it is empty and Runs is not, Render computes it.
	History analysis.HistoryReport
	// Evidence is every observation of the latest run, for the evidence
	// tables (timings, certificates). Observations of another run are an
	// error.
	Evidence []measurements.Observation
	// Network identifies the network measured. Its zero value reads
	// "unknown network".
	Network NetworkInfo
	// SoftwareVersion is the version of reachprobe writing the report.
	SoftwareVersion string
	// GeneratedAt is when the report was made, shown in its footer; the
	// caller passes it so that Render never reads the clock.
	GeneratedAt time.Time
}

// NetworkInfo names the network a probe measured, never the probe's
// address.
type NetworkInfo struct {
	ASN         uint   // autonomous system number, 0 when unknown
	NetworkName string // the AS's name, e.g. "Example Telecom"
	CountryCode string // ISO 3166-1 alpha-2, e.g. "DE"
}

// Errors of bad input.
var (
	// ErrRunOrder: Input.Runs are not oldest first, so the headline would
	// not be the latest run.
	ErrRunOrder = errors.New("htmlreport: runs must be sorted oldest first")
	// ErrEvidenceRun: an evidence observation belongs to a run other than
	// the headline run.
	ErrEvidenceRun = errors.New("htmlreport: evidence must be the latest run's observations")
)

//go:embed report.html.tmpl
var templateFS embed.FS

// page is parsed once; templates are safe for concurrent execution.
var page = template.Must(template.ParseFS(templateFS, "report.html.tmpl"))

// Render writes the report of in to w as one HTML document. It returns an
// error for inconsistent input (ErrRunOrder, ErrEvidenceRun) or when w
// fails; nothing is written in the first case.
func Render(w io.Writer, in Input) error {
	if err := validate(in); err != nil {
		return err
	}
	v := buildView(in)
	var b bytes.Buffer
	if err := page.Execute(&b, v); err != nil {
		return fmt.Errorf("htmlreport: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func validate(in Input) error {
	for i := 1; i < len(in.Runs); i++ {
		if in.Runs[i].Run.Started.Before(in.Runs[i-1].Run.Started) {
			return fmt.Errorf("%w: run %d (%s) comes after run %d (%s)", ErrRunOrder,
				in.Runs[i].Run.ID, in.Runs[i].Run.Started.UTC().Format(time.RFC3339),
				in.Runs[i-1].Run.ID, in.Runs[i-1].Run.Started.UTC().Format(time.RFC3339))
		}
	}
	if len(in.Evidence) == 0 {
		return nil
	}
	if len(in.Runs) == 0 {
		return fmt.Errorf("%w: there are observations but no run", ErrEvidenceRun)
	}
	latest := in.Runs[len(in.Runs)-1].Run.ID
	for i := range in.Evidence {
		if id := in.Evidence[i].RunID; id != latest {
			return fmt.Errorf("%w: observation %d is from run %d, the latest run is %d", ErrEvidenceRun, in.Evidence[i].ID, id, latest)
		}
	}
	return nil
}
