package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/catalog"
	"github.com/reachprobe/reachprobe/probes/dnsprobe"
	"github.com/reachprobe/reachprobe/probes/netid"
	"github.com/reachprobe/reachprobe/probes/runner"
	"github.com/reachprobe/reachprobe/probes/tlsprobe"
)

// defaultDoH are the encrypted DNS controls: two operators, addressed by IP
// literal so that DNS tampering cannot take the control down with the
// target (both serve certificates valid for these addresses).
var defaultDoH = []string{"https://1.1.1.1/dns-query", "https://8.8.8.8/dns-query"}

// defaultResolvConf is where the plain DNS engine finds the nameservers
// applications use.
const defaultResolvConf = "/etc/resolv.conf"

// repetitionBudget is the run deadline's share for one repetition when
// --timeout is not given: DNS (about 5 s), a connect (5 s) and two
// handshakes (10 s each) fit with room to spare for a slow link.
const repetitionBudget = 2 * time.Minute

// runOptions are the flags of "run".
type runOptions struct {
	targets        string
	db             string
	caFiles        listFlag
	appleCAFile    string
	doh            listFlag
	resolvConf     string
	parallel       int
	repeat         int
	repeatSpacing  time.Duration
	confirmDelay   time.Duration
	timeout        time.Duration
	verbose        bool
	quiet          bool
	config         string
	logFormat      logFormat
	wait           time.Duration
	pruneOlderThan ageFlag
	stunServer     string
	noNetworkID    bool
	noPathProbes   bool
}

// newRunFlagSet makes a flag set with run's flags that the config file can
// also set (see configKeys), and --config.
func newRunFlagSet(env *environ, name, args, about string, o *runOptions) *flag.FlagSet {
	fs := newFlagSet(env, name, args, about)
	fs.StringVar(&o.targets, "targets", "", "catalog `FILE` replacing the embedded default catalog")
	fs.StringVar(&o.db, "db", "", "database `FILE` (default $XDG_DATA_HOME/reachprobe/reachprobe.db)")
	fs.Var(&o.caFiles, "ca-file", "PEM `FILE` of extra trusted roots, added to the system roots (repeatable)")
	fs.StringVar(&o.appleCAFile, "apple-ca-file", "", "PEM `FILE` of Apple authorities replacing the embedded Apple roots, for test networks: self-issued certificates are roots, the others intermediates")
	fs.Var(&o.doh, "control-doh", "DNS-over-HTTPS `URL` used as the encrypted DNS control (repeatable; default "+fmt.Sprint(defaultDoH)+")")
	fs.StringVar(&o.resolvConf, "resolv-conf", defaultResolvConf, "resolv.conf `FILE` naming the nameservers of the plain DNS engine")
	fs.IntVar(&o.parallel, "parallel", runner.DefaultParallel, "measurements in flight at once")
	fs.IntVar(&o.repeat, "repeat", 1, "measure every target `N` times")
	fs.DurationVar(&o.repeatSpacing, "repeat-spacing", runner.DefaultRepeatSpacing, "pause between repetitions (censors' residual blocks last 60-180s)")
	fs.DurationVar(&o.confirmDelay, "confirm-delay", runner.DefaultConfirmDelay, "pause before measuring again what looks blocked, so a moment's outage is not called a block; 0 skips the confirmation pass (the run then claims less)")
	fs.DurationVar(&o.timeout, "timeout", 0, "deadline for the whole run (default 2m per repetition plus the spacing)")
	fs.Var(&o.logFormat, "log-format", "`FORMAT` of what is written to standard error: text, or json (one object per line and event)")
	fs.StringVar(&o.stunServer, "stun-server", defaultSTUNServer, "STUN server (`HOST:PORT`, the name resolved with the system resolver) that tells the probe's public address during the run, to look up its network (AS, country); the address itself is never stored")
	fs.BoolVar(&o.noPathProbes, "no-path-probes", false, "send no arrival datagrams (QUIC Initials of a reserved version, random bytes) and no TTL-limited traces: FaceTime's verdict and the place of a block then rest on less evidence")
	fs.BoolVar(&o.noNetworkID, "no-network-id", false, "do not look up the network measured from (no STUN request): it is recorded as AS0 / ZZ")
	fs.StringVar(&o.config, "config", "", "config `FILE` (default "+configFileHelp+"); flags override it")
	return fs
}

func cmdRun(ctx context.Context, env *environ, args []string) error {
	var o runOptions
	fs := newRunFlagSet(env, "run", "[flags]",
		"Measures every target of the catalog (DNS, TCP, TLS, QUIC, UDP) from this network and stores each\nobservation in the local database as it completes. Nothing is uploaded.", &o)
	fs.BoolVar(&o.verbose, "v", false, "print progress and the verdicts even when standard error is not a terminal")
	fs.BoolVar(&o.quiet, "q", false, "print nothing but errors, even on a terminal")
	fs.DurationVar(&o.wait, "wait", 0, "when another run holds the database, wait up to `DURATION` for it (default: exit at once with code 5)")
	fs.Var(&o.pruneOlderThan, "prune-older-than", "after a run that completed, prune the observations of runs started more than `DURATION` ago (e.g. 2160h or 90d)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("run: unexpected argument %q", fs.Arg(0))}
	}
	if _, err := applyConfig(env, fs, o.config); err != nil {
		return err
	}
	log := newEventLog(env.stderr, o.logFormat)
	env.events = log
	if err := checkRunFlags(&o); err != nil {
		return err
	}

	cat, err := loadCatalog(o.targets)
	if err != nil {
		return err
	}
	roots, err := tlsprobe.LoadRoots(o.caFiles...)
	if err != nil {
		return usageError{err}
	}
	apple := tlsprobe.EmbeddedApple()
	if o.appleCAFile != "" {
		if apple, err = tlsprobe.LoadAppleTrust(o.appleCAFile); err != nil {
			return usageError{err}
		}
	}
	resolver, err := newResolver(o.resolvConf, log)
	if err != nil {
		return err
	}
	resolver.RootCAs = roots
	doh := []string(o.doh)
	if len(doh) == 0 {
		doh = defaultDoH
	}

	dbPath := o.db
	if dbPath == "" {
		if dbPath, err = defaultDBPath(env); err != nil {
			return err
		}
	}
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The lock comes first: a run still "running" is then certainly dead.
	store, release, err := openLocked(sigCtx, env, log, dbPath, o.wait)
	if err != nil {
		return err
	}
	defer release()
	if n, err := store.MarkUnfinishedRuns(ctx, time.Now().UTC()); err != nil {
		return dbError{explainWriteError(err)}
	} else if n > 0 {
		log.event("runs_marked_interrupted", "runs", n)
	}

	started := time.Now().UTC()
	runID, err := store.BeginRun(ctx, measurements.Run{
		Started: started, Status: measurements.RunRunning, SoftwareVersion: version,
		CatalogDigest: cat.Digest, CatalogName: cat.Name,
	}, cat)
	if err != nil {
		return dbError{explainWriteError(err)}
	}
	log.event("run_started", "run_id", runID, "db", dbPath, "catalog", cat.Name, "catalog_digest", cat.Digest,
		"targets", len(cat.Targets), "repeat", o.repeat, "version", version, "pid", os.Getpid())

	timeout := o.timeout
	if timeout == 0 {
		timeout = time.Duration(o.repeat)*repetitionBudget + time.Duration(o.repeat-1)*o.repeatSpacing
		if o.confirmDelay > 0 {
			timeout += o.confirmDelay + repetitionBudget
		}
	}
	runCtx, cancel := context.WithTimeout(sigCtx, timeout)
	defer cancel()

	spacing := o.repeatSpacing
	if spacing == 0 {
		spacing = -1 // the runner reads 0 as "default"
	}
	// The network is identified while the measurements run, so that on a
	// network where its STUN server is unreachable the wait overlaps the
	// run's own timeouts instead of adding to them.
	var identity <-chan measurements.Identity
	if !o.noNetworkID {
		identity = discoverNetwork(runCtx, o.stunServer, resolver)
	}

	show := (env.stderrIsTerminal && !o.quiet) || o.verbose
	prog := newProgressPrinter(env, show && !log.json())
	tally := newRunTally()
	r := &runner.Runner{
		Catalog: cat, Resolver: resolver, DoHURLs: doh, RootCAs: roots, Apple: apple,
		Parallel: o.parallel, Repeat: o.repeat, RepeatSpacing: spacing,
		Recorder: store, RunID: runID, Progress: func(p runner.Progress) { tally.add(p.Last); prog.update(p) },
		NoPathProbes: o.noPathProbes,
	}
	if v := env.getenv(labASNEnv); v != "" {
		entries, err := parseLabASNs(v)
		if err != nil {
			return usageError{err}
		}
		r.ASLookup = labASLookup(entries, func(a netip.Addr) (uint, string) {
			asn, name, _ := netid.Lookup(a)
			return asn, name
		})
	}
	if o.confirmDelay > 0 {
		r.ConfirmDelay = o.confirmDelay
		r.Confirm = func(ctx context.Context) (runner.ConfirmPlan, error) {
			return planConfirmation(ctx, store, runID, cat)
		}
		r.Confirming = func(plan runner.ConfirmPlan, delay time.Duration) {
			n := len(plan.Endpoints) + len(plan.Names)
			log.event("confirming", "run_id", runID, "endpoints", len(plan.Endpoints), "names", len(plan.Names),
				"port_checks", len(plan.PortChecks), "traces", len(plan.Traces), "reset_traces", len(plan.ResetTraces),
				"tcp_traces", len(plan.TCPTraces), "delay", delay.String())
			prog.note(fmt.Sprintf("confirming %d endpoints and names in %s", n, delay))
		}
	}
	summary, runErr := r.Run(runCtx)
	prog.done()

	status := measurements.RunComplete
	var result error
	switch {
	case errors.Is(runErr, runner.ErrRecord):
		status, result = measurements.RunFailed, dbError{explainWriteError(runErr)}
	case sigCtx.Err() != nil:
		status, result = measurements.RunInterrupted, interruptedError{fmt.Errorf("run %d interrupted; the observations that finished are stored", runID)}
	case runCtx.Err() != nil:
		status, result = measurements.RunFailed, fmt.Errorf("run %d did not finish within %s; the observations that finished are stored", runID, timeout)
	}
	if err := store.EndRun(context.WithoutCancel(ctx), runID, status, time.Now().UTC()); err != nil && result == nil {
		result = dbError{explainWriteError(err)}
	}
	tally.report(log, cat, runID, status, started, result)
	// A database that could not store an observation would not store the
	// network either; the run's error says why.
	if identity != nil && !errors.Is(runErr, runner.ErrRecord) {
		recordNetwork(ctx, store, runID, <-identity, log)
	}
	if result == nil && o.pruneOlderThan > 0 {
		result = pruneDatabase(ctx, env, store, log, time.Duration(o.pruneOlderThan), false, show)
	}
	judged := map[int64]analysis.Report{}
	if !errors.Is(runErr, runner.ErrRecord) {
		if rep, ok := tellVerdicts(ctx, env, log, store, dbPath, runID, summary, show); ok {
			judged[runID] = rep
		}
	}
	if result == nil {
		// The history reads these instead of judging each run again.
		if _, err := keepVerdicts(ctx, store, judged); err != nil {
			log.warn(fmt.Sprintf("keeping the runs' verdicts for the history: %v", err))
		}
	}
	return result
}

// loadCatalog returns the --targets catalog, or the embedded default.
func loadCatalog(path string) (measurements.Catalog, error) {
	if path == "" {
		cat, err := catalog.Default()
		if err != nil {
			return cat, fmt.Errorf("embedded catalog: %w", err)
		}
		return cat, nil
	}
	cat, err := catalog.Load(path)
	if err != nil {
		return cat, usageError{err}
	}
	return cat, nil
}

// newResolver builds the DNS engines. With the default resolv.conf the
// system engine is Go's resolver as applications in this binary see it; a
// different file (a test or a lab) points the system engine at the file's
// first nameserver too, so one file steers all plain DNS.
func newResolver(path string, log *eventLog) (*dnsprobe.Resolver, error) {
	servers, err := dnsprobe.ReadResolvConf(path)
	if err != nil {
		if path != defaultResolvConf {
			return nil, usageError{err}
		}
		// A host without resolv.conf still has a system resolver; the
		// plain engine has nothing to query and is left out.
		log.warn(fmt.Sprintf("%v; plain DNS is not measured", err))
		return &dnsprobe.Resolver{}, nil
	}
	r := &dnsprobe.Resolver{Nameservers: servers}
	if path != defaultResolvConf {
		first := servers[0]
		r.System = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, first)
		}}
	}
	return r, nil
}

// defaultDBPath is $XDG_DATA_HOME/reachprobe/reachprobe.db, with the XDG
// fallback of ~/.local/share.
func defaultDBPath(env *environ) (string, error) {
	dir := env.getenv("XDG_DATA_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home := env.getenv("HOME")
		if home == "" {
			return "", usageError{errors.New("neither XDG_DATA_HOME nor HOME is set: give the database with --db")}
		}
		dir = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(dir, "reachprobe", "reachprobe.db"), nil
}

func openStore(ctx context.Context, env *environ, path string) (*measurements.Store, error) {
	if path == "" {
		var err error
		if path, err = configuredDBPath(env, ""); err != nil {
			return nil, err
		}
	}
	// Readers only read (see lock.go's openLocked for writers).
	s, err := measurements.OpenReadOnly(ctx, path, measurements.ReadOptions{WriterActive: func() bool { return writerActive(path) }})
	if err != nil {
		return nil, dbError{err}
	}
	return s, nil
}

// progressPrinter draws one status line on a terminal, or one line per
// target finished when asked for progress off a terminal.
type progressPrinter struct {
	env  *environ
	show bool
	mu   sync.Mutex
	last time.Time
	line bool
}

// progressInterval limits redraws so a fast run does not flood a slow
// terminal.
const progressInterval = 100 * time.Millisecond

func newProgressPrinter(env *environ, show bool) *progressPrinter {
	return &progressPrinter{env: env, show: show}
}

func (p *progressPrinter) update(pr runner.Progress) {
	if !p.show {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < progressInterval {
		return
	}
	p.last = time.Now()
	if p.env.stderrIsTerminal {
		fmt.Fprintf(p.env.stderr, "\r\033[Kmeasuring: repetition %d, targets %d/%d done, %d observations", pr.Repeat+1, pr.TargetsDone, pr.Targets, pr.Observations)
		p.line = true
		return
	}
	fmt.Fprintf(p.env.stderr, "measuring: repetition %d, targets %d/%d done, %d observations\n", pr.Repeat+1, pr.TargetsDone, pr.Targets, pr.Observations)
}

// note prints a line of its own (a phase of the run), above the status
// line on a terminal.
func (p *progressPrinter) note(msg string) {
	if !p.show {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.line {
		fmt.Fprint(p.env.stderr, "\r\033[K")
		p.line = false
	}
	fmt.Fprintln(p.env.stderr, msg)
}

func (p *progressPrinter) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.line {
		fmt.Fprint(p.env.stderr, "\r\033[K")
	}
}
