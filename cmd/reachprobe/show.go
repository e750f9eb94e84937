package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/catalog"
)

func cmdList(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "list", "[flags]", "Lists the stored runs, newest first; --json prints them for scripts.")
	db := fs.String("db", "", "database `FILE` (default $XDG_DATA_HOME/reachprobe/reachprobe.db)")
	asJSON := fs.Bool("json", false, "print the runs as a JSON array, newest first")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	store, err := openRuns(ctx, env, "list", *db)
	if err != nil {
		return err
	}
	defer store.Close()
	runs, err := store.Runs(ctx)
	if err != nil {
		return storeError(store, err)
	}
	if *asJSON {
		return writeRunsJSON(env.stdout, runs)
	}
	if len(runs) == 0 {
		fmt.Fprintln(env.stdout, noRunsText(env, store.Path()))
		return nil
	}
	// A table of a year of hourly runs: the cells are made once and
	// padded to their column's width by hand, which text/tabwriter and a
	// Fprintf a row would take twice as long to do.
	rows := make([][]string, 0, len(runs)+1)
	rows = append(rows, []string{"RUN", "STARTED (UTC)", "DURATION", "STATUS", "OBSERVATIONS", "CATALOG", "VERSION"})
	for _, r := range runs {
		rows = append(rows, []string{strconv.FormatInt(r.ID, 10), r.Started.Format(time.DateTime), runDuration(r), text(r.Status),
			strconv.Itoa(r.Observations), text(r.CatalogName), text(r.SoftwareVersion)})
	}
	return writeTable(env.stdout, rows)
}

// writeTable writes rows as columns two spaces apart, each as wide as its
// widest cell (counted in runes), as text/tabwriter would.
func writeTable(w io.Writer, rows [][]string) error {
	var widths []int
	for _, row := range rows {
		for len(widths) < len(row) {
			widths = append(widths, 0)
		}
		for i, cell := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	bw := bufio.NewWriter(w)
	for _, row := range rows {
		for i, cell := range row {
			bw.WriteString(cell)
			if i < len(row)-1 {
				bw.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell)+2))
			}
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// listedRun is one run as "list --json" prints it: the columns of the
// text table, with exact times and the catalog's digest. The README
// documents the fields; add to them, never rename one.
type listedRun struct {
	ID      int64     `json:"id"`
	Started time.Time `json:"started"`
	// Ended and DurationNS are absent while the run has not ended.
	Ended           *time.Time `json:"ended,omitempty"`
	DurationNS      *int64     `json:"duration_ns,omitempty"`
	Status          string     `json:"status"`
	Observations    int        `json:"observations"`
	CatalogName     string     `json:"catalog_name"`
	CatalogDigest   string     `json:"catalog_digest"`
	SoftwareVersion string     `json:"software_version"`
}

// writeRunsJSON prints runs as one JSON array ("[]" when there are none,
// so a script needs no special case for an empty database).
func writeRunsJSON(w io.Writer, runs []measurements.Run) error {
	out := make([]listedRun, 0, len(runs))
	for _, r := range runs {
		lr := listedRun{ID: r.ID, Started: r.Started.UTC(), Status: r.Status, Observations: r.Observations,
			CatalogName: r.CatalogName, CatalogDigest: r.CatalogDigest, SoftwareVersion: r.SoftwareVersion}
		if !r.Ended.IsZero() {
			ended := r.Ended.UTC()
			d := int64(r.Ended.Sub(r.Started))
			lr.Ended, lr.DurationNS = &ended, &d
		}
		out = append(out, lr)
	}
	// One run a line: as readable as indented JSON for a list, and a
	// year of runs is written in a third of the time.
	bw := bufio.NewWriter(w)
	bw.WriteString("[")
	for i := range out {
		b, err := json.Marshal(&out[i])
		if err != nil {
			return err
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n  ")
		bw.Write(b)
	}
	if len(out) > 0 {
		bw.WriteByte('\n')
	}
	bw.WriteString("]\n")
	return bw.Flush()
}

// text makes a stored string safe for a terminal (measurements.TerminalText):
// list and show print names, failures and answers the network chose.
func text(s string) string { return measurements.TerminalText(s) }

func runDuration(r measurements.Run) string {
	if r.Ended.IsZero() {
		return "-"
	}
	return r.Ended.Sub(r.Started).Round(100 * time.Millisecond).String()
}

func cmdShow(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "show", "RUN [flags]", "Shows one run and every observation it stored. RUN is a run number or \"latest\".")
	db := fs.String("db", "", "database `FILE` (default $XDG_DATA_HOME/reachprobe/reachprobe.db)")
	asJSON := fs.Bool("json", false, "print the run and its observations as JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("show: give one RUN (a number or \"latest\")")}
	}
	store, err := openRuns(ctx, env, "show", *db)
	if err != nil {
		return err
	}
	defer store.Close()
	run, err := lookupRun(ctx, env, store, "show", pos[0])
	if err != nil {
		return err
	}
	obs, err := store.Observations(ctx, run.ID)
	if err != nil {
		return storeError(store, err)
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Run          measurements.Run
			Observations []measurements.Observation
		}{run, obs})
	}
	fmt.Fprintf(env.stdout, "run %d  %s  started %s UTC  took %s  catalog %s  reachprobe %s\n\n",
		run.ID, text(run.Status), run.Started.Format(time.DateTime), runDuration(run), text(run.CatalogName), text(run.SoftwareVersion))
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tTARGET\tSTEP\tDETAIL\tENDPOINT\tTIME\tRESULT")
	for _, o := range obs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", text(string(o.Group)), text(o.Target), text(string(o.Step)), text(stepDetail(&o)), text(endpoint(&o)),
			o.Duration.Round(time.Millisecond), text(result(&o)))
	}
	return tw.Flush()
}

// lookupRun finds RUN (a number or "latest") for cmd.
func lookupRun(ctx context.Context, env *environ, store *measurements.Store, cmd, arg string) (measurements.Run, error) {
	var id int64
	if arg != "latest" {
		n, err := strconv.ParseInt(arg, 10, 64)
		if err != nil || n < 1 {
			return measurements.Run{}, usageError{fmt.Errorf("%s: RUN %q is not a run number (or \"latest\")", cmd, arg)}
		}
		id = n
	}
	latest, err := store.LatestRun(ctx)
	if errors.Is(err, measurements.ErrNoRun) {
		return latest, errNoRuns(env, cmd, store.Path())
	}
	if err != nil {
		return latest, storeError(store, err)
	}
	if id == 0 {
		return latest, nil
	}
	r, err := store.Run(ctx, id)
	if errors.Is(err, measurements.ErrNoRun) {
		return r, usageError{fmt.Errorf("%s: no run %d in the database %s (\"reachprobe list\" shows them)", cmd, id, store.Path())}
	}
	if err != nil {
		return r, storeError(store, err)
	}
	return r, nil
}

func stepDetail(o *measurements.Observation) string {
	switch {
	case o.DNS != nil:
		d := o.DNS.Engine + " " + o.DNS.QueryType
		if o.DNS.Resolver != "" {
			d += " @" + o.DNS.Resolver
		}
		return d
	case o.TLS != nil:
		d := "sni=" + o.TLS.ServerName
		if o.Control {
			d += " (control)"
		}
		return d
	}
	return ""
}

func endpoint(o *measurements.Observation) string {
	if o.Address == "" {
		return o.Host
	}
	if strings.Contains(o.Address, ":") {
		return fmt.Sprintf("[%s]:%d", o.Address, o.Port)
	}
	return fmt.Sprintf("%s:%d", o.Address, o.Port)
}

func result(o *measurements.Observation) string {
	switch {
	case o.Skipped != "":
		return "skipped: " + o.Skipped
	case o.Failure != "":
		return o.Operation + ": " + o.Failure
	case o.DNS != nil:
		var addrs []string
		for _, a := range o.DNS.Answers {
			if a.Type == "A" || a.Type == "AAAA" {
				addrs = append(addrs, a.Data)
			}
		}
		s := "ok " + strings.Join(addrs, " ")
		if len(o.DNS.Late) > 0 {
			s += fmt.Sprintf(" (+%d late responses)", len(o.DNS.Late))
		}
		if o.DNS.ListenCut != "" {
			s += fmt.Sprintf(" (listened %s: %s)", o.DNS.Listened.Round(time.Millisecond), listenCutWords(o.DNS.ListenCut))
		}
		return s
	case o.TLS != nil:
		return fmt.Sprintf("ok %s %s alpn=%s verified=%v", o.TLS.TLSVersion, o.TLS.CipherSuite, o.TLS.NegotiatedProtocol, o.TLS.Verified)
	case o.STUN != nil:
		return fmt.Sprintf("ok STUN %s after %d attempt(s)", o.STUN.Class, o.STUN.Attempts)
	case o.Arrival != nil:
		var kinds []string
		for _, k := range o.Arrival.Kinds {
			kinds = append(kinds, k.Kind+"="+k.Evidence)
		}
		return strings.Join(kinds, " ")
	case o.Trace != nil:
		switch t := o.Trace; {
		case t.Skipped != "":
			return "trace skipped: " + t.Skipped
		case t.IsReset() && t.Stop.Known:
			return fmt.Sprintf("reset trace: the name's ClientHello is reset from TTL %d (server at hop %d), past hop %d (AS%d), after %d probes", t.ResetTTL, t.Stop.DestinationHop, t.Stop.Hop, t.Stop.ASN, t.Probes)
		case t.IsReset():
			return fmt.Sprintf("reset trace: place unknown after %d probes (%s)", t.Probes, t.Stop.Reason)
		case t.Stop.Known:
			return fmt.Sprintf("trace%s vs %s %s: stops at hop %d (AS%d) after %d probes", tracePayload(t), t.Control.Network, t.ControlTarget, t.Stop.Hop, t.Stop.ASN, t.Probes)
		default:
			return fmt.Sprintf("trace%s vs %s %s: place unknown after %d probes (%s)", tracePayload(t), t.Control.Network, t.ControlTarget, t.Probes, t.Stop.Reason)
		}
	}
	return "ok"
}

// tracePayload names what a trace's probes carried, " of quic_v1 (control
// quic_reserved_version)", or "" for zeros.
func tracePayload(t *measurements.TraceDetails) string {
	switch {
	case t.Test.Payload == "":
		return ""
	case t.Control.Payload != "" && t.Control.Payload != t.Test.Payload:
		return fmt.Sprintf(" of %s (control %s)", t.Test.Payload, t.Control.Payload)
	}
	return " of " + t.Test.Payload
}

func cmdTargets(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "targets", "[flags]", "Prints the catalog in use: the embedded default, or the --targets file.")
	targets := fs.String("targets", "", "catalog `FILE` replacing the embedded default catalog")
	raw := fs.Bool("raw", false, "print the catalog file itself, in the catalog format")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cat, err := loadCatalog(*targets)
	if err != nil {
		return err
	}
	if *raw {
		_, err := env.stdout.Write(cat.Text)
		return err
	}
	fmt.Fprintf(env.stdout, "catalog %s (sha256 %s), %d targets\n\n", cat.Name, cat.Digest[:16], len(cat.Targets))
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tTARGET\tHOST\tPORTS\tTRANSPORTS\tSERVER NAME\tALPN\tSTUN ANSWERS")
	for _, t := range cat.Targets {
		ports := make([]string, len(t.Ports))
		for i, p := range t.Ports {
			ports[i] = strconv.Itoa(p)
		}
		stun := "-"
		if t.Has("udp") {
			stun = strconv.FormatBool(t.STUNAnswers)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Group, t.Name, t.Host, strings.Join(ports, ","),
			strings.Join(t.Transports, ","), t.ServerName, strings.Join(t.ALPN, ","), stun)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if *targets == "" {
		fmt.Fprintf(env.stdout, "\nThe SNI swap uses %s unless a target names its own control_server_name.\n", catalog.DefaultControlServerName)
	}
	return nil
}

func cmdVersion(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "version", "", "Prints reachprobe's version.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, err := fmt.Fprintf(env.stdout, "reachprobe %s\n", version)
	return err
}

// parseInterspersed parses flags that may come before or after the
// positional arguments ("show 3 --json" as well as "show --json 3") and
// returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// listenCutWords says why a plain lookup stopped listening early, for
// show.
func listenCutWords(cut string) string {
	switch cut {
	case measurements.ListenCutControlAgrees:
		return "the first answer agrees with encrypted DNS"
	case measurements.ListenCutHandshakeVerified:
		return "a handshake verified at the first answer"
	}
	return "cut short"
}
