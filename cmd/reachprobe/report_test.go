package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// fakePublicAddress is what the STUN server of the privacy test claims to
// see the probe come from: a public address, so that its network can be
// looked up, and one nothing else in the loopback lab uses, so that
// finding it anywhere means it leaked.
var fakePublicAddress = netip.MustParseAddrPort("8.8.4.4:41641")

// startMappingSTUN serves STUN on a loopback port, answering every
// request with mapped as the requester's address.
func startMappingSTUN(t *testing.T, mapped netip.AddrPort) string {
	t.Helper()
	s, err := probetest.StartMappingSTUN("127.0.0.1:0", mapped)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr().String()
}

// execReachprobe runs the binary and returns its output and exit code.
func execReachprobe(t *testing.T, args ...string) (stdout, stderr []byte, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("reachprobe %v: %v", args, err)
	}
	return o.Bytes(), e.Bytes(), code
}

// TestReportPrivacy measures the loopback lab with a STUN server that
// reports a public address for the probe, then exports the run in every
// format: the run is labelled with that address's network, and the address
// itself is nowhere, neither in the database nor in any export.
func TestReportPrivacy(t *testing.T) {
	l := startLoopbackLab(t)
	stun := startMappingSTUN(t, fakePublicAddress)
	dataDir := filepath.Join(l.dir, "data")
	db := filepath.Join(dataDir, "reachprobe.db")
	if _, stderr, code := execReachprobe(t, l.runArgs(db, "--stun-server", stun)...); code != exitOK {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	marker := fakePublicAddress.Addr().String()
	files, _ := filepath.Glob(filepath.Join(dataDir, "*"))
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte(marker)) {
			t.Errorf("%s holds the probe's public address %s", f, marker)
		}
	}

	store, err := measurements.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	run, err := store.LatestRun(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	id, err := store.RunNetwork(t.Context(), run.ID)
	store.Close()
	if err != nil || id.ProbeASN != 15169 || id.ProbeNetworkName != "Google LLC" || id.ProbeCC != "US" || id.ResolverASN != 0 || id.ResolverCC != "ZZ" {
		t.Errorf("stored network %+v, %v; want AS15169 Google LLC US, and an unknown (loopback) resolver", id, err)
	}

	outDir := filepath.Join(l.dir, "reports")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"html", "csv", "json", "ooni"} {
		t.Run(format, func(t *testing.T) {
			out := filepath.Join(outDir, "report."+format)
			start := time.Now()
			if _, stderr, code := execReachprobe(t, "report", "--db", db, "--format", format, "-o", out); code != exitOK {
				t.Fatalf("report: exit %d\n%s", code, stderr)
			}
			t.Logf("%s report took %s", format, time.Since(start).Round(time.Millisecond))
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(marker)) {
				t.Errorf("the %s report holds the probe's public address %s", format, marker)
			}
			if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != reportFileMode {
				t.Errorf("report mode %v, %v; want %v", fi.Mode().Perm(), err, reportFileMode)
			}
			checkLabReport(t, format, b, run)
		})
	}
	if left, _ := filepath.Glob(filepath.Join(outDir, ".*")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
	// Standard output gets the same bytes as a file.
	stdout, _, code := execReachprobe(t, "report", "--db", db, "--format", "csv", "-o", "-")
	file, _ := os.ReadFile(filepath.Join(outDir, "report.csv"))
	if code != exitOK || !bytes.Equal(stdout, file) {
		t.Errorf("report -o - (exit %d) wrote %d bytes unlike the %d of -o FILE", code, len(stdout), len(file))
	}
}

// checkLabReport checks what each format says of the loopback lab's run.
func checkLabReport(t *testing.T, format string, b []byte, run measurements.Run) {
	t.Helper()
	switch format {
	case "html":
		for _, want := range []string{"<!DOCTYPE html>", "Google LLC"} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("the page lacks %q", want)
			}
		}
	case "csv":
		rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if got := len(rows) - 1; got != run.Observations {
			t.Errorf("%d rows, want one per observation (%d)", got, run.Observations)
		}
		for _, row := range rows[1:] {
			if row[3] != "AS15169" || row[4] != "US" {
				t.Fatalf("row %v: want the probe's network AS15169 US", row)
			}
		}
	case "json":
		var doc struct {
			Runs []struct {
				Network      measurements.Identity `json:"network"`
				Observations []json.RawMessage     `json:"observations"`
			} `json:"runs"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Runs) != 1 || doc.Runs[0].Network.ProbeASN != 15169 || len(doc.Runs[0].Observations) != run.Observations {
			t.Errorf("json: %d runs, want 1 from AS15169 with %d observations", len(doc.Runs), run.Observations)
		}
	case "ooni":
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 16<<20)
		n := 0
		for sc.Scan() {
			n++
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("line %d: %v", n, err)
			}
			want := map[string]string{"probe_ip": "127.0.0.1", "probe_asn": "AS15169", "probe_cc": "US",
				"probe_network_name": "Google LLC", "resolver_asn": "AS0", "resolver_ip": "127.0.0.2"}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("line %d: %s = %v, want %q", n, k, m[k], v)
				}
			}
		}
		if n == 0 {
			t.Error("no OONI measurement")
		}
	}
}

// TestReportEscapesNetworkStrings stores a TLS handshake whose certificate
// is named <script>...: no format may carry it as markup.
func TestReportEscapesNetworkStrings(t *testing.T) {
	ctx := t.Context()
	db := filepath.Join(t.TempDir(), "reachprobe.db")
	store, err := measurements.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	run := addReportRun(t, store, time.Now().Add(-time.Hour), measurements.RunComplete)
	const evil = "<script>alert(1)</script>"
	der := selfSignedDER(t, evil, evil+".example")
	tlsObs := &measurements.Observation{
		RunID: run, Step: measurements.StepTLS, Group: measurements.GroupPush, Target: "courier-1",
		Host: "1-courier.push.apple.com", Address: "17.57.146.20", Port: 5223, Transport: "tcp",
		Started: time.Now().Add(-time.Hour), Duration: 30 * time.Millisecond,
		Failure: "ssl_invalid_hostname", Operation: "tls_handshake",
		TLS: &measurements.TLSDetails{Network: "tcp", ServerName: "courier.push.apple.com", TLSVersion: "TLSv1.3",
			PeerCertificates: [][]byte{der}, VerifyFailure: "x509: certificate is valid for " + evil + ".example, not courier.push.apple.com"},
	}
	if err := store.AddObservation(ctx, tlsObs); err != nil {
		t.Fatal(err)
	}
	store.Close()

	for _, format := range []string{"html", "json", "ooni"} {
		t.Run(format, func(t *testing.T) {
			var out, errb bytes.Buffer
			env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
			if code := runMain(ctx, env, []string{"report", "--db", db, "--format", format}); code != exitOK {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if i := bytes.Index(bytes.ToLower(out.Bytes()), []byte("<script")); i >= 0 {
				t.Errorf("the %s report carries markup from a certificate name: %.80q", format, out.Bytes()[i:])
			}
			if format == "html" && !strings.Contains(out.String(), "&lt;script&gt;") {
				t.Error("the page does not show the certificate's name (escaped)")
			}
		})
	}
}

// addReportRun stores a run of the default catalog started at started,
// with one DNS lookup, and returns its id.
func addReportRun(t *testing.T, store *measurements.Store, started time.Time, status string) int64 {
	t.Helper()
	ctx := t.Context()
	cat, err := loadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	id, err := store.BeginRun(ctx, measurements.Run{Started: started.UTC(), SoftwareVersion: "test", CatalogName: cat.Name}, cat)
	if err != nil {
		t.Fatal(err)
	}
	err = store.AddObservation(ctx, &measurements.Observation{
		RunID: id, Step: measurements.StepDNS, Group: measurements.GroupPush, Target: "courier-1",
		Host: "1-courier.push.apple.com", Transport: "udp", Started: started.UTC(), Duration: 20 * time.Millisecond,
		DNS: &measurements.DNSDetails{Engine: measurements.EngineSystem, QueryType: "A", Rcode: "NOERROR",
			Answers: []measurements.DNSAnswer{{Name: "1-courier.push.apple.com.", Type: "A", Data: "17.57.146.20", TTL: 60}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if status != measurements.RunRunning {
		if err := store.EndRun(ctx, id, status, started.Add(time.Minute).UTC()); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

func TestReportSelection(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	db := filepath.Join(dir, "reachprobe.db")
	store, err := measurements.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old := addReportRun(t, store, now.Add(-72*time.Hour), measurements.RunComplete)
	recent := addReportRun(t, store, now.Add(-2*time.Hour), measurements.RunInterrupted)
	running := addReportRun(t, store, now.Add(-time.Minute), measurements.RunRunning)
	store.Close()
	empty := filepath.Join(dir, "empty.db")
	if s, err := measurements.Open(ctx, empty); err != nil {
		t.Fatal(err)
	} else {
		s.Close()
	}
	// The running run's writer is alive while it holds the lock.
	held, err := lockDatabase(ctx, db, 0, nil)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		args    []string
		code    int
		runs    []int64 // the runs in the JSON report
		message string  // in standard error
	}{
		{"latest by default", []string{}, exitOK, []int64{running}, ""},
		{"one run", []string{"1"}, exitOK, []int64{old}, ""},
		{"flags after the run", []string{"2", "--format", "json"}, exitOK, []int64{recent}, ""},
		{"since", []string{"--since", "3h"}, exitOK, []int64{recent}, ""},
		{"since in days", []string{"--since", "4d"}, exitOK, []int64{old, recent}, ""},
		{"nothing finished since", []string{"--since", "30m"}, exitUsage, nil, "no finished run"},
		{"run and since", []string{"1", "--since", "4d"}, exitUsage, nil, "not both"},
		{"no such run", []string{"9"}, exitUsage, nil, "no run 9"},
		{"bad format", []string{"--format", "pdf"}, exitUsage, nil, `"pdf"`},
		{"empty output name", []string{"-o", ""}, exitUsage, nil, "-o needs"},
		{"no runs at all", []string{"--db", empty}, exitUsage, nil, "has no runs yet"},
		{"no database", []string{"--db", filepath.Join(dir, "typo.db")}, exitUsage, nil, "no database at " + filepath.Join(dir, "typo.db")},
		{"unwritable output", []string{"-o", filepath.Join(dir, "missing", "r.json")}, exitFailure, nil, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
			args := append([]string{"report", "--db", db, "--format", "json"}, tt.args...)
			code := runMain(ctx, env, args)
			if code != tt.code || !strings.Contains(errb.String(), tt.message) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errb.String(), tt.code, tt.message)
			}
			if tt.runs == nil {
				return
			}
			var doc struct {
				Runs []struct {
					Run struct {
						ID int64 `json:"id"`
					} `json:"run"`
				} `json:"runs"`
			}
			if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, r := range doc.Runs {
				got = append(got, r.Run.ID)
			}
			if !slices.Equal(got, tt.runs) {
				t.Errorf("runs %v, want %v", got, tt.runs)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "typo.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("report created a missing database: %v", err)
	}

	// Once nobody holds the lock, the running run's process is gone: it is
	// reported as interrupted, and so finished.
	held.release()
	var out, errb bytes.Buffer
	env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if code := runMain(ctx, env, []string{"report", "--db", db, "--format", "json", "--since", "30m"}); code != exitOK {
		t.Fatalf("report --since 30m with no writer: exit %d, stderr %q", code, errb.String())
	}
	var doc struct {
		Runs []struct {
			Run struct {
				ID     int64  `json:"id"`
				Status string `json:"status"`
			} `json:"run"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Runs) != 1 || doc.Runs[0].Run.ID != running || doc.Runs[0].Run.Status != measurements.RunInterrupted {
		t.Errorf("runs %+v, want run %d interrupted", doc.Runs, running)
	}
}

func TestWriteFileAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.csv")
	if err := os.WriteFile(path, []byte("old report"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	err := writeFileAtomically(path, func(w io.Writer) error {
		io.WriteString(w, "half a rep")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the writer's", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old report" {
		t.Errorf("after a failed write the file holds %q, want the old report", b)
	}
	if err := writeFileAtomically(path, func(w io.Writer) error { _, err := io.WriteString(w, "new report"); return err }); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if string(b) != "new report" || fi.Mode().Perm() != reportFileMode {
		t.Errorf("file %q mode %v, want the new report with mode %v", b, fi.Mode().Perm(), reportFileMode)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the directory, want the report alone", len(entries))
	}
}

// selfSignedDER returns a certificate for names, its subject the first.
func selfSignedDER(t *testing.T, names ...string) []byte {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names[1:],
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
