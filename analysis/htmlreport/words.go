package htmlreport

import (
	"strconv"
	"strings"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// Plain words for people, and the classes that colour them. A class is a
// CSS class and an icon; every verdict of every kind maps to one.
const (
	classOK       = "ok"
	classDegraded = "degraded"
	classBlocked  = "blocked"
	classFailed   = "failed"  // broken, not blocked: an outage
	classUnknown  = "unknown" // inconclusive
	// classUnreachable: silent in every pass while control hosts answer,
	// a block or an outage; classRestricted: closed by the network's own
	// policy for every destination.
	classUnreachable = "unreachable"
	classRestricted  = "restricted"
	classNone        = "none" // not measured, or no run
)

// classes lists every class, least severe first: the order of the legend.
var classes = []string{classOK, classDegraded, classRestricted, classUnknown, classFailed, classUnreachable, classBlocked, classNone}

// serviceClass maps a service, target, DNS or endpoint verdict.
func serviceClass(verdict string) string {
	switch verdict {
	case analysis.VerdictOK:
		return classOK
	case analysis.VerdictDegraded:
		return classDegraded
	case analysis.VerdictBlocked:
		return classBlocked
	case analysis.VerdictFailed:
		return classFailed
	case analysis.VerdictInconclusive:
		return classUnknown
	case analysis.VerdictUnreachable:
		return classUnreachable
	case analysis.VerdictRestricted:
		return classRestricted
	}
	return classNone
}

// appClass maps an app verdict.
func appClass(verdict string) string {
	switch verdict {
	case analysis.AppWorking:
		return classOK
	case analysis.AppDegraded:
		return classDegraded
	case analysis.AppBlocked:
		return classBlocked
	case analysis.AppDown:
		return classFailed
	case analysis.AppInconclusive:
		return classUnknown
	case analysis.AppUnreachable:
		return classUnreachable
	case analysis.AppRestricted:
		return classRestricted
	}
	return classNone
}

// networkClass maps a network status: a network that lets nothing through
// is drawn like an outage, one that is unstable or partial like an
// undecided verdict.
func networkClass(status string) string {
	switch status {
	case analysis.NetworkOK:
		return classOK
	case analysis.NetworkUnstable, analysis.NetworkPartial, analysis.NetworkCaptivePortal:
		return classUnknown
	case analysis.NetworkNoConnectivity:
		return classFailed
	}
	return classNone
}

// classWords names a class in the legend and in tooltips.
var classWords = map[string]string{
	classOK:          "working",
	classDegraded:    "partly blocked",
	classBlocked:     "blocked",
	classFailed:      "down (outage, not blocking)",
	classUnknown:     "cannot tell",
	classUnreachable: "unreachable (a block or an outage)",
	classRestricted:  "closed by this network's policy",
	classNone:        "not measured",
}

// networkWords names a network status.
var networkWords = map[string]string{
	analysis.NetworkOK:             "steady",
	analysis.NetworkUnstable:       "unstable (packet loss)",
	analysis.NetworkPartial:        "partly working",
	analysis.NetworkNoConnectivity: "no connectivity",
	analysis.NetworkCaptivePortal:  "captive portal (log in first)",
	analysis.NetworkUnknown:        "unknown",
}

// networkExplained says what a network status means for the verdicts.
var networkExplained = map[string]string{
	analysis.NetworkOK:             "The control hosts answered and results were steady, so failures of Apple's servers can be judged.",
	analysis.NetworkUnstable:       "Results varied between tries, as with packet loss; a failure was called blocked only with more evidence.",
	analysis.NetworkPartial:        "Some reference paths failed; verdicts that needed them are \u201ccannot tell\u201d.",
	analysis.NetworkNoConnectivity: "Nothing could be reached, not even the control hosts: this is an outage, and nothing is called blocked.",
	analysis.NetworkCaptivePortal:  "A captive portal answered instead of the internet: log in to this network first, then measure again. Nothing behind the portal is judged.",
	analysis.NetworkUnknown:        "There were no observations to judge the network by.",
}

// checkWords says what a NetworkChecks value means.
var checkWords = map[string]string{
	"ok":           "works",
	"flaky":        "works only sometimes",
	"failed":       "failed",
	"not_measured": "not measured",
	"unverified":   "handshakes completed, chains did not verify",
	"no_route":     "no route (not a failure)",
}

func words(m map[string]string, key string) string {
	if w, ok := m[key]; ok {
		return w
	}
	if key == "" {
		return "unknown"
	}
	return key
}

// shortService names a group in table cells.
var shortService = map[string]string{
	measurements.GroupPush:     "Push",
	measurements.GroupIdentity: "Identity",
	measurements.GroupCall:     "Calls",
	measurements.GroupQUIC:     "QUIC",
	measurements.GroupControl:  "Control",
}

// transportWords says what an endpoint's transport measured.
var transportWords = map[string]string{
	"tcp":  "TCP connect",
	"tls":  "TCP + TLS",
	"quic": "QUIC",
	"udp":  "UDP (STUN)",
}

// skipWords says why endpoints were not measured.
var skipWords = map[string]string{
	measurements.SkipNoIPv6Route: "this network has no IPv6 route, which is not a failure",
	measurements.SkipBogon:       "DNS gave a private or reserved address, which the probe does not contact",
}

// confidenceWords and confidenceBars grade "how sure".
var confidenceWords = map[string]string{"high": "High", "medium": "Medium", "low": "Low"}

func confidenceBars(level string) int {
	switch level {
	case "high":
		return 3
	case "medium":
		return 2
	case "low":
		return 1
	}
	return 0
}

// Time formats. Every time is shown in UTC and says so.
const (
	dayFormat      = "2 Jan 2006"
	dayShortFormat = "2 Jan"
	minuteFormat   = "2 Jan 2006, 15:04 UTC"
	secondFormat   = "2006-01-02 15:04:05 UTC"
)

func day(t time.Time) string       { return t.UTC().Format(dayFormat) }
func minute(t time.Time) string    { return t.UTC().Format(minuteFormat) }
func exactTime(t time.Time) string { return t.UTC().Format(secondFormat) }

// duration formats a step's duration for people: "0.4 ms", "40 ms",
// "10.0 s".
func duration(d time.Duration) string {
	switch {
	case d < 0:
		return "?"
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	case d < time.Second:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + " ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
}

// plural returns "1 run" or "3 runs".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// capitalise upper-cases the first letter of an ASCII sentence.
func capitalise(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
