package export

import (
	"encoding/json"
	"fmt"
	"iter"
	"net"
	"net/netip"
	"net/url"
	"reflect"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// Run is one stored run and everything the exports say about it.
type Run struct {
	Run measurements.Run
	// Network is where the run was measured from; the zero value reads as
	// unknown (AS0, ZZ).
	Network measurements.Identity
	// Targets are the catalog targets the run measured, in catalog order;
	// exports list targets in this order.
	Targets []measurements.Target
	// Observations are the run's observations in the order stored.
	Observations []measurements.Observation
	// Report is the analysis of the run (analysis.Analyze).
	Report analysis.Report
	// AnalysisVersion is the Version of the analysis that made Report;
	// Pruned, whether Report is the summary kept when the run's
	// observations were deleted (see analysis.RunVerdicts).
	AnalysisVersion int
	Pruned          bool
}

// Verdicts is r's report as a history reads it, whole.
func (r *Run) Verdicts() analysis.RunVerdicts {
	return analysis.RunVerdicts{Run: r.Run, Report: r.Report, AnalysisVersion: r.AnalysisVersion, Pruned: r.Pruned}
}

// Runs yields the runs to export, oldest first. A non-nil error stops the
// export and is returned by the writer. Producing each run only when asked
// keeps one run in memory at a time.
type Runs = iter.Seq2[Run, error]

// Slice returns the Runs of a slice.
func Slice(runs []Run) Runs {
	return func(yield func(Run, error) bool) {
		for _, r := range runs {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// Scrub returns r with every IP address that r's observations did not
// measure replaced by "[scrubbed]" in its free text: observations'
// failures and certificate errors, and every string of the report (reasons,
// evidence, notes). The addresses r measured stay, since exports publish
// them anyway; any other address, the probe's own above all, cannot reach
// an export. r itself is not modified.
//
// Every writer of this package scrubs what it writes; a renderer that
// takes runs elsewhere (HTML) should call Scrub first.
func Scrub(r Run) (Run, error) {
	keep := measuredAddresses(r.Observations)
	r.Observations = scrubObservations(r.Observations, keep)
	rep, err := scrubReport(r.Report, keep)
	if err != nil {
		return Run{}, fmt.Errorf("export: scrubbing the report of run %d: %w", r.Run.ID, err)
	}
	r.Report = rep
	return r, nil
}

// measuredAddresses returns whether an address is one the observations
// measured: connected to, answered by DNS (late answers included), or
// queried as a resolver.
func measuredAddresses(obs []measurements.Observation) func(netip.Addr) bool {
	set := map[netip.Addr]bool{}
	add := func(s string) {
		if a, err := netip.ParseAddr(s); err == nil {
			set[a.Unmap().WithZone("")] = true
		}
	}
	addAnswers := func(answers []measurements.DNSAnswer) {
		for _, a := range answers {
			if a.Type == "A" || a.Type == "AAAA" {
				add(a.Data)
			}
		}
	}
	for i := range obs {
		o := &obs[i]
		add(o.Address)
		if d := o.DNS; d != nil {
			add(resolverHost(d.Resolver))
			addAnswers(d.Answers)
			for _, late := range d.Late {
				addAnswers(late.Answers)
			}
		}
	}
	return func(a netip.Addr) bool { return set[a.Unmap().WithZone("")] }
}

// resolverHost returns the host of a DNSDetails.Resolver: "192.0.2.53:53",
// a bare address, or a DoH URL.
func resolverHost(resolver string) string {
	if u, err := url.Parse(resolver); err == nil && u.Scheme != "" && u.Host != "" {
		return u.Hostname()
	}
	if host, _, err := net.SplitHostPort(resolver); err == nil {
		return host
	}
	return resolver
}

// scrubObservations returns obs with Failure and TLS.VerifyFailure
// scrubbed, copying only what changes.
func scrubObservations(obs []measurements.Observation, keep func(netip.Addr) bool) []measurements.Observation {
	out := obs
	copied := false
	for i := range obs {
		o := obs[i]
		failure := measurements.ScrubExcept(o.Failure, keep)
		verify := ""
		if o.TLS != nil {
			verify = measurements.ScrubExcept(o.TLS.VerifyFailure, keep)
		}
		if failure == o.Failure && (o.TLS == nil || verify == o.TLS.VerifyFailure) {
			continue
		}
		if !copied {
			out = append([]measurements.Observation(nil), obs...)
			copied = true
		}
		o.Failure = failure
		if o.TLS != nil && verify != o.TLS.VerifyFailure {
			tls := *o.TLS
			tls.VerifyFailure = verify
			o.TLS = &tls
		}
		out[i] = o
	}
	return out
}

// scrubReport returns a deep copy of rep with every string scrubbed. The
// copy goes through JSON, the report's own format, so that a field added
// to analysis.Report later is scrubbed without a change here.
func scrubReport(rep analysis.Report, keep func(netip.Addr) bool) (analysis.Report, error) {
	b, err := json.Marshal(rep)
	if err != nil {
		return analysis.Report{}, err
	}
	var out analysis.Report
	if err := json.Unmarshal(b, &out); err != nil {
		return analysis.Report{}, err
	}
	scrubStrings(reflect.ValueOf(&out).Elem(), func(s string) string { return measurements.ScrubExcept(s, keep) })
	return out, nil
}

// scrubStrings applies f to every string reachable from v, which must be
// settable, through exported struct fields, pointers, slices, arrays, maps
// and interfaces.
func scrubStrings(v reflect.Value, f func(string) string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(f(v.String()))
	case reflect.Pointer:
		if !v.IsNil() {
			scrubStrings(v.Elem(), f)
		}
	case reflect.Interface:
		// What an interface holds is not addressable: scrub a copy.
		if !v.IsNil() {
			c := reflect.New(v.Elem().Type()).Elem()
			c.Set(v.Elem())
			scrubStrings(c, f)
			v.Set(c)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				scrubStrings(v.Field(i), f)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			scrubStrings(v.Index(i), f)
		}
	case reflect.Map:
		// Map values are not addressable: scrub a copy and store it.
		for it := v.MapRange(); it.Next(); {
			val := reflect.New(it.Value().Type()).Elem()
			val.Set(it.Value())
			scrubStrings(val, f)
			v.SetMapIndex(it.Key(), val)
		}
	}
}
