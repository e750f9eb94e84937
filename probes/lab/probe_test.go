//go:build lab

package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// repetitionDeadline is the probe's --timeout for one repetition of the
// lab catalog. The slowest path is DNS (5 s), a connect (5 s) and two
// handshakes (10 s each) one after the other; the lab catalog's jobs all
// run at once, so twice that is ample.
const repetitionDeadline = 60 * time.Second

// labConfirmDelay is the probe's --confirm-delay in the lab: shorter than
// the default to keep the lab quick, longer than the flaps its honest
// scenarios stage (flapDuration).
const labConfirmDelay = 4 * time.Second

// confirmDelay is the --confirm-delay the lab passes: labConfirmDelay, or
// the probe's default (30s) to measure what a run really costs:
//
//	go test -tags lab -run TestLabDefaultCatalog ./probes/lab/ -lab-confirm-delay 30s
var confirmDelay = flag.Duration("lab-confirm-delay", labConfirmDelay, "the probe's --confirm-delay in lab runs")

// commandGrace is what the test adds to the probe's own deadline before
// it kills a probe that ignores it.
const commandGrace = 30 * time.Second

// labCatalog is the lab catalog, relative to the module root.
const labCatalog = "testdata/lab/lab.catalog"

// probeRun is what one "reachprobe run" in the client namespace left.
type probeRun struct {
	db       string
	stdout   string
	stderr   string
	err      error
	duration time.Duration
	// maxRSS is the probe's peak resident memory in KiB ("ip netns exec"
	// execs the probe in its own process).
	maxRSS int64
}

// startInternet starts the fake internet, with AAAA records in its zone
// when withIPv6 is set.
func (l *lab) startInternet(withIPv6 bool) {
	l.t.Helper()
	p := l.plan
	l.start(l.internet, RoleInternet, InternetConfig{
		Zone:      p.Zone(withIPv6),
		CertNames: p.CertNames(),
		TLSPorts:  p.TLSPorts(),
		TLSALPN:   p.ALPNs("tls"),
		QUICPorts: p.QUICPorts(),
		QUICALPN:  p.ALPNs("quic"),
		STUNPorts: p.STUNPorts(),
		// Apple's call hosts answer the reserved QUIC version, as
		// FaceTime's QUIC relays do.
		VNPrefixes: []string{callBlock},
		Resolver:   net.JoinHostPort(ResolverAddr, "53"),
		DoHAddr:    DoHAddr,
		DoHListen:  net.JoinHostPort(DoHAddr, strconv.Itoa(dohBackendPort)),
	})
}

// runProbe runs "reachprobe run" unchanged in the client namespace, with
// the lab catalog, the test CA and the lab's DoH control.
func (l *lab) runProbe(repeat int) *probeRun {
	l.t.Helper()
	return l.runProbeCatalog(repeat, filepath.Join(moduleRoot, labCatalog))
}

// runProbeCatalog runs the probe with the catalog at path, or with its
// embedded default catalog when path is empty.
func (l *lab) runProbeCatalog(repeat int, path string) *probeRun {
	l.t.Helper()
	r := &probeRun{db: filepath.Join(l.t.TempDir(), "reachprobe.db")}
	timeout := time.Duration(repeat)*repetitionDeadline + *confirmDelay + repetitionDeadline
	ctx, cancel := context.WithTimeout(context.Background(), timeout+commandGrace)
	defer cancel()
	args := []string{"netns", "exec", l.client, probeBinary, "run"}
	if path != "" {
		args = append(args, "--targets", path)
	}
	args = append(args,
		"--ca-file", filepath.Join(moduleRoot, probetest.TestCACertFile),
		"--control-doh", DoHURL,
		"--db", r.db,
		"--repeat", strconv.Itoa(repeat),
		"--repeat-spacing", "0s",
		"--confirm-delay", confirmDelay.String(),
		"--timeout", timeout.String(),
		"-v",
	)
	args = append(args, l.args...)
	cmd := exec.CommandContext(ctx, "ip", args...)
	if len(l.env) > 0 {
		cmd.Env = append(os.Environ(), l.env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	started := time.Now()
	r.err = cmd.Run()
	r.duration = time.Since(started)
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss
		}
	}
	r.stdout, r.stderr = stdout.String(), stderr.String()
	return r
}

// reachprobe runs a command of the binary that needs no network (show,
// analyze) on the host and returns its standard output.
func reachprobe(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, probeBinary, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("reachprobe %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// storedRun is "reachprobe show latest --json".
type storedRun struct {
	Run          measurements.Run
	Observations []measurements.Observation
}

func (r *probeRun) observations() (*storedRun, error) {
	out, err := reachprobe("show", "--db="+r.db, "--json", "latest")
	if err != nil {
		return nil, err
	}
	var s storedRun
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return nil, fmt.Errorf("decoding show --json: %w", err)
	}
	return &s, nil
}

// report is the part of "reachprobe analyze --format json" the lab
// checks (analysis/FORMAT.md describes all of it).
type report struct {
	RunID     int64  `json:"run_id"`
	RunStatus string `json:"run_status"`
	Network   struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	} `json:"network"`
	Apps []struct {
		App     string `json:"app"`
		Verdict string `json:"verdict"`
		Reason  string `json:"reason"`
	} `json:"apps"`
	Services []struct {
		Service string   `json:"service"`
		Verdict string   `json:"verdict"`
		Methods []string `json:"methods"`
		Reason  string   `json:"reason"`
	} `json:"services"`
	DNS       []dnsReport `json:"dns"`
	Endpoints []struct {
		Target    string `json:"target"`
		Group     string `json:"group"`
		Host      string `json:"host"`
		Address   string `json:"address"`
		Port      int    `json:"port"`
		Transport string `json:"transport"`
		Verdict   string `json:"verdict"`
		Method    string `json:"method"`
		Failure   string `json:"failure"`
		Operation string `json:"operation"`
		Skipped   string `json:"skipped"`
		Scope     string `json:"scope"`
		Evidence  string `json:"evidence"`
	} `json:"endpoints"`
}

// dnsReport is one name's DNS verdict.
type dnsReport struct {
	Target      string   `json:"target"`
	Group       string   `json:"group"`
	Host        string   `json:"host"`
	Verdict     string   `json:"verdict"`
	Method      string   `json:"method"`
	Scope       string   `json:"scope"`
	LateAnswers []string `json:"late_answers"`
	Evidence    string   `json:"evidence"`
}

// analyze runs "reachprobe analyze --format json" on the run's database
// and returns the raw JSON and its decoding.
func (r *probeRun) analyze() (string, *report, error) {
	out, err := reachprobe("analyze", "--db="+r.db, "--format=json")
	if err != nil {
		return out, nil, err
	}
	var rep report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		return out, nil, fmt.Errorf("decoding analyze's JSON: %w", err)
	}
	return out, &rep, nil
}
