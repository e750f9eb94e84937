// Package runner measures a catalog: it resolves every target, then runs
// the TCP, TLS, QUIC and STUN steps against every address and port under a
// bounded pool, and hands each observation to a Recorder as it completes.
//
// # Design
//
// Parallel workers take the targets in catalog order; inside a target,
// every (address, port) pair is its own job, so a network that drops every
// packet costs about one step timeout per Parallel targets, not targets ×
// timeout. The pool (Parallel) bounds the number of jobs in flight, and the
// goroutines and memory of a run grow with Parallel, not with the catalog.
// A target measures at most measurements.MaxAddressesPerFamily addresses
// of each family, whatever its resolvers answer. A failed step is data in the observation; the only
// errors Run returns are a Recorder that cannot store (a full disk) and bad
// configuration.
//
// For a TLS target the order on each address and port is: TCP connect, the
// handshake with the control server name on that connection (the SNI swap),
// then the handshake with the target's server name on a new connection.
// The control goes first so that a residual block triggered by the target
// name cannot spoil it.
//
// A target's connections start once every DNS engine has its first
// response, while the plain lookups go on listening for late responses
// (the signature of an injector racing the resolver). A window ends as
// soon as injection is moot: when the first response agrees with the
// encrypted control, or a handshake for the target's name verified at
// its addresses (see windows); a first response that disagrees keeps the
// full window. The lookups are recorded once their windows end, and the
// addresses only late responses gave are measured then.
//
// The runner is not where observations are judged (that is analysis) nor
// stored (that is the Recorder, usually a measurements.Store).
package runner

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/dnsprobe"
	"github.com/reachprobe/reachprobe/probes/failure"
	"github.com/reachprobe/reachprobe/probes/netid"
	"github.com/reachprobe/reachprobe/probes/quicprobe"
	"github.com/reachprobe/reachprobe/probes/stunprobe"
	"github.com/reachprobe/reachprobe/probes/tlsprobe"
)

// DefaultParallel bounds the jobs in flight. The default catalog has about
// sixty (address, port) jobs; letting them all run at once is what keeps a
// run against a network that drops everything to about one step timeout,
// and sixty-four sockets are nothing even for a small home machine.
const DefaultParallel = 64

// DefaultRepeatSpacing is the pause between repetitions of a run's
// measurements. Censors keep a "residual" block on a (client, server, port)
// triple for 60 to 180 seconds after a trigger; waiting the longest of
// those keeps one try from deciding the next.
const DefaultRepeatSpacing = 180 * time.Second

// DefaultConfirmDelay is the pause before the confirmation pass re-measures
// what the first passes left suspect. A peering flap, a routing change or
// a burst of congestion on the path to Apple typically lasts seconds; half
// a minute outlasts them without making a run that found something much
// longer. A censor's residual block (60-180 s) may still hold then, which
// analysis reads as the same block.
const DefaultConfirmDelay = 30 * time.Second

// Recorder stores observations as they complete. It must be safe for
// concurrent use.
type Recorder interface {
	AddObservation(ctx context.Context, o *measurements.Observation) error
}

// Runner measures one catalog. Fields left zero take the documented
// defaults.
type Runner struct {
	Catalog measurements.Catalog
	// Resolver resolves every target; nil means a dnsprobe.Resolver with
	// no plain nameserver (system and DoH engines only).
	Resolver *dnsprobe.Resolver
	// DoHURLs are the encrypted DNS controls.
	DoHURLs []string
	// RootCAs verifies TLS and QUIC chains; nil means the system roots.
	RootCAs *x509.CertPool
	// Apple verifies the chains of Apple's targets too (see appleFor);
	// nil means the embedded Apple roots (tlsprobe.EmbeddedApple).
	Apple *tlsprobe.AppleTrust
	// Parallel bounds the jobs in flight; 0 means DefaultParallel.
	Parallel int
	// Repeat is how many times every measurement runs; 0 means once.
	Repeat int
	// RepeatSpacing is the pause between repetitions; 0 means
	// DefaultRepeatSpacing, a negative value no pause (tests).
	RepeatSpacing time.Duration
	// Recorder receives every observation; it is required.
	Recorder Recorder
	// RunID is copied into every observation.
	RunID int64
	// Progress, when set, is called after each observation is recorded,
	// from many goroutines at once.
	Progress func(Progress)
	// HasRoute reports whether the host can send to addr; nil means a
	// route lookup by the kernel (a UDP connect, which sends nothing).
	HasRoute func(addr netip.Addr) bool
	// Confirm, when set, is called once every repetition is done and
	// returns what to measure again in the confirmation pass (usually the
	// analysis's candidates, judged from what was recorded). An empty plan
	// ends the run at once: a clean run pays nothing for it.
	Confirm func(ctx context.Context) (ConfirmPlan, error)
	// ConfirmDelay is the pause before the confirmation pass; 0 means
	// DefaultConfirmDelay, a negative value no pause (tests).
	ConfirmDelay time.Duration
	// NoPathProbes turns off the probes that are more visible on the
	// wire than a handshake: the arrival step's unusual datagrams (a QUIC
	// Initial with a reserved version, random bytes) and TTL-limited
	// traces. The zero value sends them.
	NoPathProbes bool
	// ASLookup maps a trace's hop addresses to their networks; nil means
	// the embedded ASN database (probes/netid). Labs pass their own.
	ASLookup func(netip.Addr) (asn uint, name string)
	// Confirming, when set, is told what the confirmation pass will
	// measure and after how long, before the pause.
	Confirming func(plan ConfirmPlan, delay time.Duration)
}

// Progress reports a run's advance.
type Progress struct {
	Repeat       int
	TargetsDone  int
	Targets      int
	Observations int
	Last         *measurements.Observation
}

// ErrRecord wraps a Recorder failure, which stops the run: measuring on
// without storing would lose what the user asked for.
var ErrRecord = errors.New("storing an observation failed")

// Run measures every target Repeat times. It returns what it measured so
// far and an error wrapping ErrRecord if the Recorder failed, or the
// context's error if ctx ended first.
func (r *Runner) Run(ctx context.Context) (*Summary, error) {
	if r.Recorder == nil {
		return nil, errors.New("runner: no Recorder")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s := &state{r: r, cancel: cancel, summary: newSummary(), parent: ctx, res: r.Resolver}
	if s.res == nil {
		s.res = &dnsprobe.Resolver{}
	}
	// The DoH connections the lookups shared end with the run.
	defer s.res.CloseIdleConnections()
	parallel := r.Parallel
	if parallel <= 0 {
		parallel = DefaultParallel
	}
	s.pool = make(chan struct{}, parallel)
	repeat := max(r.Repeat, 1)
	spacing := r.RepeatSpacing
	if spacing == 0 {
		spacing = DefaultRepeatSpacing
	}
	for i := 0; i < repeat; i++ {
		if i > 0 && spacing > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(spacing):
			}
		}
		if ctx.Err() != nil {
			break
		}
		s.measureAll(ctx, i)
	}
	if r.Confirm != nil && ctx.Err() == nil {
		if err := s.confirm(ctx, repeat); err != nil {
			return s.summary, err
		}
	}
	if cause := context.Cause(ctx); errors.Is(cause, ErrRecord) {
		return s.summary, cause
	}
	return s.summary, ctx.Err()
}

// state is one Run's shared bookkeeping.
type state struct {
	r      *Runner
	res    *dnsprobe.Resolver // Runner.Resolver or the default
	parent context.Context
	cancel context.CancelCauseFunc
	pool   chan struct{}

	mu           sync.Mutex
	summary      *Summary
	observations int
	targetsDone  int
}

func (s *state) measureAll(ctx context.Context, repeat int) {
	s.mu.Lock()
	s.targetsDone = 0
	s.mu.Unlock()
	// A fixed set of workers takes the targets in catalog order: memory
	// stays bounded by the pool, not by the catalog's size (a goroutine
	// per target made 100,000 targets cost half a gigabyte before the
	// first was measured).
	targets := make(chan *measurements.Target)
	var wg sync.WaitGroup
	for range min(cap(s.pool), len(s.r.Catalog.Targets)) {
		wg.Go(func() {
			for t := range targets {
				s.measureTarget(ctx, t, repeat)
				s.mu.Lock()
				s.targetsDone++
				s.mu.Unlock()
			}
		})
	}
	for i := range s.r.Catalog.Targets {
		if ctx.Err() != nil {
			break
		}
		select {
		case targets <- &s.r.Catalog.Targets[i]:
		case <-ctx.Done():
		}
	}
	close(targets)
	wg.Wait()
}

// acquire takes a pool slot; false when ctx ended first.
func (s *state) acquire(ctx context.Context) bool {
	select {
	case s.pool <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *state) release() { <-s.pool }

func (s *state) measureTarget(ctx context.Context, t *measurements.Target, repeat int) {
	if !s.acquire(ctx) {
		return
	}
	lookups := s.resolver().Start(ctx, t.Host, s.r.DoHURLs)
	first := lookups.First()
	s.release()
	netid.AnnotateFirstAnswers(first)
	// Chosen before recording: it marks the answers left unmeasured.
	addrs := dnsprobe.Addresses(first)
	// The connections start at the first responses, while the plain
	// lookups listen on; windows ends each window once injection is moot.
	win := newWindows(t, lookups, first)
	var wg sync.WaitGroup
	s.measureAddrs(ctx, t, repeat, addrs, win.saw, &wg)
	dnsObs := lookups.Wait()
	netid.AnnotateAnswers(dnsObs) // the late responses' answers too
	for _, o := range dnsObs {
		s.record(ctx, t, repeat, o)
	}
	// Addresses of late responses too: a verified handshake there shows a
	// second answer is the name's (analysis tells them apart).
	s.measureAddrs(ctx, t, repeat, dnsprobe.LateAddresses(dnsObs), nil, &wg)
	wg.Wait()
}

// measureAddrs starts a job per address and port of t on wg (see
// measureEndpointAs for each), and records the addresses not measured.
func (s *state) measureAddrs(ctx context.Context, t *measurements.Target, repeat int, addrs []netip.Addr, each func(*measurements.Observation), wg *sync.WaitGroup) {
	for _, addr := range addrs {
		if skip := s.skipReason(t, addr); skip != "" {
			for _, port := range t.Ports {
				s.recordSkipped(ctx, t, repeat, addr, port, skip)
			}
			continue
		}
		for _, port := range t.Ports {
			ap := netip.AddrPortFrom(addr, uint16(port))
			wg.Go(func() {
				if !s.acquire(ctx) {
					return
				}
				defer s.release()
				s.measureEndpointAs(ctx, t, repeat, ap, each)
			})
		}
	}
}

// resolver is the Runner's resolver, or one with the system and DoH
// engines only.
func (s *state) resolver() *dnsprobe.Resolver { return s.res }

// measureEndpointAs runs every step the target asks for on one address
// and port, in the order the package documentation gives; each, when
// set, is called with every observation before it is recorded.
func (s *state) measureEndpointAs(ctx context.Context, t *measurements.Target, repeat int, ap netip.AddrPort, each func(*measurements.Observation)) {
	rec := func(o *measurements.Observation) {
		if o != nil && each != nil {
			each(o)
		}
		s.record(ctx, t, repeat, o)
	}
	if t.Has("tcp") || t.Has("tls") {
		conn, o := tlsprobe.Connect(ctx, ap)
		rec(o)
		if conn != nil && t.Has("tls") && t.ControlServerName != t.ServerName {
			cfg := tlsprobe.Config{ServerName: t.ControlServerName, ALPN: t.ALPN, RootCAs: s.r.RootCAs, Apple: s.r.appleFor(t)}
			c := tlsprobe.Handshake(ctx, conn, ap, cfg)
			c.Control = true
			rec(c)
		}
		if conn != nil {
			conn.Close()
		}
		if conn != nil && t.Has("tls") {
			cfg := tlsprobe.Config{ServerName: t.ServerName, ALPN: t.ALPN, RootCAs: s.r.RootCAs, Apple: s.r.appleFor(t)}
			rec(tlsprobe.DialHandshake(ctx, ap, cfg))
		}
	}
	if t.Has("quic") {
		cfg := quicprobe.Config{ServerName: t.ServerName, ALPN: t.ALPN, RootCAs: s.r.RootCAs, Apple: s.r.appleFor(t)}
		rec(quicprobe.Handshake(ctx, ap, cfg))
	}
	if t.Has("udp") {
		stun := stunprobe.Binding(ctx, ap, t.STUNAnswers)
		rec(stun)
		// A STUN answer already proves a datagram of a kind FaceTime sends
		// arrived: the arrival step, which waits out its silent kinds,
		// would only make a clean run slower.
		if (stun == nil || stun.Failure != "") && s.wantsArrival(t, int(ap.Port())) {
			rec(measureArrival(ctx, ap))
		}
	}
}

// skipReason says why addr is not measured, or "".
func (s *state) skipReason(t *measurements.Target, addr netip.Addr) string {
	for _, p := range t.Networks {
		// A NAT64 address is judged as the IPv4 address it carries.
		if p.Contains(measurements.UnwrapIPv4(addr)) {
			return s.routeSkip(addr)
		}
	}
	if measurements.IsBogon(addr) {
		return measurements.SkipBogon
	}
	return s.routeSkip(addr)
}

func (s *state) routeSkip(addr netip.Addr) string {
	if !addr.Is6() || addr.Is4In6() {
		return ""
	}
	has := s.r.HasRoute
	if has == nil {
		has = kernelHasRoute
	}
	if !has(addr) {
		return measurements.SkipNoIPv6Route
	}
	return ""
}

// kernelHasRoute asks the kernel for a route to addr by connecting a UDP
// socket, which sends no packet.
func kernelHasRoute(addr netip.Addr) bool {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 443)))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (s *state) recordSkipped(ctx context.Context, t *measurements.Target, repeat int, addr netip.Addr, port int, reason string) {
	step, transport := measurements.StepTCP, "tcp"
	switch {
	case t.Has("tcp") || t.Has("tls"):
	case t.Has("quic"):
		step, transport = measurements.StepQUIC, "udp"
	case t.Has("udp"):
		step, transport = measurements.StepUDP, "udp"
	}
	s.record(ctx, t, repeat, &measurements.Observation{
		Step: step, Host: t.Host, Address: addr.String(), Port: port, Transport: transport,
		Started: time.Now().UTC(), Skipped: reason,
	})
}

// record fills the fields the steps do not know and hands the observation
// to the Recorder. A step cut short because the run ended is marked
// interrupted: its timeout says nothing about the network.
func (s *state) record(ctx context.Context, t *measurements.Target, repeat int, o *measurements.Observation) {
	if o == nil {
		return
	}
	o.RunID = s.r.RunID
	o.Group = t.Group
	o.Target = t.Name
	if o.Host == "" {
		o.Host = t.Host
	}
	o.Repeat = repeat
	if o.DNS != nil && o.DNS.Engine == measurements.EngineDoH {
		o.Control = true
	}
	if ctx.Err() != nil && o.Failure != "" {
		o.Failure = failure.Interrupted
	}
	// Store even when the run is being interrupted: what finished is kept.
	if err := s.r.Recorder.AddObservation(context.WithoutCancel(ctx), o); err != nil {
		s.cancel(fmt.Errorf("%w: %w", ErrRecord, err))
		return
	}
	s.mu.Lock()
	s.summary.add(o, t.Has("tls"))
	s.observations++
	p := Progress{Repeat: repeat, TargetsDone: s.targetsDone, Targets: len(s.r.Catalog.Targets), Observations: s.observations, Last: o}
	s.mu.Unlock()
	if s.r.Progress != nil {
		s.r.Progress(p)
	}
}
