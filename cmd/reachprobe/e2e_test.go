package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// binary is the reachprobe built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "reachprobe-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "reachprobe")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// loopbackLab is a set of loopback servers standing for the targets of
// testdata/e2e/loopback.catalog.tmpl, and the files a run needs.
type loopbackLab struct {
	dir, catalog, resolvConf, caFile, doh string
	// stun is a loopback STUN server for --stun-server, so that a run's
	// network identity never asks a server on the internet.
	stun string
	// ports are the servers' ports, by the catalog template's names
	// (ValidPort, ResetPort, ...), for tests that write their own catalog.
	ports map[string]uint16
}

// must panics on a set-up error; startLoopbackLab turns the panic into
// t.Fatal.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func startLoopbackLab(t *testing.T) *loopbackLab {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("starting the loopback servers: %v", r)
		}
	}()
	root := must(probetest.ModuleRoot())
	ca := must(probetest.LoadTestCA())
	untrustedCA := must(probetest.LoadUntrustedCA())
	addr := netip.MustParseAddr

	valid := must(probetest.StartTLS("127.0.0.2:0", probetest.TLSValid,
		must(ca.Leaf("courier.push.apple.com", "www.example.com")), []string{"apns-security-v3"}))
	t.Cleanup(valid.Close)
	untrusted := must(probetest.StartTLS("127.0.0.3:0", probetest.TLSValid,
		must(untrustedCA.Leaf("untrusted.test", "www.example.com")), nil))
	t.Cleanup(untrusted.Close)
	reset := must(probetest.StartTLS("127.0.0.4:0", probetest.TLSResetAfterClientHello,
		must(ca.Leaf("reset.test")), nil))
	t.Cleanup(reset.Close)
	refused := must(probetest.StartRefusingPort())
	blackhole, err := probetest.StartBlackholePort(context.Background())
	if err != nil {
		t.Skipf("cannot make a port that never answers on this kernel: %v", err)
	}
	t.Cleanup(func() { blackhole.Close() })
	quicSrv := must(probetest.StartQUIC("127.0.0.6:0", must(ca.Leaf("quic.test")), []string{"h3"}))
	t.Cleanup(func() { quicSrv.Close() })
	stunSrv := must(probetest.StartSTUN("127.0.0.7:0"))
	t.Cleanup(func() { stunSrv.Close() })
	silent := must(probetest.StartSilentSTUN("127.0.0.8:0"))
	t.Cleanup(func() { silent.Close() })

	zone := probetest.Zone{
		"valid.test":     {Addrs: []netip.Addr{addr("127.0.0.2")}},
		"untrusted.test": {Addrs: []netip.Addr{addr("127.0.0.3")}},
		"reset.test":     {Addrs: []netip.Addr{addr("127.0.0.4")}},
		"refused.test":   {Addrs: []netip.Addr{refused.Addr()}},
		"blackhole.test": {Addrs: []netip.Addr{blackhole.Addr().Addr()}},
		"nx.test":        {Behavior: probetest.DNSNXDomain},
		"forged.test":    {Addrs: []netip.Addr{addr("127.0.0.2")}, Behavior: probetest.DNSForgeFirst, Forged: []netip.Addr{addr("127.0.0.9")}},
		"quic.test":      {Addrs: []netip.Addr{addr("127.0.0.6")}},
		"stun.test":      {Addrs: []netip.Addr{addr("127.0.0.7")}},
		"silent.test":    {Addrs: []netip.Addr{addr("127.0.0.8")}},
		"bogon.test":     {Addrs: []netip.Addr{addr("10.0.0.1")}},
	}
	dnsSrv := must(probetest.StartDNS("127.0.0.1:0", zone))
	t.Cleanup(func() { dnsSrv.Close() })

	doh := httptest.NewUnstartedServer(dnsSrv.DoHHandler())
	doh.TLS = &tls.Config{Certificates: []tls.Certificate{must(ca.Leaf("127.0.0.1"))}}
	doh.StartTLS()
	t.Cleanup(doh.Close)

	l := &loopbackLab{dir: t.TempDir(), caFile: filepath.Join(root, "testdata", "ca", "ca.pem"), doh: doh.URL + "/dns-query",
		stun: stunSrv.Addr().String()}
	l.resolvConf = filepath.Join(l.dir, "resolv.conf")
	if err := os.WriteFile(l.resolvConf, []byte("# loopback lab\nnameserver "+dnsSrv.Addr()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl := template.Must(template.ParseFiles(filepath.Join(root, "testdata", "e2e", "loopback.catalog.tmpl")))
	var cat bytes.Buffer
	l.ports = map[string]uint16{
		"ValidPort": valid.Addr().Port(), "UntrustedPort": untrusted.Addr().Port(), "ResetPort": reset.Addr().Port(),
		"RefusedPort": refused.Port(), "BlackholePort": blackhole.Addr().Port(), "QUICPort": quicSrv.Addr().Port(),
		"STUNPort": stunSrv.Addr().Port(), "SilentPort": silent.Addr().Port(),
	}
	err = tmpl.Execute(&cat, l.ports)
	if err != nil {
		t.Fatal(err)
	}
	l.catalog = filepath.Join(l.dir, "loopback.catalog")
	if err := os.WriteFile(l.catalog, cat.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return l
}

// e2eConfirmDelay is the confirmation pass's pause in these tests: long
// enough to be a pause, short enough to keep the tests quick.
const e2eConfirmDelay = 300 * time.Millisecond

func (l *loopbackLab) runArgs(db string, extra ...string) []string {
	return append([]string{"run", "--db", db, "--targets", l.catalog, "--ca-file", l.caFile,
		"--control-doh", l.doh, "--resolv-conf", l.resolvConf, "--stun-server", l.stun,
		"--confirm-delay", e2eConfirmDelay.String()}, extra...)
}

// find returns the observations of target and step matching keep.
func find(obs []measurements.Observation, target string, step measurements.Step, keep func(*measurements.Observation) bool) []*measurements.Observation {
	var out []*measurements.Observation
	for i := range obs {
		o := &obs[i]
		if o.Target == target && o.Step == step && (keep == nil || keep(o)) {
			out = append(out, o)
		}
	}
	return out
}

func TestEndToEndRun(t *testing.T) {
	l := startLoopbackLab(t)
	db := filepath.Join(l.dir, "data", "reachprobe.db")
	cmd := exec.Command(binary, l.runArgs(db, "-v", "--log-format", "json")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("reachprobe run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("run took %s\n%s", time.Since(start).Round(time.Millisecond), stdout.String())

	fi, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode %v, want 0600", fi.Mode().Perm())
	}
	store, err := measurements.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	run, err := store.LatestRun(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != measurements.RunComplete || run.Ended.IsZero() || run.CatalogDigest == "" {
		t.Errorf("run = %+v, want complete with an end time and a catalog digest", run)
	}
	obs, err := store.Observations(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	steps := map[measurements.Step]int{}
	for _, o := range obs {
		steps[o.Step]++
		if o.RunID != run.ID || o.Group == "" || o.Started.IsZero() {
			t.Errorf("incomplete observation %+v", o)
		}
	}
	for _, s := range measurements.Steps {
		if steps[s] == 0 {
			t.Errorf("no %s observation stored (have %v)", s, steps)
		}
	}

	ok := func(o *measurements.Observation) bool { return o.Succeeded() }
	notControl := func(o *measurements.Observation) bool { return !o.Control }
	engine := func(e string) func(*measurements.Observation) bool {
		return func(o *measurements.Observation) bool {
			return o.DNS != nil && o.DNS.Engine == e && o.DNS.QueryType == "A"
		}
	}
	check := func(name string, got []*measurements.Observation, want func(*measurements.Observation) bool, why string) {
		t.Helper()
		if len(got) == 0 {
			t.Errorf("%s: no observation", name)
			return
		}
		for _, o := range got {
			if !want(o) {
				b, _ := json.Marshal(o)
				t.Errorf("%s: want %s, got %s", name, why, b)
			}
		}
	}

	for _, e := range []string{"system", "udp", "doh"} {
		check("valid "+e+" lookup", find(obs, "valid", measurements.StepDNS, engine(e)), func(o *measurements.Observation) bool {
			return o.Succeeded() && len(o.DNS.Answers) == 1 && o.DNS.Answers[0].Data == "127.0.0.2" && o.Control == (e == "doh")
		}, "127.0.0.2, control only for DoH")
		check("nx "+e+" lookup", find(obs, "nxdomain", measurements.StepDNS, engine(e)), func(o *measurements.Observation) bool {
			return o.Failure == "dns_nxdomain_error" && o.Operation == "resolve"
		}, "dns_nxdomain_error")
	}
	check("forged udp lookup", find(obs, "forged", measurements.StepDNS, engine("udp")), func(o *measurements.Observation) bool {
		return o.DNS.Answers[0].Data == "127.0.0.9" && len(o.DNS.Late) == 1 && o.DNS.Late[0].Answers[0].Data == "127.0.0.2"
	}, "the forged answer first and the genuine one late")
	check("valid tls", find(obs, "valid", measurements.StepTLS, notControl), func(o *measurements.Observation) bool {
		return o.Succeeded() && o.TLS.Verified && o.TLS.NegotiatedProtocol == "apns-security-v3" &&
			o.TLS.ServerName == "courier.push.apple.com" && len(o.TLS.PeerCertificates) > 0 && o.TLS.ClientHello != ""
	}, "a verified handshake negotiating apns-security-v3 with an iOS fingerprint")
	check("valid sni swap", find(obs, "valid", measurements.StepTLS, func(o *measurements.Observation) bool { return o.Control }),
		func(o *measurements.Observation) bool { return o.Succeeded() && o.TLS.ServerName == "www.example.com" }, "the control name handshake")
	check("untrusted tls", find(obs, "untrusted", measurements.StepTLS, notControl), func(o *measurements.Observation) bool {
		return o.Failure == "ssl_unknown_authority" && o.Operation == "tls_handshake" && !o.TLS.Verified && len(o.TLS.PeerCertificates) > 0
	}, "ssl_unknown_authority with the chain recorded")
	check("reset tls", find(obs, "reset", measurements.StepTLS, nil), func(o *measurements.Observation) bool {
		return o.Failure == "connection_reset" && o.Operation == "tls_handshake"
	}, "connection_reset during the handshake")
	check("refused tcp", find(obs, "refused", measurements.StepTCP, nil), func(o *measurements.Observation) bool {
		return o.Failure == "connection_refused" && o.Operation == "connect"
	}, "connection_refused")
	check("blackhole tcp", find(obs, "blackhole", measurements.StepTCP, nil), func(o *measurements.Observation) bool {
		return o.Failure == "generic_timeout_error" && o.Operation == "connect"
	}, "a connect timeout")
	// The silent STUN server, which the catalog says answers, is suspect
	// after the first pass: the confirmation pass measures it again.
	again := find(obs, "silent", measurements.StepUDP, func(o *measurements.Observation) bool { return o.Confirmation })
	if len(again) == 0 {
		t.Errorf("silent stun: not measured again in the confirmation pass")
	}
	for _, o := range again {
		if o.Repeat != 1 || o.Started.Sub(run.Started) < e2eConfirmDelay {
			t.Errorf("silent stun: confirmation step at repetition %d, %s after the start; want repetition 1 after the pause", o.Repeat, o.Started.Sub(run.Started))
		}
	}
	if !strings.Contains(stderr.String(), `"event":"confirming"`) {
		t.Errorf("the event log does not say what the run confirms:\n%s", stderr.String())
	}
	if got := find(obs, "nxdomain", measurements.StepTCP, func(o *measurements.Observation) bool { return o.Confirmation }); len(got) != 0 {
		t.Errorf("nxdomain: %d connects in the confirmation pass to a name that has no address", len(got))
	}
	if got := find(obs, "blackhole", measurements.StepTLS, nil); len(got) != 0 {
		t.Errorf("blackhole: %d TLS observations after a failed connect, want none", len(got))
	}
	check("quic", find(obs, "quic", measurements.StepQUIC, nil), func(o *measurements.Observation) bool {
		return o.Succeeded() && o.TLS.Network == "udp" && o.TLS.NegotiatedProtocol == "h3" && o.TLS.Verified
	}, "a verified h3 handshake")
	check("stun", find(obs, "stun", measurements.StepUDP, nil), func(o *measurements.Observation) bool {
		return o.Succeeded() && o.STUN.Responded && o.STUN.ExpectAnswer
	}, "a STUN response")
	check("silent stun", find(obs, "silent", measurements.StepUDP, nil), func(o *measurements.Observation) bool {
		return o.Failure == "generic_timeout_error" && o.Operation == "read" && !o.STUN.Responded
	}, "a read timeout")
	check("bogon", find(obs, "bogon", measurements.StepTCP, nil), func(o *measurements.Observation) bool {
		return o.Skipped == measurements.SkipBogon && o.Duration == 0
	}, "skipped, never connected")
	if len(find(obs, "valid", measurements.StepTLS, ok)) == 0 {
		t.Error("no successful TLS observation")
	}
	if !strings.Contains(stdout.String(), "\niMessage: ") || !strings.Contains(stdout.String(), "\nEndpoints reachable: ") {
		t.Errorf("verdicts or counts missing from -v output:\n%s", stdout.String())
	}
	checkVerdictsEvent(t, db, run.ID, stderr.String())
}

// checkVerdictsEvent checks that a run's JSON log has one "verdicts" event,
// after run_ended, saying what "analyze --format json" says of the run.
func checkVerdictsEvent(t *testing.T, db string, runID int64, log string) {
	t.Helper()
	type verdicts struct {
		Apps []struct {
			App, Verdict, Reason string
		}
		Services []struct {
			Service, Verdict, Reason string
			Methods                  []string
			Confidence               struct{ Level string }
		}
	}
	var events []string
	var got verdicts
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var e struct {
			Event string
			RunID int64 `json:"run_id"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		events = append(events, e.Event)
		if e.Event == "verdicts" {
			n++
			if e.RunID != runID {
				t.Errorf("verdicts event of run %d, want %d", e.RunID, runID)
			}
			json.Unmarshal([]byte(line), &got)
		}
	}
	if n != 1 || events[len(events)-1] != "verdicts" || !slices.Contains(events, "run_ended") {
		t.Fatalf("events %v: want one verdicts event, the last, after run_ended", events)
	}
	out, err := exec.Command(binary, "analyze", fmt.Sprint(runID), "--db", db, "--format", "json").Output()
	if err != nil {
		t.Fatalf("analyze: %v", err)
	}
	var want verdicts
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	if len(want.Apps) == 0 || len(want.Services) == 0 {
		t.Fatalf("analyze gave no verdicts: %s", out)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("verdicts event %+v, analyze %+v", got, want)
	}
}

func TestEndToEndInterrupt(t *testing.T) {
	l := startLoopbackLab(t)
	db := filepath.Join(l.dir, "reachprobe.db")
	cmd := exec.Command(binary, l.runArgs(db, "-v")...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until something was stored, then interrupt while the blackhole
	// connect (5 s) is still pending.
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && !strings.Contains(sc.Text(), "measuring:") {
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted {
		t.Fatalf("exit = %v, want code %d", err, exitInterrupted)
	}
	store, err := measurements.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	run, err := store.LatestRun(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != measurements.RunInterrupted || run.Observations == 0 {
		t.Errorf("run = %+v, want interrupted with the finished observations kept", run)
	}
}

func TestRunBadInput(t *testing.T) {
	dir := t.TempDir()
	badCatalog := filepath.Join(dir, "bad.catalog")
	os.WriteFile(badCatalog, []byte("[target x]\ngroup = push\nhost = x.test\nports = 99999\ntransports = tcp\n"), 0o644)
	garbage := filepath.Join(dir, "garbage.db")
	junk := bytes.Repeat([]byte("not a database "), 500)
	os.WriteFile(garbage, junk, 0o600)
	existing := filepath.Join(dir, "existing.db")
	if s, err := measurements.Open(context.Background(), existing); err != nil {
		t.Fatal(err)
	} else {
		s.Close()
	}
	badCA := filepath.Join(dir, "bad.pem")
	os.WriteFile(badCA, []byte("nothing here"), 0o644)
	noRuns := filepath.Join(dir, "c.db")
	if s, err := measurements.Open(context.Background(), noRuns); err != nil {
		t.Fatal(err)
	} else {
		s.Close()
	}

	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"bad catalog", []string{"run", "--db", filepath.Join(dir, "a.db"), "--targets", badCatalog}, exitUsage, badCatalog + ":4: ports"},
		{"missing catalog", []string{"targets", "--targets", filepath.Join(dir, "nope")}, exitUsage, "nope"},
		{"bad ca file", []string{"run", "--db", filepath.Join(dir, "b.db"), "--ca-file", badCA}, exitUsage, "bad.pem"},
		{"bad Apple ca file", []string{"run", "--db", filepath.Join(dir, "b.db"), "--apple-ca-file", badCA}, exitUsage, "Apple roots file " + badCA},
		{"corrupt database", []string{"list", "--db", garbage}, exitDatabase, "garbage.db"},
		{"unknown flag", []string{"run", "--colour"}, exitUsage, "colour"},
		{"unknown command", []string{"fly"}, exitUsage, "fly"},
		{"show bad run", []string{"show", "--db", existing, "x"}, exitUsage, `RUN "x" is not a run number`},
		{"show missing database", []string{"show", "--db", filepath.Join(dir, "missing.db"), "7"}, exitUsage, "no database at " + filepath.Join(dir, "missing.db")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
			code := runMain(context.Background(), env, tt.args)
			if code != tt.code || !strings.Contains(errb.String(), tt.msg) {
				t.Errorf("exit %d, stderr %q; want exit %d and a message containing %q", code, errb.String(), tt.code, tt.msg)
			}
		})
	}
	if got, _ := os.ReadFile(garbage); !bytes.Equal(got, junk) {
		t.Error("the corrupt database was modified")
	}
}

func TestHelpAndTargets(t *testing.T) {
	for _, c := range commands {
		var out, errb bytes.Buffer
		env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		if code := runMain(context.Background(), env, []string{c.name, "--help"}); code != exitOK || !strings.Contains(errb.String(), "Usage: reachprobe "+c.name) {
			t.Errorf("%s --help: exit %d, output %q", c.name, code, errb.String())
		}
	}
	var out bytes.Buffer
	env := &environ{stdout: &out, stderr: &out, getenv: func(string) string { return "" }}
	if code := runMain(context.Background(), env, []string{"targets"}); code != exitOK || !strings.Contains(out.String(), "1-courier.push.apple.com") {
		t.Errorf("targets: exit %d, output %q", code, out.String())
	}
}

func TestDefaultDBPath(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"XDG_DATA_HOME": "/x/data", "HOME": "/home/u"}, "/x/data/reachprobe/reachprobe.db"},
		{map[string]string{"HOME": "/home/u"}, "/home/u/.local/share/reachprobe/reachprobe.db"},
		{map[string]string{"XDG_DATA_HOME": "relative", "HOME": "/home/u"}, "/home/u/.local/share/reachprobe/reachprobe.db"},
	}
	for _, tt := range tests {
		env := &environ{getenv: func(k string) string { return tt.env[k] }}
		if got, err := defaultDBPath(env); err != nil || got != tt.want {
			t.Errorf("defaultDBPath(%v) = %q, %v; want %q", tt.env, got, err, tt.want)
		}
	}
	if _, err := defaultDBPath(&environ{getenv: func(string) string { return "" }}); err == nil {
		t.Error("defaultDBPath with no HOME: want an error")
	}
}
