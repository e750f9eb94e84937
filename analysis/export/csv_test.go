package export

import (
	"bytes"
	"encoding/csv"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestWriteCSV(t *testing.T) {
	runs := fixture(t)
	var buf bytes.Buffer
	if err := WriteCSV(&buf, Slice(runs)); err != nil {
		t.Fatal(err)
	}
	out := buf.Bytes()
	checkNoProbeAddress(t, "CSV", out)
	if !bytes.HasSuffix(out, []byte("\r\n")) || bytes.Count(out, []byte("\n")) != bytes.Count(out, []byte("\r\n")) {
		t.Error("lines do not all end in CRLF (RFC 4180)")
	}

	records, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("the CSV does not parse back: %v", err)
	}
	if !slices.Equal(records[0], CSVHeader()) {
		t.Errorf("header = %v, want %v", records[0], CSVHeader())
	}
	if got, want := len(records)-1, countObservations(runs); got != want {
		t.Fatalf("%d rows, want one per observation (%d)", got, want)
	}
	col := map[string]int{}
	for i, name := range records[0] {
		col[name] = i
	}

	// The first row of each run: fixture renamed its host into a formula.
	first := records[1]
	if got := first[col["host"]]; got != `'=HYPERLINK("http://example.com")` {
		t.Errorf("formula host = %q, want it prefixed with a quote", got)
	}
	tests := []struct {
		name string
		find func(rec []string) bool
		want map[string]string
	}{
		{"network identity on every row", func(rec []string) bool { return rec[col["run_id"]] == "2" },
			map[string]string{"probe_asn": "AS3320", "probe_cc": "DE", "probe_network_name": "Deutsche Telekom AG",
				"resolver_asn": "AS15169", "run_status": "complete"}},
		{"dns lookup", func(rec []string) bool {
			return rec[col["step"]] == "dns" && rec[col["dns_engine"]] == "system" && rec[col["dns_query_type"]] == "A"
		}, map[string]string{"result": "ok", "dns_rcode": "NOERROR", "port": "", "tls_server_name": ""}},
		{"late answers of an injected lookup", func(rec []string) bool { return rec[col["dns_late_answers"]] != "" },
			map[string]string{"run_id": "2", "dns_engine": "udp", "dns_resolver": "8.8.8.8:53"}},
		{"tls handshake", func(rec []string) bool { return rec[col["step"]] == "tls" && rec[col["result"]] == "ok" },
			map[string]string{"tls_verified": "true", "tls_version": "TLSv1.3", "transport": "tcp", "failure": "", "dns_engine": ""}},
		{"skipped bogon", func(rec []string) bool { return rec[col["result"]] == "skipped" },
			map[string]string{"skipped": "bogon_address", "failure": "", "run_id": "4"}},
		{"stun", func(rec []string) bool { return rec[col["step"]] == "udp" },
			map[string]string{"transport": "udp", "stun_class": "success", "stun_responded": "true"}},
		{"scrubbed failure", func(rec []string) bool { return strings.HasPrefix(rec[col["failure"]], "unknown_failure") },
			map[string]string{"result": "failed", "operation": "connect"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := slices.IndexFunc(records[1:], tt.find)
			if i < 0 {
				t.Fatal("no such row")
			}
			rec := records[1+i]
			for name, want := range tt.want {
				if got := rec[col[name]]; got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if got := rec[col["started_utc"]]; len(got) != len("2006-01-02 15:04:05.000") {
				t.Errorf("started_utc = %q, want a UTC time to the millisecond", got)
			}
		})
	}
}

func TestWriteCSVStopsOnError(t *testing.T) {
	boom := errors.New("database went away")
	runs := func(yield func(Run, error) bool) { yield(Run{}, boom) }
	if err := WriteCSV(&bytes.Buffer{}, runs); !errors.Is(err, boom) {
		t.Errorf("WriteCSV = %v, want the iterator's error", err)
	}
}

func TestCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"=1+1", "'=1+1"}, {"+33 1", "'+33 1"}, {"-2", "'-2"}, {"@SUM(A1)", "'@SUM(A1)"}, {"\tx", "'\tx"},
		{"ok", "ok"}, {"", ""}, {"17.57.146.20", "17.57.146.20"},
	}
	for _, tt := range tests {
		if got := cell(tt.in); got != tt.want {
			t.Errorf("cell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
