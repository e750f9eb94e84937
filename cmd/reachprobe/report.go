package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/analysis/export"
	"github.com/reachprobe/reachprobe/analysis/htmlreport"
	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/netid"
)

// reportFileMode is the mode of a report written with -o: reports are
// made to be shared, unlike the database they come from.
const reportFileMode os.FileMode = 0o644

// Report formats.
const (
	formatHTML = "html"
	formatCSV  = "csv"
	formatJSON = "json"
	formatOONI = "ooni"
)

func cmdReport(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "report", "[RUN | --since DURATION] [--format html|csv|json|ooni] [-o FILE] [flags]",
		"Writes stored runs in a format to read or to process: html, one self-contained page for people;\n"+
			"csv, one row per observation for a spreadsheet; json, the analyses and observations for scripts;\n"+
			"ooni, one OONI measurement per target and run (JSON Lines) for OONI's tools. RUN is a run number\n"+
			"or \"latest\" (the default); --since takes every finished run started within DURATION. No export\n"+
			"contains this machine's IP address.")
	db := fs.String("db", "", "database `FILE` (default $XDG_DATA_HOME/reachprobe/reachprobe.db)")
	format := choice(fs, "format", formatHTML, []string{formatHTML, formatCSV, formatJSON, formatOONI}, "`FORMAT`: html, csv, json or ooni")
	var since ageFlag
	fs.Var(&since, "since", "report every finished run started within `DURATION` (7d, 168h)")
	out := fs.String("o", "-", "write to `FILE`, replaced whole once complete; - is standard output")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *out == "" {
		return usageError{errors.New("report: -o needs a file name, or - for standard output")}
	}
	store, err := openRuns(ctx, env, "report", *db)
	if err != nil {
		return err
	}
	defer store.Close()

	runs, err := selectRuns(ctx, env, store, "report", pos, time.Duration(since))
	if err != nil {
		return err
	}

	l := &runLoader{store: store, targets: map[string][]measurements.Target{}}
	if *format == formatHTML && len(runs) > 1 {
		// The page shows the latest run's evidence and the others'
		// verdicts: those kept need no judging again.
		if l.kept, err = store.RunVerdicts(ctx, analysis.Version, runs[0].Started); err != nil {
			return storeError(store, err)
		}
		l.latest = runs[len(runs)-1].ID
	}
	write := func(w io.Writer) error {
		source := l.runs(ctx, runs)
		switch *format {
		case formatCSV:
			return export.WriteCSV(w, source)
		case formatJSON:
			return export.WriteJSON(w, source)
		case formatOONI:
			return export.WriteOONI(w, source, export.OONIOptions{LookupASN: lookupASN})
		}
		return writeHTML(w, source, time.Now().UTC())
	}
	if *out == "-" {
		bw := bufio.NewWriter(env.stdout)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	if err := writeFileAtomically(*out, write); err != nil {
		return err
	}
	if env.stderrIsTerminal {
		fmt.Fprintf(env.stderr, "wrote %s: %s report of %s\n", *out, *format, pluralRuns(len(runs)))
	}
	return nil
}

func pluralRuns(n int) string {
	if n == 1 {
		return "1 run"
	}
	return fmt.Sprintf("%d runs", n)
}

// lookupASN names the network of a DNS answer for the OONI export.
func lookupASN(a netip.Addr) (uint, string) {
	asn, name, _ := netid.Lookup(a)
	return asn, name
}

// writeHTML renders the runs as one page: their verdicts and history, and
// the evidence of the latest. Everything is scrubbed first (export.Scrub).
func writeHTML(w io.Writer, runs export.Runs, now time.Time) error {
	in := htmlreport.Input{SoftwareVersion: version, GeneratedAt: now}
	for r, err := range runs {
		if err != nil {
			return err
		}
		r, err = export.Scrub(r)
		if err != nil {
			return err
		}
		// Only the latest run's whole report is kept (it is the last).
		if n := len(in.Runs); n > 0 {
			in.Runs[n-1] = in.Runs[n-1].Slim()
		}
		in.Runs = append(in.Runs, r.Verdicts())
		in.Evidence = r.Observations
		id := r.Network.Normalized()
		in.Network = htmlreport.NetworkInfo{ASN: id.ProbeASN, NetworkName: id.ProbeNetworkName, CountryCode: id.ProbeCC}
	}
	return htmlreport.Render(w, in)
}

// writeFileAtomically writes path through write: into a new file in the
// same directory, renamed over path once complete, so a reader never sees
// half a report and a failure leaves an older one whole.
func writeFileAtomically(path string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<16)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: writing %s: %w", path, err)
	}
	if err := f.Chmod(reportFileMode); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// runLoader reads stored runs for the exports one at a time, so that a
// report of a thousand runs holds one run's observations in memory.
type runLoader struct {
	store *measurements.Store
	// targets caches parsed catalogs by digest: runs share a few.
	targets map[string][]measurements.Target
	// kept, when set, are verdicts kept under this analysis by run id
	// (see verdicts.go): a run in it other than latest is loaded as them
	// alone, without observations, for the HTML report's timeline.
	kept   map[int64][]byte
	latest int64
}

// runs yields each of list loaded and judged; the first error ends it.
func (l *runLoader) runs(ctx context.Context, list []measurements.Run) export.Runs {
	return func(yield func(export.Run, error) bool) {
		for _, run := range list {
			r, err := l.load(ctx, run)
			if !yield(r, err) || err != nil {
				return
			}
		}
	}
}

// load reads run's observations, catalog and network and judges it. A run
// whose observations were pruned keeps the report stored in its summary.
func (l *runLoader) load(ctx context.Context, run measurements.Run) (export.Run, error) {
	id, err := l.store.RunNetwork(ctx, run.ID)
	if err != nil {
		return export.Run{}, storeError(l.store, err)
	}
	targets, err := l.catalogTargets(ctx, run)
	if err != nil {
		return export.Run{}, err
	}
	r := export.Run{Run: run, Network: id, Targets: targets}
	if doc, ok := l.kept[run.ID]; ok && run.ID != l.latest {
		delete(l.kept, run.ID) // each run is loaded once: its document can go
		rv, err := decodeVerdicts(run, doc)
		if err != nil {
			return export.Run{}, storeError(l.store, err)
		}
		r.Report, r.AnalysisVersion, r.Pruned = rv.Report, rv.AnalysisVersion, rv.Pruned
		return r, nil
	}
	if run.Observations == 0 {
		rv, err := judgeRun(ctx, l.store, run)
		r.Report, r.AnalysisVersion, r.Pruned = rv.Report, rv.AnalysisVersion, rv.Pruned
		return r, err
	}
	if r.Observations, err = l.store.Observations(ctx, run.ID); err != nil {
		return export.Run{}, storeError(l.store, err)
	}
	r.Report = analysis.Analyze(analysis.Input{Run: run, Targets: targets, Observations: r.Observations})
	r.AnalysisVersion = analysis.Version
	return r, nil
}

func (l *runLoader) catalogTargets(ctx context.Context, run measurements.Run) ([]measurements.Target, error) {
	if t, ok := l.targets[run.CatalogDigest]; ok {
		return t, nil
	}
	t, err := runTargets(ctx, l.store, run)
	if err != nil {
		return nil, err
	}
	l.targets[run.CatalogDigest] = t
	return t, nil
}
