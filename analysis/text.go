package analysis

import (
	"fmt"
	"io"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// textTime is how text reports print times: UTC, to the second.
const textTime = "2006-01-02 15:04:05 UTC"

// WriteText writes the report for people: a line per app and per service,
// then the evidence for every DNS name and endpoint that is not ok. The
// output depends only on the report (it is sorted already). Every string
// that comes from stored data goes through measurements.TerminalText: the
// network chose some of it.
func (r Report) WriteText(w io.Writer) error {
	t := measurements.TerminalText
	var b strings.Builder
	tries := "1 try"
	if r.Repeats != 1 {
		tries = fmt.Sprintf("%d tries", r.Repeats)
	}
	fmt.Fprintf(&b, "Run %d, started %s (%s", r.RunID, r.RunStarted.UTC().Format(textTime), t(orUnknown(r.RunStatus)))
	if r.Catalog != "" {
		fmt.Fprintf(&b, ", catalog %s", t(r.Catalog))
	}
	fmt.Fprintf(&b, ", %s of each measurement)\n", tries)
	fmt.Fprintf(&b, "Network: %s (%s)\n\n", t(r.Network.Status), t(r.Network.Reason))
	r.writeVerdicts(&b)
	var dnsLines []string
	for _, d := range r.DNS {
		if d.Verdict == VerdictOK {
			continue
		}
		dnsLines = append(dnsLines, fmt.Sprintf("  %s %s: %s%s: %s", t(d.Group), t(d.Host), t(d.Verdict), t(methodTag(d.Method, d.Suspected)), t(d.Evidence)))
	}
	if len(dnsLines) > 0 {
		b.WriteString("\nDNS:\n" + strings.Join(dnsLines, "\n") + "\n")
	}
	var epLines []string
	skipped := map[string]int{}
	for _, e := range r.Endpoints {
		switch e.Verdict {
		case VerdictOK:
			continue
		case VerdictSkipped:
			skipped[e.Skipped]++
			continue
		}
		epLines = append(epLines, fmt.Sprintf("  %s %s %s/%s: %s%s: %s", t(e.Group), t(e.Host), t(hostPort(e.Address, e.Port)), t(e.Transport),
			t(e.Verdict), t(methodTag(e.Method, e.Suspected)), t(e.Evidence)))
	}
	for _, reason := range rankedMethods(skipped) {
		epLines = append(epLines, fmt.Sprintf("  %d endpoints not measured: %s", skipped[reason], t(skipText(reason))))
	}
	if len(epLines) > 0 {
		b.WriteString("\nEndpoints:\n" + strings.Join(epLines, "\n") + "\n")
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes:\n")
		for _, n := range r.Notes {
			b.WriteString("  " + t(n) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteVerdicts writes the verdict lines WriteText starts with: one per
// app, then one per service with its methods, confidence and reason. A run
// ends with them, so that run and analyze say the same.
func (r Report) WriteVerdicts(w io.Writer) error {
	var b strings.Builder
	r.writeVerdicts(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

func (r Report) writeVerdicts(b *strings.Builder) {
	t := measurements.TerminalText
	for _, a := range r.Apps {
		fmt.Fprintf(b, "%s: %s (%s)\n", t(a.Title), t(a.Verdict), t(a.Reason))
	}
	for _, s := range r.Services {
		tag := "confidence " + s.Confidence.Level
		if len(s.Methods) > 0 {
			tag = strings.Join(s.Methods, ", ") + "; " + tag
		}
		fmt.Fprintf(b, "%s: %s [%s] (%s)\n", t(s.Title), t(s.Verdict), t(tag), t(s.Reason))
	}
}

func methodTag(method, suspected string) string {
	switch {
	case method != "":
		return " (" + method + ")"
	case suspected != "":
		return " (suspected " + suspected + ")"
	}
	return ""
}

func skipText(reason string) string {
	switch reason {
	case "no_ipv6_route":
		return "no IPv6 route on this network (not a failure)"
	case "bogon_address":
		return "a private or reserved address from DNS, not contacted"
	}
	return reason
}

func orUnknown(s string) string {
	if s == "" {
		return "status unknown"
	}
	return s
}

// WriteText writes the history for people: per app and service, the
// latest verdict, since when, how steady, and every change.
func (h HistoryReport) WriteText(w io.Writer) error {
	var b strings.Builder
	if h.Runs == 0 {
		b.WriteString("No runs to compare.\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	fmt.Fprintf(&b, "%d runs, from %s to %s\n", h.Runs, h.From.UTC().Format(textTime), h.To.UTC().Format(textTime))
	for _, s := range h.JudgedByNotes() {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	write := func(title string, s SeriesHistory) {
		fmt.Fprintf(&b, "\n%s: %s in the latest run; the same in %d of %d runs (steadiness %.2f)\n",
			title, s.Latest, s.Agreeing, len(s.Points), s.Steadiness)
		if s.FirstSeenBlocked != nil {
			fmt.Fprintf(&b, "  first seen blocked: %s\n", s.FirstSeenBlocked.UTC().Format(textTime))
		}
		if s.LastSeenOK != nil {
			fmt.Fprintf(&b, "  last seen %s: %s\n", s.okWord(), s.LastSeenOK.UTC().Format(textTime))
		}
		for _, c := range s.Changes {
			fmt.Fprintf(&b, "  %s (run %d): %s -> %s\n", c.Time.UTC().Format(textTime), c.RunID, c.From, c.To)
		}
	}
	for _, a := range h.Apps {
		write(a.Title, a.SeriesHistory)
	}
	for _, s := range h.Services {
		write(s.Title, s.SeriesHistory)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (s SeriesHistory) okWord() string {
	if s.kind == "app" {
		return AppWorking
	}
	return VerdictOK
}

// JudgedByNotes says which analyses judged the runs, one sentence each,
// when that is news: some runs were pruned, or judged by another version
// than this one. A history this analysis judged whole says nothing.
func (h HistoryReport) JudgedByNotes() []string {
	if len(h.JudgedBy) == 1 && h.JudgedBy[0].Current && h.JudgedBy[0].Pruned == 0 {
		return nil
	}
	var out []string
	for _, j := range h.JudgedBy {
		out = append(out, j.Sentence())
	}
	return out
}

// Sentence says which analysis judged j's runs, for people.
func (j JudgedBy) Sentence() string {
	var who string
	switch {
	case j.Current:
		who = fmt.Sprintf("this analysis (version %d)", j.AnalysisVersion)
	case j.AnalysisVersion == 0:
		who = "an analysis whose version was not recorded"
	default:
		who = fmt.Sprintf("analysis version %d, not this one", j.AnalysisVersion)
	}
	s := fmt.Sprintf("%s judged by %s", runCount(j.Runs), who)
	switch {
	case j.Pruned == 0:
	case j.Runs == 1:
		s += fmt.Sprintf(", pruned, started %s: its observations are gone, so its verdicts stay as that analysis gave them",
			j.From.UTC().Format(textTime))
	case j.Pruned == j.Runs:
		s += fmt.Sprintf(", all pruned, from %s to %s: their observations are gone, so their verdicts stay as that analysis gave them",
			j.From.UTC().Format(textTime), j.To.UTC().Format(textTime))
	default:
		s += fmt.Sprintf(", %d of them pruned", j.Pruned)
	}
	return s
}

func runCount(n int) string {
	if n == 1 {
		return "1 run"
	}
	return fmt.Sprintf("%d runs", n)
}
