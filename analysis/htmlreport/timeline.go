package htmlreport

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// The timeline is one SVG row per app or service, one mark per run at the
// run's time. The SVG stretches to the page's width (its viewBox is
// chartWidth units wide, preserveAspectRatio none) while labels stay HTML
// text, so it reads the same on a phone and on paper.
//
// Runs are put into slots: with n runs and up to maxSlots slots, slot i is
// centred on From + i·(To−From)/(slots−1), so runs made at a regular
// interval get one slot each. When there are more runs than slots, a slot
// holds several and its mark shows the most common verdict, with a flag on
// top when any of them was blocked.
const (
	// maxSlots is how many marks a row holds: about 8 px each on a
	// 800 px wide chart, wide enough to see and to point at.
	maxSlots = 96
	// chartWidth is the width of the SVG's coordinate system.
	chartWidth = 1000.0
	// maxMarkWidth keeps a lone mark from becoming a bar that suggests a
	// duration: a run is a moment.
	maxMarkWidth = 28.0
	// rowHeight is the height of a row in SVG units and CSS pixels; the top
	// flagHeight units hold the "some blocked" flag.
	rowHeight  = 28.0
	flagHeight = 3.0
	// maxTicks bounds the time labels of the axis: six short dates fit a
	// desktop chart, and a phone shows every other one.
	maxTicks = 7
)

// markHeights encode the verdict by height as well as colour: the worse,
// the taller.
var markHeights = map[string]float64{
	classOK:          8,
	classDegraded:    16,
	classUnknown:     16,
	classFailed:      16,
	classRestricted:  16,
	classUnreachable: 20,
	classBlocked:     24,
	classNone:        4,
}

type timeline struct {
	Rows  []timelineRow
	Ticks []tick
	Grid  []string // x of each tick in SVG units
	Scale string   // what a mark stands for
	// JudgedBy says which analysis judged the runs (analysis.JudgedBy):
	// pruned runs keep the verdicts of the analysis that judged them.
	JudgedBy []string
	Legend   []legendItem
	Empty    bool
	Network  bool // a network row is drawn
}

type timelineRow struct {
	Label   string
	Summary string
	Marks   []mark
}

type mark struct {
	X, Y, W, H string // SVG units
	Class      string
	Title      string
	Flag       bool
}

type tick struct {
	Left  string // percent of the chart's width
	Label string
	Align string // "start", "mid" or "end": where the label hangs
	Minor bool   // hidden on narrow screens
}

type legendItem struct {
	Class, Word string
	Y, H        string
}

// point is one run's verdict in a row.
type point struct {
	run   int64
	t     time.Time
	class string
	word  string
	extra string // methods, for the tooltip
}

func buildTimeline(runs []analysis.RunVerdicts, h analysis.HistoryReport) timeline {
	tl := timeline{}
	for _, c := range classes {
		hgt := markHeights[c]
		tl.Legend = append(tl.Legend, legendItem{Class: c, Word: classWords[c], Y: num(rowHeight - hgt), H: num(hgt)})
	}
	if len(runs) == 0 {
		tl.Empty = true
		return tl
	}
	for _, s := range h.JudgedByNotes() {
		tl.JudgedBy = append(tl.JudgedBy, capitalise(s)+".")
	}
	sc := newScale(runs[0].Run.Started, runs[len(runs)-1].Run.Started, len(runs))
	type rowSpec struct {
		label string
		pts   []point
	}
	var specs []rowSpec
	addSeries := func(title string, s *analysis.SeriesHistory, class func(string) string) {
		if s == nil || len(s.Points) == 0 {
			return
		}
		var pts []point
		for _, p := range s.Points {
			c := class(p.Verdict)
			pts = append(pts, point{run: p.RunID, t: p.Time, class: c, word: classWords[c], extra: strings.Join(p.Methods, ", ")})
		}
		specs = append(specs, rowSpec{title, pts})
	}
	for _, r := range []struct{ app, service, label string }{
		{service: measurements.GroupPush, label: "Push notifications"},
		{app: analysis.AppIMessage, label: "iMessage"},
		{app: analysis.AppFaceTime, label: "FaceTime"},
		{service: measurements.GroupIdentity, label: "Identity (IDS, Apple ID)"},
		{service: measurements.GroupCall, label: "FaceTime calls (UDP)"},
		{service: measurements.GroupQUIC, label: "QUIC (Private Relay)"},
	} {
		if r.app != "" {
			addSeries(r.label, appSeries(h, r.app), appClass)
		} else {
			addSeries(r.label, serviceSeries(h, r.service), serviceClass)
		}
	}
	var net []point
	for _, r := range runs {
		st := r.Report.Network.Status
		net = append(net, point{run: r.Run.ID, t: r.Run.Started, class: networkClass(st), word: words(networkWords, st)})
	}
	specs = append(specs, rowSpec{"Network (control hosts)", net})
	tl.Network = true
	for _, s := range specs {
		tl.Rows = append(tl.Rows, sc.row(s.label, s.pts))
	}
	tl.Ticks, tl.Grid = sc.ticks()
	perSlot := make([]int, sc.slots)
	crowded := false
	for _, r := range runs {
		i := sc.slotOf(r.Run.Started)
		perSlot[i]++
		crowded = crowded || perSlot[i] > 1
	}
	const most = "a mark shows their most common answer, and a thin mark above it says at least one of them was blocked."
	switch {
	case !crowded:
		tl.Scale = "Each mark is one run, placed at the time it started."
	case sc.slots == 1:
		tl.Scale = fmt.Sprintf("All %d runs started at the same time: %s", len(runs), most)
	default:
		tl.Scale = fmt.Sprintf("%d runs do not fit one mark each: each mark groups the runs of about %s; %s",
			len(runs), roughly(sc.step), most)
	}
	return tl
}

// scale maps times to slots and SVG units.
type scale struct {
	from   time.Time
	slots  int
	step   time.Duration // between slot centres
	domain [2]time.Time  // the times at x = 0 and x = chartWidth
}

func newScale(from, to time.Time, runs int) scale {
	s := scale{from: from, slots: min(runs, maxSlots)}
	span := to.Sub(from)
	if span <= 0 || s.slots < 2 {
		s.slots = 1
		s.step = time.Hour
	} else {
		s.step = span / time.Duration(s.slots-1)
		if s.step <= 0 {
			s.step = 1
		}
	}
	half := s.step / 2
	s.domain = [2]time.Time{from.Add(-half), from.Add(time.Duration(s.slots-1)*s.step + half)}
	return s
}

func (s scale) slotOf(t time.Time) int {
	if s.slots == 1 {
		return 0
	}
	i := int((t.Sub(s.from) + s.step/2) / s.step)
	return max(0, min(s.slots-1, i))
}

// x returns t's position in SVG units.
func (s scale) x(t time.Time) float64 {
	span := s.domain[1].Sub(s.domain[0])
	return float64(t.Sub(s.domain[0])) / float64(span) * chartWidth
}

func (s scale) row(label string, pts []point) timelineRow {
	bySlot := make([][]point, s.slots)
	for _, p := range pts {
		i := s.slotOf(p.t)
		bySlot[i] = append(bySlot[i], p)
	}
	slotW := chartWidth / float64(s.slots)
	w := min(slotW*0.75, maxMarkWidth)
	if slotW < 4 {
		w = slotW
	}
	r := timelineRow{Label: label, Summary: summary(pts)}
	for i, ps := range bySlot {
		if len(ps) == 0 {
			continue
		}
		c := majority(ps)
		hgt := markHeights[c]
		m := mark{
			X: num(float64(i)*slotW + (slotW-w)/2), W: num(w),
			Y: num(rowHeight - hgt), H: num(hgt),
			Class: c, Title: markTitle(ps),
		}
		if c != classBlocked {
			for _, p := range ps {
				m.Flag = m.Flag || p.class == classBlocked
			}
		}
		r.Marks = append(r.Marks, m)
	}
	return r
}

// majority returns the most common class of ps; a tie goes to the class
// of the latest run among the tied ones.
func majority(ps []point) string {
	n := map[string]int{}
	top := 0
	for _, p := range ps {
		n[p.class]++
		top = max(top, n[p.class])
	}
	for i := len(ps) - 1; i >= 0; i-- {
		if n[ps[i].class] == top {
			return ps[i].class
		}
	}
	return classNone
}

func markTitle(ps []point) string {
	if len(ps) == 1 {
		p := ps[0]
		t := fmt.Sprintf("Run %d, %s: %s", p.run, minute(p.t), p.word)
		if p.extra != "" {
			t += " (" + p.extra + ")"
		}
		return t
	}
	return fmt.Sprintf("%d runs, %s to %s: %s", len(ps), minute(ps[0].t), minute(ps[len(ps)-1].t), countWords(ps))
}

// summary counts a row's runs by answer: "working in 16, blocked in 8 of
// 24 runs".
func summary(pts []point) string {
	return countWords(pts) + " (of " + plural(len(pts), "run", "runs") + ")"
}

func countWords(pts []point) string {
	n := map[string]int{}
	var order []string
	for _, c := range classes {
		for _, p := range pts {
			if p.class != c {
				continue
			}
			if n[p.word] == 0 {
				order = append(order, p.word)
			}
			n[p.word]++
		}
	}
	parts := make([]string, 0, len(order))
	for _, w := range order {
		parts = append(parts, fmt.Sprintf("%s %d", w, n[w]))
	}
	return strings.Join(parts, ", ")
}

// tickSteps are the spacings the axis may use, shortest first.
var tickSteps = []time.Duration{
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour, 28 * 24 * time.Hour,
	91 * 24 * time.Hour, 182 * 24 * time.Hour, 364 * 24 * time.Hour,
}

// ticks returns the axis labels and the grid lines, at round UTC times.
func (s scale) ticks() ([]tick, []string) {
	if s.slots == 1 {
		return []tick{{Left: "50", Label: minute(s.from), Align: "mid"}}, nil
	}
	lo, hi := s.domain[0], s.domain[1]
	span := hi.Sub(lo)
	step := tickSteps[len(tickSteps)-1]
	for _, st := range tickSteps {
		if span/st < maxTicks {
			step = st
			break
		}
	}
	dayFmt := dayShortFormat
	if lo.UTC().Year() != hi.UTC().Year() {
		dayFmt = dayFormat
	}
	var ts []tick
	var grid []string
	first := lo.UTC().Truncate(step)
	if first.Before(lo) {
		first = first.Add(step)
	}
	for t := first; !t.After(hi); t = t.Add(step) {
		// Midnight ticks name the day, others the time of day; the
		// first tick names both, so the axis never starts without a date.
		label := t.Format(dayFmt)
		if h, m, _ := t.Clock(); h != 0 || m != 0 {
			label = t.Format("15:04")
			if len(ts) == 0 {
				label = t.Format(dayFmt + " 15:04")
			}
		}
		x := s.x(t)
		align := "mid"
		switch {
		case x < 0.06*chartWidth:
			align = "start"
		case x > 0.94*chartWidth:
			align = "end"
		}
		ts = append(ts, tick{Left: num(x / chartWidth * 100), Label: label, Align: align, Minor: len(ts)%2 == 1})
		grid = append(grid, num(x))
	}
	return ts, grid
}

// roughly says a duration in round words: "about 2 hours".
func roughly(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return plural(int((d+12*time.Hour)/(24*time.Hour)), "day", "days")
	case d >= 2*time.Hour:
		return plural(int((d+30*time.Minute)/time.Hour), "hour", "hours")
	case d >= 2*time.Minute:
		return plural(int((d+30*time.Second)/time.Minute), "minute", "minutes")
	}
	return plural(max(1, int(d/time.Second)), "second", "seconds")
}

// num formats an SVG coordinate: two decimals at most, no trailing zeros.
func num(f float64) string {
	v := math.Round(f*100) / 100
	if v == 0 {
		v = 0 // no "-0"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
