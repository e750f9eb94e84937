package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/catalog"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// Bounds of a run against a hostile network or with a hostile file. A run
// of the loopback catalog peaks near 40 MB; a Raspberry Pi has 1-4 GB.
const (
	hostileMaxRSS  = 150 << 20 // peak resident memory of the child process
	hostileMaxTime = 90 * time.Second
	hostileMaxDB   = 4 << 20 // database growth of one run (a fresh file)
	// hostileMaxDBPerTarget is the database growth allowed for each
	// target of a large catalog a run measured: its six lookups and a
	// connect take about 2 kB.
	hostileMaxDBPerTarget = 4 << 10
)

// hostileBinary is the reachprobe under test: the one TestMain built, or
// REACHPROBE_HOSTILE_BINARY, to measure another build (an older one, for
// a before-and-after table) against the same servers.
func hostileBinary() string {
	if b := os.Getenv("REACHPROBE_HOSTILE_BINARY"); b != "" {
		return b
	}
	return binary
}

// childRun is one run of the binary as a child process: what it printed,
// its exit code, its wall time, its peak resident memory and the size of
// the database it left.
type childRun struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
	peakRSS        int64 // bytes
	dbBytes        int64 // the database and its -wal and -shm files
}

// rssPollInterval is how often runChild reads the child's VmHWM. The
// high-water mark only grows, so the last read before the child exits is
// within one interval of its end.
const rssPollInterval = 5 * time.Millisecond

// runChild runs the binary with args and measures it. The peak is the
// child's own VmHWM, read from /proc/PID/status while it runs: the
// rusage of a child started by Go counts the test process's memory too
// (Go starts children with CLONE_VM, and the kernel records the shared
// address space's high-water mark at exec). A child gone before the
// first read gets that rusage figure, an upper bound.
func runChild(t testing.TB, env []string, db string, args ...string) childRun {
	t.Helper()
	cmd := exec.Command(hostileBinary(), args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", args, err)
	}
	var hwm atomic.Int64
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		tick := time.NewTicker(rssPollInterval)
		defer tick.Stop()
		for {
			if v := readVmHWM(status); v > hwm.Load() {
				hwm.Store(v)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	_ = cmd.Wait()
	close(stop)
	<-polled
	r := childRun{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start), peakRSS: hwm.Load()}
	r.code = cmd.ProcessState.ExitCode()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && r.peakRSS == 0 {
		r.peakRSS = int64(ru.Maxrss) << 10 // Linux reports kilobytes; int32 on 32-bit ARM
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if fi, err := os.Stat(db + suffix); err == nil {
			r.dbBytes += fi.Size()
		}
	}
	return r
}

// readVmHWM returns the VmHWM line of a /proc/PID/status file in bytes,
// 0 when the process is gone or a zombie.
func readVmHWM(status string) int64 {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// checkBounds fails t when r passed a bound, and logs the row of the
// before-and-after table.
func checkBounds(t *testing.T, name string, r childRun, maxDB int64) {
	t.Helper()
	t.Logf("hostile case %-22s exit %d  time %6.1fs  peak RSS %6.1f MB  database %8.1f kB  stderr %d bytes",
		name, r.code, r.elapsed.Seconds(), float64(r.peakRSS)/(1<<20), float64(r.dbBytes)/1024, len(r.stderr))
	if r.elapsed > hostileMaxTime {
		t.Errorf("%s took %v, want at most %v", name, r.elapsed, hostileMaxTime)
	}
	if r.peakRSS == 0 || r.peakRSS > hostileMaxRSS {
		t.Errorf("%s peaked at %d MB of RSS, want at most %d MB", name, r.peakRSS>>20, hostileMaxRSS>>20)
	}
	if r.dbBytes > maxDB {
		t.Errorf("%s left a database of %d kB, want at most %d kB", name, r.dbBytes>>10, maxDB>>10)
	}
}

// hostileLab is a zone server with a DoH front for the encrypted control,
// and the files a run needs; the hostile server of each case takes the
// resolv.conf.
type hostileLab struct {
	dir, caFile, doh string
	refusedPort      uint16
}

func startHostileLab(t testing.TB, zone probetest.Zone) *hostileLab {
	t.Helper()
	root, err := probetest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := probetest.LoadTestCA()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	doh := httptest.NewUnstartedServer(probetest.NewDoHHandler(zone))
	doh.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	doh.StartTLS()
	t.Cleanup(doh.Close)
	refused, err := probetest.StartRefusingPort()
	if err != nil {
		t.Fatal(err)
	}
	return &hostileLab{dir: t.TempDir(), caFile: filepath.Join(root, "testdata", "ca", "ca.pem"),
		doh: doh.URL + "/dns-query", refusedPort: refused.Port()}
}

// write writes a file of the lab and returns its path.
func (l *hostileLab) write(t testing.TB, name, text string) string {
	t.Helper()
	p := filepath.Join(l.dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// args are the run flags of the lab for catalog and the nameserver at
// dnsAddr; extra flags come last.
func (l *hostileLab) args(t testing.TB, db, catalog, dnsAddr string, extra ...string) []string {
	rc := l.write(t, "resolv.conf", "nameserver "+dnsAddr+"\n")
	return append([]string{"run", "--db", db, "--targets", catalog, "--ca-file", l.caFile, "--control-doh", l.doh,
		"--resolv-conf", rc, "--no-network-id", "--timeout", "60s"}, extra...)
}

// oneTarget is a catalog of one TCP target on the refusing port.
func (l *hostileLab) oneTarget(host string) string {
	return fmt.Sprintf("[target hostile]\ngroup = push\nhost = %s\nports = %d\ntransports = tcp\nnetworks = 127.0.0.0/8\n", host, l.refusedPort)
}

func startHostileDNS(t testing.TB, script probetest.DNSScript) string {
	t.Helper()
	s, err := probetest.StartHostileDNS("127.0.0.1:0", script)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr()
}

// storedObservations reads the observations of the database's only run.
func storedObservations(t *testing.T, db string) []measurements.Observation {
	t.Helper()
	runs := readRuns(t, db)
	if len(runs) != 1 {
		t.Fatalf("%d runs stored, want 1", len(runs))
	}
	return runs[0].Observations
}

// floodControlZone is the encrypted control of the flood cases: it
// answers another address than the flood's first response, as it does
// when that response is an injector's, so the listening window runs full
// and the flood fills it.
var floodControlZone = probetest.Zone{"flood.test": {Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.2")}}}

// TestHostileDNSFlood: an injector floods the listening window with
// matching 64 KB responses. The run stays bounded, keeps the first few
// late responses and records the flood's size.
func TestHostileDNSFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods loopback")
	}
	genuine := netip.MustParseAddr("127.0.0.1")
	l := startHostileLab(t, floodControlZone)
	// 64 KB responses for longer than the listening window.
	const size, flood = 65000, 1500 * time.Millisecond
	dnsAddr := startHostileDNS(t, probetest.FloodScript([]netip.Addr{genuine}, size, flood, nil))
	db := filepath.Join(l.dir, "flood.db")
	cat := l.write(t, "flood.catalog", l.oneTarget("flood.test"))
	r := runChild(t, testEnviron(l.dir), db, l.args(t, db, cat, dnsAddr)...)
	checkBounds(t, "dns-flood", r, hostileMaxDB)
	if r.code != exitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	udp := find(storedObservations(t, db), "hostile", measurements.StepDNS, func(o *measurements.Observation) bool {
		return o.DNS.Engine == measurements.EngineUDP && o.DNS.QueryType == "A"
	})
	if len(udp) != 1 {
		t.Fatalf("%d plain A lookups stored, want 1", len(udp))
	}
	d := udp[0].DNS
	t.Logf("dns-flood: %d late responses kept, %d counted (%d bytes)", len(d.Late), d.LateDropped, d.LateDroppedBytes)
	if len(d.Late) != measurements.MaxLateResponses || d.LateDropped < 1 || d.LateDroppedBytes != int64(d.LateDropped)*int64(len(d.Late[0].Raw)) {
		t.Errorf("late responses: %d kept, %d dropped of %d bytes; want %d kept and the rest counted",
			len(d.Late), d.LateDropped, d.LateDroppedBytes, measurements.MaxLateResponses)
	}
}

// TestHostileDNSFanOut: the resolver answers with 4094 A records over TCP
// and with A records of another name. The run connects to at most
// MaxAddressesPerFamily addresses, never to an off-chain one.
func TestHostileDNSFanOut(t *testing.T) {
	const n = 4094
	offChain := netip.MustParseAddr("127.0.0.99")
	l := startHostileLab(t, probetest.Zone{"f.test": {Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}})
	dnsAddr := startHostileDNS(t, probetest.FanOutScript(netip.MustParseAddr("127.1.0.1"), n-1, "victim.test", []netip.Addr{offChain}))
	db := filepath.Join(l.dir, "fanout.db")
	cat := l.write(t, "fanout.catalog", l.oneTarget("f.test"))
	r := runChild(t, testEnviron(l.dir), db, l.args(t, db, cat, dnsAddr)...)
	checkBounds(t, "dns-fanout", r, hostileMaxDB)
	if r.code != exitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	obs := storedObservations(t, db)
	tcp := find(obs, "hostile", measurements.StepTCP, nil)
	t.Logf("dns-fanout: %d connects", len(tcp))
	if len(tcp) == 0 || len(tcp) > measurements.MaxAddressesPerFamily {
		t.Errorf("%d connects, want 1 to %d", len(tcp), measurements.MaxAddressesPerFamily)
	}
	for _, o := range tcp {
		if o.Address == offChain.String() {
			t.Errorf("connected to the off-chain address %s", o.Address)
		}
	}
	marked := 0
	for _, o := range find(obs, "hostile", measurements.StepDNS, nil) {
		for _, a := range o.DNS.Answers {
			if a.Unused != "" {
				marked++
			}
		}
	}
	if marked < n-measurements.MaxAddressesPerFamily {
		t.Errorf("%d answers marked unused, want the %d not measured", marked, n-measurements.MaxAddressesPerFamily)
	}
}

// TestHostileDoHStatusLine: the DoH control answers with a malformed 9 MB
// status line. Its failure is stored short.
func TestHostileDoHStatusLine(t *testing.T) {
	l := startHostileLab(t, nil)
	ca, err := probetest.LoadTestCA()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr, stop, err := probetest.StartHugeStatusLine("127.0.0.1:0", leaf, 9<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	l.doh = "https://" + addr.String() + "/dns-query"
	zone := startZoneDNS(t, probetest.Zone{"doh.test": {Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}})
	db := filepath.Join(l.dir, "doh.db")
	cat := l.write(t, "doh.catalog", l.oneTarget("doh.test"))
	r := runChild(t, testEnviron(l.dir), db, l.args(t, db, cat, zone)...)
	checkBounds(t, "doh-9MB-status-line", r, hostileMaxDB)
	if r.code != exitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	doh := find(storedObservations(t, db), "hostile", measurements.StepDNS, func(o *measurements.Observation) bool {
		return o.DNS.Engine == measurements.EngineDoH
	})
	if len(doh) != 2 {
		t.Fatalf("%d DoH lookups stored, want 2 (A and AAAA)", len(doh))
	}
	for _, o := range doh {
		if o.Failure == "" || len(o.Failure) > 600 {
			t.Errorf("DoH failure is %d bytes (%.100q...), want a short failure", len(o.Failure), o.Failure)
		}
	}
}

func startZoneDNS(t *testing.T, zone probetest.Zone) string {
	t.Helper()
	s, err := probetest.StartDNS("127.0.0.1:0", zone)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr()
}

// TestHostileFiles: endless and oversized input files and over-long
// values are refused at once, with a short message naming the file, and
// no database is written.
func TestHostileFiles(t *testing.T) {
	l := startHostileLab(t, nil)
	zone := startZoneDNS(t, probetest.Zone{"x.test": {Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}})
	good := l.write(t, "good.catalog", l.oneTarget("x.test"))
	badLine := l.write(t, "badline.catalog", l.oneTarget("x.test")+"colour "+strings.Repeat("z", 3<<20)+"\n")
	longName := l.write(t, "longname.catalog", strings.Replace(l.oneTarget("x.test"), "[target hostile]", "[target "+strings.Repeat("n", 3<<20)+"]", 1))
	longALPN := l.write(t, "alpn.catalog", l.oneTarget("x.test")+"alpn = "+strings.Repeat("a", 250)+","+strings.Repeat("b", 250)+","+
		strings.Repeat("c", 250)+","+strings.Repeat("d", 250)+","+strings.Repeat("e", 250)+"\n")
	tests := []struct {
		name string
		args []string // replacing the lab's
		want string
	}{
		{"catalog /dev/zero", []string{"--targets", "/dev/zero"}, "/dev/zero is larger than"},
		{"resolv.conf /dev/zero", []string{"--targets", good, "--resolv-conf", "/dev/zero"}, "/dev/zero is larger than"},
		{"ca-file /dev/zero", []string{"--targets", good, "--ca-file", "/dev/zero"}, "/dev/zero is larger than"},
		{"config /dev/zero", []string{"--targets", good, "--config", "/dev/zero"}, "/dev/zero is larger than"},
		{"catalog 3 MB line", []string{"--targets", badLine}, "badline.catalog:7: line is"},
		{"catalog 3 MB name", []string{"--targets", longName}, "longname.catalog:1: line is"},
		{"catalog 100 MB", []string{"--targets", hugeFile(t, l.dir)}, "huge.catalog is larger than 4194304 bytes"},
		{"catalog long alpn", []string{"--targets", longALPN}, "alpn.catalog:7: alpn: the ALPN list is longer than 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := filepath.Join(l.dir, strings.ReplaceAll(tt.name, " ", "_")+".db")
			args := append(l.args(t, db, good, zone), tt.args...)
			r := runChild(t, testEnviron(l.dir), db, args...)
			checkBounds(t, tt.name, r, 0)
			if r.code != exitUsage || !strings.Contains(r.stderr, tt.want) || len(r.stderr) > 400 {
				t.Errorf("exit %d, stderr (%d bytes) %.300q; want exit %d and a short message containing %q",
					r.code, len(r.stderr), r.stderr, exitUsage, tt.want)
			}
		})
	}
}

// largeCatalog returns a catalog of n TCP targets on port.
func largeCatalog(n int, port uint16) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "[target t%d]\ngroup=control\nhost=t%d.test\nports=%d\ntransports=tcp\nnetworks=127.0.0.0/8\n", i, i, port)
	}
	return b.String()
}

// hugeFile returns a sparse file of 100 MB.
func hugeFile(t *testing.T, dir string) string {
	p := filepath.Join(dir, "huge.catalog")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(100 << 20); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHostileLargeCatalog: a catalog of 100,000 targets is refused at
// once (its 9 MB are over catalog.MaxFileBytes); one of
// catalog.MaxTargets, of which a run cut short by its deadline
// measures a few hundred, keeps memory bounded by --parallel, and the log
// has a line per target measured, not per target of the catalog.
func TestHostileLargeCatalog(t *testing.T) {
	if testing.Short() {
		t.Skip("a 10-second run")
	}
	// Encrypted DNS answers another address than the resolver, so every
	// plain lookup listens for its whole window and the run is cut short
	// by its deadline, a few hundred targets in: what is measured here is
	// memory while a huge catalog is being measured.
	l := startHostileLab(t, probetest.Zone{"*.test": {Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.2")}}})
	zone := startZoneDNS(t, probetest.Zone{"*.test": {Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}})

	huge := l.write(t, "100k.catalog", largeCatalog(100000, l.refusedPort))
	db := filepath.Join(l.dir, "huge.db")
	r := runChild(t, testEnviron(l.dir), db, append(l.args(t, db, huge, zone), "--timeout", "10s", "--log-format", "json")...)
	checkBounds(t, "catalog-100k-targets", r, hostileMaxDB)
	if r.code != exitUsage || !strings.Contains(r.stderr, "100k.catalog is larger than 4194304 bytes") {
		t.Errorf("100,000 targets: exit %d, stderr %.300q; want exit %d, too large", r.code, r.stderr, exitUsage)
	}

	text := largeCatalog(catalog.MaxTargets, l.refusedPort)
	cat := l.write(t, "large.catalog", text)
	db = filepath.Join(l.dir, "large.db")
	r = runChild(t, testEnviron(l.dir), db, append(l.args(t, db, cat, zone), "--timeout", "10s", "--log-format", "json")...)
	measured := 0
	for _, e := range parseLog(t, r.stderr) {
		if e.Event == "target_done" {
			measured++
		}
	}
	// The database holds the catalog's text, as every run does, and
	// what the targets measured before the deadline gave.
	t.Logf("catalog-10k-targets: %d targets measured, database %d kB", measured, r.dbBytes>>10)
	checkBounds(t, "catalog-10k-targets", r, int64(len(text))+hostileMaxDB+int64(measured)*hostileMaxDBPerTarget)
	seen := map[string]bool{}
	for _, o := range storedObservations(t, db) {
		seen[o.Target] = true
	}
	if measured != len(seen) || measured == 0 || measured >= catalog.MaxTargets {
		t.Errorf("%d target_done lines for %d targets with observations of %d; want one per target measured", measured, len(seen), catalog.MaxTargets)
	}
	if perTarget := len(r.stderr) / max(measured, 1); perTarget > 1024 {
		t.Errorf("the log holds %d bytes per target measured, want at most 1 kB", perTarget)
	}
}

// BenchmarkRunDNSFlood runs the binary against the flood server of
// TestHostileDNSFlood and reports the child's peak resident memory and the
// database it left, the worst of the runs.
func BenchmarkRunDNSFlood(b *testing.B) {
	genuine := netip.MustParseAddr("127.0.0.1")
	l := startHostileLab(b, floodControlZone)
	dnsAddr := startHostileDNS(b, probetest.FloodScript([]netip.Addr{genuine}, 65000, 1500*time.Millisecond, nil))
	cat := l.write(b, "flood.catalog", l.oneTarget("flood.test"))
	var peak, size int64
	for i := range b.N {
		db := filepath.Join(l.dir, fmt.Sprintf("flood-%d.db", i))
		r := runChild(b, testEnviron(l.dir), db, l.args(b, db, cat, dnsAddr)...)
		if r.code != exitOK {
			b.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		peak, size = max(peak, r.peakRSS), max(size, r.dbBytes)
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MB")
	b.ReportMetric(float64(size)/1024, "db-kB")
}
