package export

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// jsonType names the JSON type of a decoded value.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// checker checks the keys of decoded JSON objects, naming where a
// mismatch is.
type checker struct {
	t    *testing.T
	fail int
}

func (c *checker) errorf(format string, args ...any) {
	c.t.Helper()
	if c.fail++; c.fail <= 20 { // enough to see a pattern
		c.t.Errorf(format, args...)
	}
}

// field checks that obj[key] exists and has one of types ("string",
// "number", "null", ...), and returns it.
func (c *checker) field(where string, obj map[string]any, key string, types ...string) any {
	c.t.Helper()
	v, ok := obj[key]
	if !ok {
		c.errorf("%s: no %q", where, key)
		return nil
	}
	got := jsonType(v)
	for _, want := range types {
		if got == want {
			return v
		}
	}
	c.errorf("%s: %q is %s %v, want %s", where, key, got, v, strings.Join(types, " or "))
	return v
}

// timing checks t0 and t: numbers, 0 <= t0 <= t.
func (c *checker) timing(where string, obj map[string]any) {
	c.t.Helper()
	t0, _ := c.field(where, obj, "t0", "number").(float64)
	t, _ := c.field(where, obj, "t", "number").(float64)
	if t0 < 0 || t < t0 {
		c.errorf("%s: t0 %v, t %v: want 0 <= t0 <= t", where, t0, t)
	}
	c.field(where, obj, "transaction_id", "number")
	for _, tag := range c.field(where, obj, "tags", "array").([]any) {
		if jsonType(tag) != "string" {
			c.errorf("%s: tag %v is not a string", where, tag)
		}
	}
}

// failure checks a failure field: null, or a string of OONI's vocabulary.
func (c *checker) failure(where string, obj map[string]any, key string) {
	c.t.Helper()
	if s, ok := c.field(where, obj, key, "null", "string").(string); ok && (s == "" || strings.Contains(s, " ") && !strings.HasPrefix(s, "unknown_failure: ")) {
		c.errorf("%s: %s %q is not a failure string", where, key, s)
	}
}

var (
	ooniTimePattern = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$`)
	asnPattern      = regexp.MustCompile(`^AS\d+$`)
	ccPattern       = regexp.MustCompile(`^[A-Z]{2}$`)
	reportIDPattern = regexp.MustCompile(`^\d{8}T\d{6}Z_reachprobeappleservices_[A-Z]{2}_\d+_n1_[A-Za-z0-9]{16}$`)
)

func TestWriteOONI(t *testing.T) {
	runs := fixture(t)
	var buf bytes.Buffer
	lookups := 0
	opts := OONIOptions{LookupASN: func(a netip.Addr) (uint, string) {
		lookups++
		return 714, "Apple Inc."
	}}
	if err := WriteOONI(&buf, Slice(runs), opts); err != nil {
		t.Fatal(err)
	}
	checkNoProbeAddress(t, "OONI", buf.Bytes())
	if lookups == 0 {
		t.Error("LookupASN was never called for an answer")
	}

	wantMeasurements := 0
	for _, r := range runs {
		for _, tg := range r.Targets {
			if len(observationsOf(r.Observations, tg.Name)) > 0 {
				wantMeasurements++
			}
		}
	}
	c := &checker{t: t}
	seen := map[string]int{} // test key list -> entries
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 16<<20)
	n := 0
	for sc.Scan() {
		n++
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not a JSON object: %v", n, err)
		}
		checkEnvelope(c, fmt.Sprintf("line %d", n), m)
		keys, _ := m["test_keys"].(map[string]any)
		checkTestKeys(c, fmt.Sprintf("line %d test_keys", n), keys, seen)
	}
	if n != wantMeasurements {
		t.Errorf("%d measurements, want one per target with observations (%d)", n, wantMeasurements)
	}
	for _, list := range []string{"queries", "dns_late_replies", "tcp_connect", "tls_handshakes", "network_events",
		"udp handshake", "raw_response", "successful tcp", "failed tcp", "skipped", "service", "certificate"} {
		if seen[list] == 0 {
			t.Errorf("no %s in any measurement: the fixture should exercise it", list)
		}
	}
}

func checkEnvelope(c *checker, where string, m map[string]any) {
	c.t.Helper()
	ann, _ := c.field(where, m, "annotations", "object").(map[string]any)
	for _, key := range []string{"engine_name", "engine_version", "platform", "architecture", "catalog_digest"} {
		c.field(where+" annotations", ann, key, "string")
	}
	for key, v := range ann {
		if jsonType(v) != "string" {
			c.errorf("%s: annotation %q is %s, want string", where, key, jsonType(v))
		}
	}
	if ann["engine_name"] != "reachprobe" {
		c.errorf("%s: engine_name %v", where, ann["engine_name"])
	}
	want := map[string]string{"data_format_version": "0.2.0", "probe_ip": "127.0.0.1",
		"software_name": "reachprobe", "test_name": "reachprobe_apple_services", "test_version": OONITestVersion}
	for key, value := range want {
		if got := c.field(where, m, key, "string"); got != value {
			c.errorf("%s: %s = %v, want %q", where, key, got, value)
		}
	}
	patterns := map[string]*regexp.Regexp{"measurement_start_time": ooniTimePattern, "test_start_time": ooniTimePattern,
		"probe_asn": asnPattern, "resolver_asn": asnPattern, "probe_cc": ccPattern, "report_id": reportIDPattern}
	for key, re := range patterns {
		if s, _ := c.field(where, m, key, "string").(string); !re.MatchString(s) {
			c.errorf("%s: %s = %q, want %v", where, key, s, re)
		}
	}
	for _, key := range []string{"input", "probe_network_name", "resolver_network_name", "software_version"} {
		c.field(where, m, key, "string")
	}
	if s, _ := c.field(where, m, "resolver_ip", "string").(string); s != "8.8.8.8" {
		c.errorf("%s: resolver_ip %q, want the public plain DNS resolver 8.8.8.8", where, s)
	}
	if v, _ := c.field(where, m, "test_runtime", "number").(float64); v <= 0 {
		c.errorf("%s: test_runtime %v, want positive seconds", where, v)
	}
	c.field(where, m, "test_keys", "object")
}

func checkTestKeys(c *checker, where string, keys map[string]any, seen map[string]int) {
	c.t.Helper()
	list := func(name string) []map[string]any {
		var out []map[string]any
		for i, v := range c.field(where, keys, name, "array").([]any) {
			obj, ok := v.(map[string]any)
			if !ok {
				c.errorf("%s: %s[%d] is %s, want object", where, name, i, jsonType(v))
				continue
			}
			out = append(out, obj)
			seen[name]++
		}
		return out
	}
	for _, name := range []string{"queries", "dns_late_replies"} {
		for i, q := range list(name) {
			w := fmt.Sprintf("%s %s[%d]", where, name, i)
			if e := c.field(w, q, "engine", "string"); e != "system" && e != "udp" && e != "tcp" && e != "doh" {
				c.errorf("%s: engine %v", w, e)
			}
			c.failure(w, q, "failure")
			c.field(w, q, "hostname", "string")
			c.field(w, q, "query_type", "string")
			c.field(w, q, "resolver_address", "string")
			c.timing(w, q)
			if raw, ok := q["raw_response"]; ok {
				seen["raw_response"]++
				if _, err := base64.StdEncoding.DecodeString(fmt.Sprint(raw)); err != nil {
					c.errorf("%s: raw_response is not base64: %v", w, err)
				}
			}
			for j, a := range c.field(w, q, "answers", "array").([]any) {
				ans, _ := a.(map[string]any)
				aw := fmt.Sprintf("%s answers[%d]", w, j)
				c.field(aw, ans, "ttl", "number", "null")
				switch typ := c.field(aw, ans, "answer_type", "string"); typ {
				case "A", "AAAA":
					key := map[any]string{"A": "ipv4", "AAAA": "ipv6"}[typ]
					if s, _ := c.field(aw, ans, key, "string").(string); !netip.MustParseAddr(s).IsValid() {
						c.errorf("%s: %s %q", aw, key, s)
					}
					c.field(aw, ans, "asn", "number")
					c.field(aw, ans, "as_org_name", "string")
				default:
					c.field(aw, ans, "hostname", "string")
				}
			}
		}
	}
	for i, tc := range list("tcp_connect") {
		w := fmt.Sprintf("%s tcp_connect[%d]", where, i)
		c.field(w, tc, "ip", "string")
		c.field(w, tc, "port", "number")
		st, _ := c.field(w, tc, "status", "object").(map[string]any)
		c.failure(w+" status", st, "failure")
		if ok, _ := c.field(w+" status", st, "success", "bool").(bool); ok {
			seen["successful tcp"]++
			if st["failure"] != nil {
				c.errorf("%s: success with failure %v", w, st["failure"])
			}
		} else {
			seen["failed tcp"]++
		}
		c.timing(w, tc)
	}
	for i, h := range list("tls_handshakes") {
		w := fmt.Sprintf("%s tls_handshakes[%d]", where, i)
		network := c.field(w, h, "network", "string")
		if network != "tcp" && network != "udp" {
			c.errorf("%s: network %v", w, network)
		}
		if network == "udp" {
			seen["udp handshake"]++
		}
		for _, key := range []string{"address", "cipher_suite", "negotiated_protocol", "server_name", "tls_version"} {
			c.field(w, h, key, "string")
		}
		c.failure(w, h, "failure")
		if v := c.field(w, h, "no_tls_verify", "bool"); v != false {
			c.errorf("%s: no_tls_verify %v, want false (chains are verified)", w, v)
		}
		for j, pc := range c.field(w, h, "peer_certificates", "array").([]any) {
			cert, _ := pc.(map[string]any)
			cw := fmt.Sprintf("%s peer_certificates[%d]", w, j)
			if c.field(cw, cert, "format", "string") != "base64" {
				c.errorf("%s: format %v", cw, cert["format"])
			}
			if _, err := base64.StdEncoding.DecodeString(fmt.Sprint(c.field(cw, cert, "data", "string"))); err != nil {
				c.errorf("%s: data is not base64: %v", cw, err)
			}
			seen["certificate"]++
		}
		c.timing(w, h)
	}
	for i, e := range list("network_events") {
		w := fmt.Sprintf("%s network_events[%d]", where, i)
		for _, key := range []string{"address", "operation", "proto"} {
			c.field(w, e, key, "string")
		}
		c.field(w, e, "num_bytes", "number")
		c.failure(w, e, "failure")
		c.timing(w, e)
	}
	rp, _ := c.field(where, keys, "reachprobe", "object").(map[string]any)
	for _, key := range []string{"target", "group", "run_status"} {
		c.field(where+" reachprobe", rp, key, "string")
	}
	c.field(where+" reachprobe", rp, "network", "object")
	c.field(where+" reachprobe", rp, "endpoints", "array")
	if sk, _ := c.field(where+" reachprobe", rp, "skipped", "array").([]any); len(sk) > 0 {
		seen["skipped"]++
	}
	if s, _ := c.field(where+" reachprobe", rp, "service", "object", "null").(map[string]any); s != nil {
		seen["service"]++
		c.field(where+" reachprobe service", s, "verdict", "string")
	}
}

func TestOONIMeasurementStart(t *testing.T) {
	r := loadCase(t, "clean", 7)
	ms := ooniMeasurements(&r, OONIOptions{})
	if len(ms) == 0 {
		t.Fatal("no measurements")
	}
	for _, m := range ms {
		obs := observationsOf(r.Observations, m.TestKeys.Reachprobe.Target)
		if got, want := m.MeasurementStartTime, startOf(obs).UTC().Format(ooniTime); got != want {
			t.Errorf("%s: measurement_start_time %s, want the first step's start %s", m.Input, got, want)
		}
		if m.Input == "" || m.Input != obs[0].Host {
			t.Errorf("input %q, want the target's host %q", m.Input, obs[0].Host)
		}
	}
}

func TestReportID(t *testing.T) {
	r := loadCase(t, "clean", 7)
	a := ReportID(r.Run, fixtureNetwork)
	if !reportIDPattern.MatchString(a) || !strings.HasPrefix(a, r.Run.Started.UTC().Format(reportIDTime)+"_reachprobeappleservices_DE_3320_n1_") {
		t.Errorf("ReportID = %q, want the run's start, DE and 3320", a)
	}
	if b := ReportID(r.Run, fixtureNetwork); b != a {
		t.Errorf("ReportID is not stable: %q then %q", a, b)
	}
	other := r.Run
	other.ID++
	if b := ReportID(other, fixtureNetwork); b == a {
		t.Errorf("runs %d and %d share the report ID %q", r.Run.ID, other.ID, a)
	}
	if got := ReportID(r.Run, measurements.Identity{}); !strings.Contains(got, "_ZZ_0_n1_") {
		t.Errorf("ReportID of an unknown network = %q, want ZZ and 0", got)
	}
}

func TestPublicResolver(t *testing.T) {
	udp := func(resolver string) measurements.Observation {
		return measurements.Observation{Step: measurements.StepDNS, DNS: &measurements.DNSDetails{Engine: measurements.EngineUDP, Resolver: resolver}}
	}
	doh := measurements.Observation{Step: measurements.StepDNS, DNS: &measurements.DNSDetails{Engine: measurements.EngineDoH, Resolver: "https://1.1.1.1/dns-query"}}
	tests := []struct {
		name string
		obs  []measurements.Observation
		want string
	}{
		{"public", []measurements.Observation{doh, udp("9.9.9.9:53")}, "9.9.9.9"},
		{"public ipv6", []measurements.Observation{udp("[2620:fe::fe]:53")}, "2620:fe::fe"},
		{"home router", []measurements.Observation{udp("192.168.1.1:53")}, OONIUnknownResolverIP},
		{"local stub", []measurements.Observation{udp("127.0.0.53:53")}, OONIUnknownResolverIP},
		{"doh only", []measurements.Observation{doh}, OONIUnknownResolverIP},
	}
	for _, tt := range tests {
		if got := publicResolver(tt.obs); got != tt.want {
			t.Errorf("%s: publicResolver = %q, want %q", tt.name, got, tt.want)
		}
	}
}
