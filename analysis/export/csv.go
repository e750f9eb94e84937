package export

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// csvTime is how the CSV writes times: UTC, to the millisecond, in the
// form spreadsheets recognise as a date and time.
const csvTime = "2006-01-02 15:04:05.000"

// csvRow is what one CSV row is made from.
type csvRow struct {
	run *Run
	o   *measurements.Observation
}

// csvColumn is one column of the CSV: its header and how a row fills it.
type csvColumn struct {
	name  string
	value func(r csvRow) string
}

// csvColumns are the CSV's columns in order. The README documents each.
var csvColumns = []csvColumn{
	{"run_id", func(r csvRow) string { return strconv.FormatInt(r.run.Run.ID, 10) }},
	{"run_started_utc", func(r csvRow) string { return csvTimeOf(r.run.Run.Started) }},
	{"run_status", func(r csvRow) string { return r.run.Run.Status }},
	{"probe_asn", func(r csvRow) string { return measurements.ASNString(r.run.Network.ProbeASN) }},
	{"probe_cc", func(r csvRow) string { return r.run.Network.Normalized().ProbeCC }},
	{"probe_network_name", func(r csvRow) string { return r.run.Network.ProbeNetworkName }},
	{"resolver_asn", func(r csvRow) string { return measurements.ASNString(r.run.Network.ResolverASN) }},
	{"resolver_cc", func(r csvRow) string { return r.run.Network.Normalized().ResolverCC }},
	{"resolver_network_name", func(r csvRow) string { return r.run.Network.ResolverNetworkName }},
	{"observation_id", func(r csvRow) string { return strconv.FormatInt(r.o.ID, 10) }},
	{"group", func(r csvRow) string { return r.o.Group }},
	{"target", func(r csvRow) string { return r.o.Target }},
	{"host", func(r csvRow) string { return r.o.Host }},
	{"step", func(r csvRow) string { return string(r.o.Step) }},
	{"transport", func(r csvRow) string { return r.o.Transport }},
	{"address", func(r csvRow) string { return r.o.Address }},
	{"port", func(r csvRow) string { return intOrEmpty(r.o.Port) }},
	{"control", func(r csvRow) string { return strconv.FormatBool(r.o.Control) }},
	{"repeat", func(r csvRow) string { return strconv.Itoa(r.o.Repeat) }},
	{"confirmation", func(r csvRow) string { return strconv.FormatBool(r.o.Confirmation) }},
	{"port_check", func(r csvRow) string { return strconv.FormatBool(r.o.PortCheck) }},
	{"started_utc", func(r csvRow) string { return csvTimeOf(r.o.Started) }},
	{"duration_ms", func(r csvRow) string {
		return strconv.FormatFloat(float64(r.o.Duration)/float64(time.Millisecond), 'f', 3, 64)
	}},
	{"result", func(r csvRow) string { return result(r.o) }},
	{"failure", func(r csvRow) string { return r.o.Failure }},
	{"operation", func(r csvRow) string { return r.o.Operation }},
	{"skipped", func(r csvRow) string { return r.o.Skipped }},
	{"dns_engine", dnsField(func(d *measurements.DNSDetails) string { return d.Engine })},
	{"dns_resolver", dnsField(func(d *measurements.DNSDetails) string { return d.Resolver })},
	{"dns_query_type", dnsField(func(d *measurements.DNSDetails) string { return d.QueryType })},
	{"dns_rcode", dnsField(func(d *measurements.DNSDetails) string { return d.Rcode })},
	{"dns_answers", dnsField(func(d *measurements.DNSDetails) string { return answers(d.Answers) })},
	{"dns_late_answers", dnsField(func(d *measurements.DNSDetails) string {
		var late []string
		for _, l := range d.Late {
			late = append(late, answers(l.Answers))
		}
		if d.LateDropped > 0 {
			late = append(late, fmt.Sprintf("+%d more (%d bytes)", d.LateDropped, d.LateDroppedBytes))
		}
		return strings.Join(late, " | ")
	})},
	{"tls_server_name", tlsField(func(t *measurements.TLSDetails) string { return t.ServerName })},
	{"tls_client_hello", tlsField(func(t *measurements.TLSDetails) string { return t.ClientHello })},
	{"tls_alpn_offered", tlsField(func(t *measurements.TLSDetails) string { return strings.Join(t.ALPN, " ") })},
	{"tls_version", tlsField(func(t *measurements.TLSDetails) string { return t.TLSVersion })},
	{"tls_cipher_suite", tlsField(func(t *measurements.TLSDetails) string { return t.CipherSuite })},
	{"tls_negotiated_protocol", tlsField(func(t *measurements.TLSDetails) string { return t.NegotiatedProtocol })},
	{"tls_certificates", tlsField(func(t *measurements.TLSDetails) string { return strconv.Itoa(len(t.PeerCertificates)) })},
	{"tls_verified", tlsField(func(t *measurements.TLSDetails) string { return strconv.FormatBool(t.Verified) })},
	{"tls_verify_failure", tlsField(func(t *measurements.TLSDetails) string { return t.VerifyFailure })},
	{"tls_anchor", tlsField(func(t *measurements.TLSDetails) string { return t.Anchor })},
	{"stun_expect_answer", stunField(func(s *measurements.STUNDetails) string { return strconv.FormatBool(s.ExpectAnswer) })},
	{"stun_attempts", stunField(func(s *measurements.STUNDetails) string { return strconv.Itoa(s.Attempts) })},
	{"stun_responded", stunField(func(s *measurements.STUNDetails) string { return strconv.FormatBool(s.Responded) })},
	{"stun_class", stunField(func(s *measurements.STUNDetails) string { return s.Class })},
	{"arrival_kinds", func(r csvRow) string {
		if r.o.Arrival == nil {
			return ""
		}
		return arrivalSummary(r.o.Arrival)
	}},
	{"trace_control", traceField(func(d *measurements.TraceDetails) string {
		if d.IsReset() {
			return "tls control server name, same address"
		}
		c := d.Control.Network + " " + d.ControlTarget
		if d.Control.Address == d.Test.Address {
			c = d.Control.Network + " same address"
		}
		if d.Test.Payload != "" || d.Control.Payload != "" {
			c += fmt.Sprintf(" (test carries %s, control %s)", carried(d.Test), carried(d.Control))
		}
		return c
	})},
	{"trace_hops", traceField(traceHops)},
	{"trace_stop", traceField(traceStop)},
	{"trace_tries", traceField(traceTries)},
}

// carried names what a trace flow's probes carried.
func carried(f measurements.TraceFlow) string {
	switch {
	case f.Network == "tcp":
		return "a SYN"
	case f.Payload == "":
		return "zeros"
	}
	return f.Payload
}

func traceField(f func(*measurements.TraceDetails) string) func(csvRow) string {
	return func(r csvRow) string {
		if r.o.Trace == nil {
			return ""
		}
		return f(r.o.Trace)
	}
}

// CSVHeader returns the names of the CSV's columns, in order.
func CSVHeader() []string {
	names := make([]string, len(csvColumns))
	for i, c := range csvColumns {
		names[i] = c.name
	}
	return names
}

// WriteCSV writes one row per observation of runs, after a header row
// (CSVHeader): RFC 4180 (comma-separated, fields quoted as needed, CRLF
// line ends), UTF-8 without a byte-order mark. Times are UTC. A cell that a
// spreadsheet would take for a formula (it starts with =, +, -, @, a tab or
// a carriage return) is prefixed with a single quote: names and error text
// come from the network. Free text is scrubbed (Scrub).
func WriteCSV(w io.Writer, runs Runs) error {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	if err := cw.Write(CSVHeader()); err != nil {
		return err
	}
	record := make([]string, len(csvColumns))
	for r, err := range runs {
		if err != nil {
			return err
		}
		keep := measuredAddresses(r.Observations)
		r.Observations = scrubObservations(r.Observations, keep)
		for i := range r.Observations {
			row := csvRow{run: &r, o: &r.Observations[i]}
			for j, c := range csvColumns {
				record[j] = cell(c.value(row))
			}
			if err := cw.Write(record); err != nil {
				return err
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return fmt.Errorf("writing CSV: %w", err)
		}
	}
	cw.Flush()
	return cw.Error()
}

// cell neutralises a value a spreadsheet would evaluate as a formula.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func csvTimeOf(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(csvTime)
}

func intOrEmpty(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// result is "ok", "failed" or "skipped".
func result(o *measurements.Observation) string {
	switch {
	case o.Skipped != "":
		return "skipped"
	case o.Failure != "":
		return "failed"
	}
	return "ok"
}

// answers lists answer records as "A 192.0.2.1 CNAME x.example." in order.
func answers(as []measurements.DNSAnswer) string {
	parts := make([]string, 0, len(as))
	for _, a := range as {
		parts = append(parts, a.Type+" "+a.Data)
	}
	return strings.Join(parts, " ")
}

func dnsField(f func(*measurements.DNSDetails) string) func(csvRow) string {
	return func(r csvRow) string {
		if r.o.DNS == nil {
			return ""
		}
		return f(r.o.DNS)
	}
}

func tlsField(f func(*measurements.TLSDetails) string) func(csvRow) string {
	return func(r csvRow) string {
		if r.o.TLS == nil {
			return ""
		}
		return f(r.o.TLS)
	}
}

func stunField(f func(*measurements.STUNDetails) string) func(csvRow) string {
	return func(r csvRow) string {
		if r.o.STUN == nil {
			return ""
		}
		return f(r.o.STUN)
	}
}
