package htmlreport

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// The evidence tables: for each endpoint and DNS name the analysis judged,
// its verdict, what failed and how, what the control showed, and, from the
// latest run's observations, the timing of every try and the certificates
// received.

// maxTriesShown caps the tries listed per path; the rest are counted.
const maxTriesShown = 5

// maxNamesShown caps the DNS answers and certificate names listed per cell.
const maxNamesShown = 6

type evidence struct {
	Problems []endpointRow // not ok and measured
	Working  []endpointRow
	Skipped  []string
}

type endpointRow struct {
	Service   string
	Host      string
	Endpoint  string // "17.57.146.20:5223"
	Transport string
	Class     string
	Verdict   string
	Method    string
	Failure   string
	Operation string
	Tries     string
	Timings   []string
	Control   string
	Certs     []certView
	Evidence  string
}

type dnsEvidence struct {
	Problems []dnsRow
	Working  []dnsRow
}

type dnsRow struct {
	Service   string
	Host      string
	Class     string
	Verdict   string
	Method    string
	Failure   string
	Resolver  string
	Encrypted string
	Forged    string
	Queries   int
	Evidence  string
}

// pathKey names one endpoint as analysis does: target, address, port and
// what was measured there.
type pathKey struct {
	target, address string
	port            int
	kind            string
}

// obsIndex holds the latest run's observations by endpoint.
type obsIndex map[pathKey][]*measurements.Observation

func indexObservations(obs []measurements.Observation) obsIndex {
	ix := obsIndex{}
	for i := range obs {
		o := &obs[i]
		if o.Step == measurements.StepDNS || o.Skipped != "" {
			continue
		}
		a, err := netip.ParseAddr(o.Address)
		if err != nil {
			continue
		}
		addr := a.Unmap().String()
		kinds := []string{string(o.Step)}
		if o.Step == measurements.StepTCP {
			// A connect belongs to a "tcp" endpoint, or to the "tls"
			// endpoint that handshakes over it: the catalog, which this
			// package does not read, says which; the lookup asks for both.
			kinds = []string{"tcp", "tls"}
		}
		for _, k := range kinds {
			key := pathKey{o.Target, addr, o.Port, k}
			ix[key] = append(ix[key], o)
		}
	}
	for _, list := range ix {
		slices.SortStableFunc(list, func(a, b *measurements.Observation) int {
			return cmp.Or(cmp.Compare(a.Repeat, b.Repeat), cmp.Compare(a.ID, b.ID))
		})
	}
	return ix
}

func buildEvidence(eps []analysis.EndpointVerdict, obs []measurements.Observation) evidence {
	ix := indexObservations(obs)
	var ev evidence
	skipped := map[string]int{}
	var skipOrder []string
	for _, e := range eps {
		if e.Verdict == analysis.VerdictSkipped {
			if skipped[e.Skipped] == 0 {
				skipOrder = append(skipOrder, e.Skipped)
			}
			skipped[e.Skipped]++
			continue
		}
		problem := e.Verdict != analysis.VerdictOK
		row := endpointRow{
			Service:   words(shortService, e.Group),
			Host:      e.Host,
			Endpoint:  hostPort(e.Address, e.Port),
			Transport: words(transportWords, e.Transport),
			Class:     serviceClass(e.Verdict),
			Verdict:   e.Verdict,
			Method:    methodText(e.Method, e.Suspected),
			Failure:   e.Failure,
			Operation: e.Operation,
			Tries:     fmt.Sprintf("%d of %d worked", e.Successes, e.Attempts),
			Control:   capitalise(e.Control),
			Evidence:  capitalise(e.Evidence),
		}
		if e.Peers > 0 {
			row.Evidence += fmt.Sprintf(" (%s of the same service failed the same way.)", plural(e.Peers, "other endpoint", "other endpoints"))
		}
		key := pathKey{e.Target, unmapped(e.Address), e.Port, e.Transport}
		row.Timings = timings(ix[key])
		row.Certs = certificates(ix[key], problem)
		if problem {
			ev.Problems = append(ev.Problems, row)
		} else {
			ev.Working = append(ev.Working, row)
		}
	}
	for _, reason := range skipOrder {
		ev.Skipped = append(ev.Skipped, fmt.Sprintf("%s not measured: %s.", plural(skipped[reason], "endpoint", "endpoints"), words(skipWords, reason)))
	}
	return ev
}

func methodText(method, suspected string) string {
	switch {
	case method != "":
		return method
	case suspected != "":
		return "suspected " + suspected
	}
	return ""
}

func unmapped(addr string) string {
	if a, err := netip.ParseAddr(addr); err == nil {
		return a.Unmap().String()
	}
	return addr
}

func hostPort(addr string, port int) string {
	if a, err := netip.ParseAddr(addr); err == nil && port > 0 && port < 1<<16 {
		return netip.AddrPortFrom(a.Unmap(), uint16(port)).String()
	}
	return addr + ":" + strconv.Itoa(port)
}

// timings lists, per path of an endpoint (connect, handshake with the
// target name, handshake with the control name), how long each try took
// and how it failed.
func timings(obs []*measurements.Observation) []string {
	type path struct {
		label string
		tries []string
	}
	var paths []*path
	byLabel := map[string]*path{}
	for _, o := range obs {
		label := pathLabel(o)
		p := byLabel[label]
		if p == nil {
			p = &path{label: label}
			byLabel[label] = p
			paths = append(paths, p)
		}
		t := duration(o.Duration)
		switch {
		case o.Failure != "" && o.Control && answeredWithChain(o):
			// The SNI swap's expected outcome: the server answered the
			// control name with its own certificate.
			t += " (server answered; " + o.Failure + ")"
		case o.Failure != "":
			t += " (" + o.Failure + ")"
		}
		p.tries = append(p.tries, t)
	}
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		tries := p.tries
		more := ""
		if len(tries) > maxTriesShown {
			more = fmt.Sprintf(", and %d more", len(tries)-maxTriesShown)
			tries = tries[:maxTriesShown]
		}
		out = append(out, p.label+": "+strings.Join(tries, ", ")+more)
	}
	return out
}

// answeredWithChain reports whether a handshake failed only because the
// chain it received did not verify: the server answered.
func answeredWithChain(o *measurements.Observation) bool {
	switch o.Failure {
	case "ssl_invalid_hostname", "ssl_unknown_authority", "ssl_invalid_certificate":
		return o.TLS != nil && len(o.TLS.PeerCertificates) > 0
	}
	return false
}

func pathLabel(o *measurements.Observation) string {
	name := ""
	if o.TLS != nil && o.TLS.ServerName != "" {
		name = " " + o.TLS.ServerName
	}
	switch {
	case o.Step == measurements.StepTCP:
		return "TCP connect"
	case o.Step == measurements.StepTLS && o.Control:
		return "TLS, control name" + name
	case o.Step == measurements.StepTLS:
		return "TLS" + name
	case o.Step == measurements.StepQUIC && o.Control:
		return "QUIC, control name" + name
	case o.Step == measurements.StepQUIC:
		return "QUIC" + name
	case o.Step == measurements.StepUDP:
		label := "STUN"
		if o.STUN != nil {
			label += fmt.Sprintf(" (%s, %s)", plural(o.STUN.Attempts, "request", "requests"), answerWord(o.STUN))
		}
		return label
	}
	return string(o.Step)
}

func answerWord(s *measurements.STUNDetails) string {
	switch {
	case s.Responded:
		return "answered"
	case s.ExpectAnswer:
		return "no answer, one was expected"
	}
	return "no answer, none was certain"
}

func buildDNSEvidence(ds []analysis.DNSVerdict) dnsEvidence {
	var out dnsEvidence
	for _, d := range ds {
		row := dnsRow{
			Service:   words(shortService, d.Group),
			Host:      d.Host,
			Class:     serviceClass(d.Verdict),
			Verdict:   d.Verdict,
			Method:    methodText(d.Method, d.Suspected),
			Failure:   d.Failure,
			Resolver:  capped(d.ResolverAnswers),
			Encrypted: capped(d.ControlAnswers),
			Forged:    capped(d.Forged),
			Queries:   d.Queries,
			Evidence:  capitalise(d.Evidence),
		}
		if d.Verdict == analysis.VerdictOK {
			out.Working = append(out.Working, row)
		} else {
			out.Problems = append(out.Problems, row)
		}
	}
	return out
}

// capped joins up to maxNamesShown items and counts the rest.
func capped(xs []string) string {
	if len(xs) <= maxNamesShown {
		return strings.Join(xs, ", ")
	}
	return strings.Join(xs[:maxNamesShown], ", ") + fmt.Sprintf(", and %d more", len(xs)-maxNamesShown)
}
