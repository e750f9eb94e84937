package export

import (
	"bytes"
	"strings"
	"testing"
)

// hopAddresses are the router addresses of the golden case's path
// (analysis/scenario_test.go, isp): the home router and the ISP's and a
// transit network's. They are in the database; no export may carry them.
var hopAddresses = []string{"192.168.77.1", "198.51.100.1", "198.51.100.9", "203.0.113.7"}

// resetFacts are what each format says of push_sni_reset_in_isp's reset
// trace: reset past hop 2, in AS64500, from TTL 3.
var resetFacts = map[string][]string{
	"CSV":  {"reset past hop 2 AS64500 Example ISP (reset from TTL 3, server at hop 5)", "3:test:reset"},
	"JSON": {`"kind": "reset"`, `"reset_ttl": 3`, `"outcome": "reset"`},
	"OONI": {`"kind":"reset"`, `"reset_ttl":3`, `"outcome":"reset"`},
}

// TestPathEvidencePrivacy exports a run with arrival steps and traces
// (UDP to Apple dropped at the home router) in every format and checks
// that hop addresses are gone while hop numbers and AS numbers remain.
func TestPathEvidencePrivacy(t *testing.T) {
	for _, name := range []string{"call_path_dropped_at_home", "call_path_dropped_in_isp", "quic_path_dropped_in_isp", "quic_path_closed_for_all", "call_payload_path_dropped_in_isp",
		"push_sni_reset_in_isp", "push_5223_drop_in_isp", "web_only_firewall_traced"} {
		run := loadCase(t, name, 1)
		formats := []struct {
			name  string
			write func(*bytes.Buffer) error
		}{
			{"CSV", func(b *bytes.Buffer) error { return WriteCSV(b, Slice([]Run{run})) }},
			{"JSON", func(b *bytes.Buffer) error { return WriteJSON(b, Slice([]Run{run})) }},
			{"OONI", func(b *bytes.Buffer) error {
				return WriteOONI(b, Slice([]Run{run}), OONIOptions{})
			}},
		}
		for _, f := range formats {
			t.Run(name+"/"+f.name, func(t *testing.T) {
				var buf bytes.Buffer
				if err := f.write(&buf); err != nil {
					t.Fatal(err)
				}
				out := buf.String()
				for _, a := range hopAddresses {
					if strings.Contains(out, a) {
						t.Errorf("%s carries hop address %s", f.name, a)
					}
				}
				wants := []string{"64500", "trace"}
				if strings.HasPrefix(name, "quic_") {
					wants = append(wants, "quic_v1") // what the probes carried
				}
				if strings.HasPrefix(name, "call_payload_") {
					wants = append(wants, "quic_reserved_version")
				}
				for _, want := range wants {
					if !strings.Contains(out, want) {
						t.Errorf("%s lacks %q: the path evidence is missing", f.name, want)
					}
				}
				if strings.Contains(name, "sni_reset") {
					// The reset trace's facts: its ClientHellos and the
					// hop past which the reset comes.
					for _, want := range resetFacts[f.name] {
						if !strings.Contains(out, want) {
							t.Errorf("%s lacks the reset trace's %q", f.name, want)
						}
					}
				}
			})
		}
	}
}
