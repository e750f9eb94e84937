package export

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// OONI envelope constants (ooni/spec df-000-base). The README documents
// the mapping.
const (
	// OONIDataFormatVersion is the base data format's version.
	OONIDataFormatVersion = "0.2.0"
	// OONITestName names reachprobe's measurements among OONI's tests.
	OONITestName = "reachprobe_apple_services"
	// OONITestVersion is the version of the test keys below; it changes
	// when a key changes meaning or goes away.
	OONITestVersion = "0.1.0"
	// OONISoftwareName is software_name and the engine_name annotation.
	OONISoftwareName = "reachprobe"
	// OONIProbeIP is what probe_ip always says: the probe's address is
	// never exported, and OONI writes this when it is withheld.
	OONIProbeIP = "127.0.0.1"
	// OONIUnknownResolverIP is resolver_ip when the resolver's address is
	// private, unknown or not worth publishing, as OONI writes it.
	OONIUnknownResolverIP = "127.0.0.2"
	// ooniTime is the format of OONI's times, always UTC.
	ooniTime = "2006-01-02 15:04:05"
	// reportIDTime is the time prefix of a report_id.
	reportIDTime = "20060102T150405Z"
)

// OONIOptions are the optional inputs of WriteOONI.
type OONIOptions struct {
	// LookupASN returns the AS number and organisation of a DNS answer's
	// address, for the answers' asn and as_org_name (probes/netid.Lookup
	// fits). Nil leaves them 0 and "".
	LookupASN func(netip.Addr) (asn uint, org string)
}

// ooniMeasurement is one OONI measurement (df-000-base).
type ooniMeasurement struct {
	Annotations          map[string]string `json:"annotations"`
	DataFormatVersion    string            `json:"data_format_version"`
	Extensions           map[string]int64  `json:"extensions"`
	Input                string            `json:"input"`
	MeasurementStartTime string            `json:"measurement_start_time"`
	ProbeASN             string            `json:"probe_asn"`
	ProbeCC              string            `json:"probe_cc"`
	ProbeIP              string            `json:"probe_ip"`
	ProbeNetworkName     string            `json:"probe_network_name"`
	ReportID             string            `json:"report_id"`
	ResolverASN          string            `json:"resolver_asn"`
	ResolverIP           string            `json:"resolver_ip"`
	ResolverNetworkName  string            `json:"resolver_network_name"`
	SoftwareName         string            `json:"software_name"`
	SoftwareVersion      string            `json:"software_version"`
	TestKeys             *ooniTestKeys     `json:"test_keys"`
	TestName             string            `json:"test_name"`
	TestRuntime          float64           `json:"test_runtime"`
	TestStartTime        string            `json:"test_start_time"`
	TestVersion          string            `json:"test_version"`
}

// ooniExtensions are the versions of OONI's data formats the test keys
// use, as probe-cli declares them.
var ooniExtensions = map[string]int64{"dnst": 0, "netevents": 0, "tcpconnect": 0, "tlshandshake": 0}

// WriteOONI writes one OONI measurement per target per run, as JSON Lines
// (one JSON object and a newline each), in the order of runs and of each
// run's catalog; a target without observations is left out. The README
// documents the envelope and the test keys. Free text is scrubbed (Scrub)
// and probe_ip is always OONIProbeIP.
func WriteOONI(w io.Writer, runs Runs, opts OONIOptions) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for r, err := range runs {
		if err != nil {
			return err
		}
		r, err = Scrub(r)
		if err != nil {
			return err
		}
		for _, m := range ooniMeasurements(&r, opts) {
			if err := enc.Encode(m); err != nil {
				return fmt.Errorf("writing OONI measurements of run %d: %w", r.Run.ID, err)
			}
		}
	}
	return bw.Flush()
}

// ooniMeasurements makes the measurements of one scrubbed run.
func ooniMeasurements(r *Run, opts OONIOptions) []*ooniMeasurement {
	id := r.Network.Normalized()
	reportID := ReportID(r.Run, id)
	resolverIP := publicResolver(r.Observations)
	var out []*ooniMeasurement
	for _, t := range targetsOf(r) {
		obs := observationsOf(r.Observations, t.Name)
		if len(obs) == 0 {
			continue
		}
		zero := startOf(obs)
		keys := newTestKeys(r, t, obs, zero, opts)
		out = append(out, &ooniMeasurement{
			Annotations: map[string]string{
				"architecture":       runtime.GOARCH,
				"catalog_digest":     r.Run.CatalogDigest,
				"catalog_name":       r.Run.CatalogName,
				"engine_name":        OONISoftwareName,
				"engine_version":     r.Run.SoftwareVersion,
				"platform":           runtime.GOOS,
				"reachprobe_group":   t.Group,
				"reachprobe_run_id":  strconv.FormatInt(r.Run.ID, 10),
				"reachprobe_target":  t.Name,
				"reachprobe_repeats": strconv.Itoa(r.Report.Repeats),
			},
			DataFormatVersion:    OONIDataFormatVersion,
			Extensions:           ooniExtensions,
			Input:                t.Host,
			MeasurementStartTime: zero.UTC().Format(ooniTime),
			ProbeASN:             measurements.ASNString(id.ProbeASN),
			ProbeCC:              id.ProbeCC,
			ProbeIP:              OONIProbeIP,
			ProbeNetworkName:     id.ProbeNetworkName,
			ReportID:             reportID,
			ResolverASN:          measurements.ASNString(id.ResolverASN),
			ResolverIP:           resolverIP,
			ResolverNetworkName:  id.ResolverNetworkName,
			SoftwareName:         OONISoftwareName,
			SoftwareVersion:      r.Run.SoftwareVersion,
			TestKeys:             keys,
			TestName:             OONITestName,
			TestRuntime:          keys.runtime,
			TestStartTime:        r.Run.Started.UTC().Format(ooniTime),
			TestVersion:          OONITestVersion,
		})
	}
	return out
}

// ReportID returns the OONI report_id of run, the same for each of its
// measurements and on every export: the run's start, the test name without
// underscores, the country and AS number, "n1" and 16 letters and digits
// derived from the run's id, start and catalog, in the shape of OONI's
// "20240101T000000Z_webconnectivity_IT_30722_n1_AbCd...".
func ReportID(run measurements.Run, id measurements.Identity) string {
	id = id.Normalized()
	h := sha256.New()
	fmt.Fprintf(h, "reachprobe report\x00%d\x00%d\x00%s", run.ID, run.Started.UnixNano(), run.CatalogDigest)
	sum := h.Sum(nil)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	suffix := make([]byte, 16)
	for i := range suffix {
		suffix[i] = alphabet[binary.BigEndian.Uint16(sum[2*i:])%uint16(len(alphabet))]
	}
	return fmt.Sprintf("%s_%s_%s_%d_n1_%s", run.Started.UTC().Format(reportIDTime),
		strings.ReplaceAll(OONITestName, "_", ""), id.ProbeCC, id.ProbeASN, suffix)
}

// publicResolver returns resolver_ip: the plain DNS nameserver the run
// queried, when it is a public address (a resolver on the user's own
// network says nothing to others and is not published), else
// OONIUnknownResolverIP.
func publicResolver(obs []measurements.Observation) string {
	for i := range obs {
		d := obs[i].DNS
		if d == nil || (d.Engine != measurements.EngineUDP && d.Engine != measurements.EngineTCP) {
			continue
		}
		a, err := netip.ParseAddr(resolverHost(d.Resolver))
		if err == nil && !measurements.IsBogon(a) {
			return a.Unmap().WithZone("").String()
		}
	}
	return OONIUnknownResolverIP
}

// targetsOf returns the run's catalog targets, then a target for each name
// observed that the catalog lacks (a catalog changed under a stored run),
// made from its first observation.
func targetsOf(r *Run) []measurements.Target {
	targets := append([]measurements.Target(nil), r.Targets...)
	known := map[string]bool{}
	for _, t := range targets {
		known[t.Name] = true
	}
	for i := range r.Observations {
		o := &r.Observations[i]
		if !known[o.Target] {
			known[o.Target] = true
			targets = append(targets, measurements.Target{Name: o.Target, Group: o.Group, Host: o.Host})
		}
	}
	return targets
}

// observationsOf returns the observations of target, in order.
func observationsOf(obs []measurements.Observation, target string) []*measurements.Observation {
	var out []*measurements.Observation
	for i := range obs {
		if obs[i].Target == target {
			out = append(out, &obs[i])
		}
	}
	return out
}

// startOf returns the earliest start among obs, the measurement's zero
// time that t0 and t count from.
func startOf(obs []*measurements.Observation) time.Time {
	var zero time.Time
	for _, o := range obs {
		if !o.Started.IsZero() && (zero.IsZero() || o.Started.Before(zero)) {
			zero = o.Started
		}
	}
	return zero
}
