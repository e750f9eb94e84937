package htmlreport

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// view is what the template shows: every string and number already
// decided, so the template only lays them out.
type view struct {
	Title         string
	HasRuns       bool
	Network       networkView
	Range         string
	Cards         []card
	Timeline      timeline
	Latest        latestView
	Services      []serviceRow
	Endpoints     evidence
	DNS           dnsEvidence
	Software      string
	MeasuredWith  string
	Generated     string
	FormatVersion int
}

type networkView struct {
	Label   string // "AS64500 · Example Telecom · DE", or "Unknown network"
	ASN     string
	Name    string
	Country string
}

// card is one headline answer.
type card struct {
	Question string
	Name     string
	Class    string
	Answer   string
	Since    string
	Details  []string
	Reason   string
	Sure     string // "High"
	SureBars int    // 0 to 3
	SureWhy  string
	Steady   string
}

type latestView struct {
	Run          string // "Run 42, started 3 Nov 2025, 10:00 UTC"
	Status       string
	Repeats      string
	Catalog      string
	NetClass     string
	NetWord      string
	NetExplained string
	NetReason    string
	Checks       []checkRow
	Notes        []string
}

type checkRow struct {
	Name, Value, Class string
}

type serviceRow struct {
	Title    string
	Class    string
	Verdict  string
	Methods  string
	Reason   string
	Sure     string
	Counts   string
	Evidence []string
	Targets  []targetRow
	// Path is the row of hops of a blocked service whose stop a trace
	// placed: the client, the hop where it stops (with its AS), the
	// destination. Hop addresses are never shown.
	Path []pathHop
}

// pathHop is one box of a path row.
type pathHop struct {
	Label, Sub, Class string
}

// pathRow draws where a service's packets stop.
func pathRow(p *analysis.PathPlace, service string) []pathHop {
	if p == nil {
		return nil
	}
	row := []pathHop{{Label: "Your device", Class: classOK}}
	switch {
	case p.Hop == 2:
		row = append(row, pathHop{Label: "hop 1", Sub: "passed", Class: classOK})
	case p.Hop > 2:
		row = append(row, pathHop{Label: fmt.Sprintf("hops 1\u2013%d", p.Hop-1), Sub: "passed", Class: classOK})
	}
	stop := pathHop{Label: fmt.Sprintf("hop %d", p.Hop), Class: classBlocked}
	switch {
	case p.Hop == 0:
		stop.Label = "this computer"
	case p.Private:
		stop.Sub = "your own network (a private address)"
	case p.ASN == 0:
		stop.Sub = "network unknown"
	default:
		stop.Sub = fmt.Sprintf("AS%d", p.ASN)
		if p.ASName != "" {
			stop.Sub += " " + p.ASName
		}
		if p.OwnNetwork {
			stop.Sub += ", the network you are on"
		}
	}
	stop.Sub += ": stops here"
	dest := "Apple"
	if service == measurements.GroupControl {
		dest = "the server"
	}
	last := pathHop{Label: dest, Sub: "not reached", Class: classNone}
	if p.Kind == analysis.PlaceReset {
		// A reset is injected past this hop: the connection reaches
		// Apple, the ClientHello naming it draws the reset.
		stop.Sub = strings.TrimSuffix(stop.Sub, ": stops here") + ": the reset is injected past it"
		last.Sub = "reached, the name's handshake cut"
	}
	return append(row, stop, last)
}

type targetRow struct {
	Host, Class, Verdict, Method, Reason string
}

// headline lists the three questions the page answers first: an app or a
// service, and how to ask about it.
var headline = []struct {
	service, app string
	question     string
	name         string
}{
	{service: measurements.GroupPush, question: "Can people on this network receive push notifications?", name: "Push notifications"},
	{app: analysis.AppIMessage, question: "Can people use iMessage?", name: "iMessage"},
	{app: analysis.AppFaceTime, question: "Can people place FaceTime calls?", name: "FaceTime"},
}

func buildView(in Input) view {
	v := view{
		Network:       buildNetwork(in.Network),
		Software:      orDash(in.SoftwareVersion),
		Generated:     exactTime(in.GeneratedAt),
		FormatVersion: analysis.FormatVersion,
		HasRuns:       len(in.Runs) > 0,
	}
	v.Title = "reachprobe report: " + v.Network.Label
	if !v.HasRuns {
		v.Range = "No runs in range."
		v.Timeline = buildTimeline(nil, analysis.HistoryReport{})
		return v
	}
	hist := in.History
	if hist.Runs == 0 {
		hist = analysis.History(in.Runs)
	}
	first, last := in.Runs[0], in.Runs[len(in.Runs)-1]
	if len(in.Runs) == 1 {
		v.Range = "1 run, on " + minute(last.Run.Started)
	} else {
		v.Range = fmt.Sprintf("%d runs, from %s to %s", len(in.Runs), minute(first.Run.Started), minute(last.Run.Started))
	}
	v.Title += ", " + day(last.Run.Started)
	v.MeasuredWith = measuredWith(in.Runs)
	rep := last.Report
	for _, h := range headline {
		if h.app != "" {
			v.Cards = append(v.Cards, appCard(h.question, h.name, h.app, rep, hist))
		} else {
			v.Cards = append(v.Cards, serviceCard(h.question, h.name, h.service, rep, hist))
		}
	}
	v.Timeline = buildTimeline(in.Runs, hist)
	v.Latest = buildLatest(last)
	for _, s := range rep.Services {
		v.Services = append(v.Services, buildServiceRow(s))
	}
	v.Endpoints = buildEvidence(rep.Endpoints, in.Evidence)
	v.DNS = buildDNSEvidence(rep.DNS)
	newScrubber(in).scrubView(&v)
	return v
}

func buildNetwork(n NetworkInfo) networkView {
	nv := networkView{Name: n.NetworkName, Country: n.CountryCode}
	// "ZZ" is how an unknown country is stored (measurements.UnknownCountry).
	var parts []string
	if n.ASN != 0 {
		nv.ASN = "AS" + strconv.FormatUint(uint64(n.ASN), 10)
		parts = append(parts, nv.ASN)
	}
	if n.NetworkName != "" {
		parts = append(parts, n.NetworkName)
	}
	if n.CountryCode != "" && n.CountryCode != measurements.UnknownCountry {
		parts = append(parts, n.CountryCode)
	} else {
		nv.Country = ""
	}
	nv.Label = strings.Join(parts, " \u00b7 ")
	if nv.Label == "" {
		nv.Label = "Unknown network"
	}
	return nv
}

// measuredWith lists the software versions that made the runs, in order of
// first appearance.
func measuredWith(runs []analysis.RunVerdicts) string {
	var vs []string
	for _, r := range runs {
		if sv := r.Run.SoftwareVersion; sv != "" && !slices.Contains(vs, sv) {
			vs = append(vs, sv)
		}
	}
	return strings.Join(vs, ", ")
}

func findService(rep analysis.Report, name string) (analysis.ServiceVerdict, bool) {
	for _, s := range rep.Services {
		if s.Service == name {
			return s, true
		}
	}
	return analysis.ServiceVerdict{}, false
}

func serviceSeries(h analysis.HistoryReport, name string) *analysis.SeriesHistory {
	for i := range h.Services {
		if h.Services[i].Service == name {
			return &h.Services[i].SeriesHistory
		}
	}
	return nil
}

func appSeries(h analysis.HistoryReport, name string) *analysis.SeriesHistory {
	for i := range h.Apps {
		if h.Apps[i].App == name {
			return &h.Apps[i].SeriesHistory
		}
	}
	return nil
}

func serviceCard(question, name, service string, rep analysis.Report, h analysis.HistoryReport) card {
	c := card{Question: question, Name: name}
	s, ok := findService(rep, service)
	if !ok {
		c.Class, c.Answer, c.Reason = classNone, "Not measured", "The latest run measured no host of this service."
		return c
	}
	c.Class = serviceClass(s.Verdict)
	c.Reason = capitalise(s.Reason) + "."
	c.Sure, c.SureBars = words(confidenceWords, s.Confidence.Level), confidenceBars(s.Confidence.Level)
	c.SureWhy = capitalise(confidenceWhy(s, rep.Network))
	fillSince(&c, serviceSeries(h, service), serviceClass)
	return c
}

// appCard answers for an app. Its "how sure" is that of the service that
// decided the verdict (the one blocked, down or undecided), or of the
// least certain service it needs when it works.
func appCard(question, name, app string, rep analysis.Report, h analysis.HistoryReport) card {
	c := card{Question: question, Name: name}
	var av *analysis.AppVerdict
	for i := range rep.Apps {
		if rep.Apps[i].App == app {
			av = &rep.Apps[i]
		}
	}
	if av == nil {
		c.Class, c.Answer, c.Reason = classNone, "Not measured", "The latest run has no verdict for this app."
		return c
	}
	c.Class = appClass(av.Verdict)
	c.Reason = capitalise(av.Reason) + "."
	var decider *analysis.ServiceVerdict
	for _, need := range av.Needs {
		s, ok := findService(rep, need)
		if !ok {
			decider = &analysis.ServiceVerdict{Title: need, Confidence: analysis.Confidence{Level: "low"}}
			break
		}
		if c.Class != classOK && serviceClass(s.Verdict) == c.Class {
			decider = &s
			break
		}
		if c.Class == classOK && (decider == nil || confidenceBars(s.Confidence.Level) < confidenceBars(decider.Confidence.Level)) {
			decider = &s
		}
	}
	if decider != nil {
		c.Sure, c.SureBars = words(confidenceWords, decider.Confidence.Level), confidenceBars(decider.Confidence.Level)
		which := map[string]string{
			classOK:          "its least certain service, " + decider.Title,
			classBlocked:     decider.Title + ", which is blocked",
			classDegraded:    decider.Title + ", which is partly blocked",
			classFailed:      decider.Title + ", which is down",
			classUnknown:     decider.Title + ", which could not be judged",
			classUnreachable: decider.Title + ", which could not be reached",
			classRestricted:  decider.Title + ", which this network closes for every destination",
		}[c.Class]
		c.SureWhy = "Rests on " + which + ": " + confidenceWhy(*decider, rep.Network)
	}
	if c.Class == classUnknown {
		c.Sure, c.SureBars = words(confidenceWords, "low"), 1
	}
	fillSince(&c, appSeries(h, app), appClass)
	return c
}

// confidenceWhy says what a service verdict rests on.
func confidenceWhy(s analysis.ServiceVerdict, n analysis.Network) string {
	c := s.Confidence
	var parts []string
	switch {
	case c.Repeats > 1:
		parts = append(parts, fmt.Sprintf("each measurement made %d times", c.Repeats))
	case c.Repeats == 1:
		parts = append(parts, "each measurement made once")
	}
	if n.Status != "" {
		parts = append(parts, "network "+words(networkWords, n.Status))
	}
	if c.Targets > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d hosts agree", c.TargetsAgreeing, c.Targets))
	}
	if c.Endpoints > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d endpoints worked, %d blocked", c.EndpointsOK, c.Endpoints, c.EndpointsBlocked))
	}
	if len(parts) == 0 {
		return "nothing to go on."
	}
	return strings.Join(parts, "; ") + "."
}

// fillSince says since when the answer holds, from the history's points.
// The current stretch starts at the last change of verdict; runs that
// could not tell are gaps in knowledge, not changes, so a stretch reaches
// across them. A stretch that covers every run in range may have started
// before it, and the card says so.
func fillSince(c *card, s *analysis.SeriesHistory, class func(string) string) {
	if s == nil || len(s.Points) == 0 {
		c.Answer = firstAnswer(c.Class, "")
		return
	}
	pts := s.Points
	latest := class(pts[len(pts)-1].Verdict)
	same := func(i int) bool {
		k := class(pts[i].Verdict)
		return k == latest || k == classUnknown || k == classNone
	}
	start := len(pts) - 1
	for start > 0 && same(start-1) {
		start--
	}
	for class(pts[start].Verdict) != latest {
		start++ // the stretch begins with its own verdict, not a gap
	}
	gaps := 0
	for _, p := range pts[start:] {
		if class(p.Verdict) != latest {
			gaps++
		}
	}
	gapNote := ""
	if gaps > 0 {
		gapNote = fmt.Sprintf(" (%s could not tell)", plural(gaps, "run", "runs"))
	}
	word := capitalise(classWords[latest])
	switch {
	case len(pts) == 1:
		c.Answer = firstAnswer(c.Class, "")
		c.Since = "Measured once, on " + minute(pts[0].Time) + "."
	case start == 0:
		c.Answer = firstAnswer(c.Class, "")
		c.Since = fmt.Sprintf("%s in every run since the first, on %s%s", word, minute(pts[0].Time), gapNote)
		if latest != classOK {
			c.Since += "; it may have started earlier"
		}
		c.Since += "."
	default:
		c.Answer = firstAnswer(c.Class, day(pts[start].Time))
		c.Since = fmt.Sprintf("%s since %s%s; before that: %s.", word, minute(pts[start].Time), gapNote,
			classWords[class(pts[start-1].Verdict)])
	}
	if fb := s.FirstSeenBlocked; fb != nil && !(latest == classBlocked && fb.Equal(pts[start].Time)) {
		c.Details = append(c.Details, "First seen blocked: "+minute(*fb)+".")
	}
	if ok := s.LastSeenOK; ok != nil && latest != classOK {
		c.Details = append(c.Details, "Last seen working: "+minute(*ok)+".")
	}
	if len(pts) > 1 {
		c.Steady = fmt.Sprintf("The same answer in %d of %d runs.", s.Agreeing, len(pts))
	}
}

// firstAnswer is a card's answer in a few words; since, when set, is the
// day the current verdict began.
func firstAnswer(class, since string) string {
	suffix := ""
	if since != "" {
		suffix = " since " + since
	}
	switch class {
	case classOK:
		return "Yes, working"
	case classDegraded:
		return "Partly blocked" + suffix
	case classBlocked:
		return "Blocked" + suffix
	case classFailed:
		return "Down, not blocked"
	case classUnknown:
		return "Cannot tell"
	case classUnreachable:
		return "Unreachable: a block or an outage" + suffix
	case classRestricted:
		return "Closed by this network" + suffix
	}
	return "Not measured"
}

func buildLatest(rv analysis.RunVerdicts) latestView {
	rep := rv.Report
	lv := latestView{
		Run:          fmt.Sprintf("Run %d, started %s", rv.Run.ID, minute(rv.Run.Started)),
		Status:       orDash(rep.RunStatus),
		Repeats:      plural(rep.Repeats, "try", "tries") + " of each measurement",
		Catalog:      orDash(rep.Catalog),
		NetClass:     networkClass(rep.Network.Status),
		NetWord:      capitalise(words(networkWords, rep.Network.Status)),
		NetExplained: words(networkExplained, rep.Network.Status),
		NetReason:    capitalise(rep.Network.Reason),
		Notes:        rep.Notes,
	}
	ch := rep.Network.Checks
	for _, c := range []struct{ name, value string }{
		{"TCP to control hosts", ch.TCP}, {"TLS to control hosts", ch.TLS}, {"QUIC", ch.QUIC},
		{"UDP (STUN)", ch.UDP}, {"Encrypted DNS (DoH)", ch.DoH}, {"IPv6", ch.IPv6},
	} {
		cls := classUnknown
		switch c.value {
		case "ok":
			cls = classOK
		case "failed":
			cls = classFailed
		case "not_measured", "no_route", "":
			cls = classNone
		}
		lv.Checks = append(lv.Checks, checkRow{Name: c.name, Value: words(checkWords, c.value), Class: cls})
	}
	if ch.FlakySeries > 0 {
		lv.Checks = append(lv.Checks, checkRow{Name: "Measurements that both worked and failed", Value: strconv.Itoa(ch.FlakySeries), Class: classUnknown})
	}
	return lv
}

func buildServiceRow(s analysis.ServiceVerdict) serviceRow {
	c := s.Confidence
	r := serviceRow{
		Title:    s.Title,
		Class:    serviceClass(s.Verdict),
		Verdict:  s.Verdict,
		Methods:  strings.Join(s.Methods, ", "),
		Reason:   capitalise(s.Reason),
		Sure:     words(confidenceWords, c.Level),
		Counts:   fmt.Sprintf("%d of %d hosts agree; endpoints: %d measured, %d ok, %d blocked", c.TargetsAgreeing, c.Targets, c.Endpoints, c.EndpointsOK, c.EndpointsBlocked),
		Evidence: s.Evidence,
	}
	if s.Verdict == analysis.VerdictBlocked || s.Verdict == analysis.VerdictDegraded {
		r.Path = pathRow(s.Path, s.Service)
	}
	for _, t := range s.Targets {
		r.Targets = append(r.Targets, targetRow{Host: t.Host, Class: serviceClass(t.Verdict), Verdict: t.Verdict, Method: t.Method, Reason: t.Reason})
	}
	return r
}

func orDash(s string) string {
	if s == "" {
		return "\u2014"
	}
	return s
}
