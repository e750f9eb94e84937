package pathprobe

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/reachprobe/reachprobe/probes/failure"
)

// Defaults of a trace.
const (
	// DefaultMaxTTL is the farthest hop probed: paths on the internet are
	// rarely longer than 30 hops.
	DefaultMaxTTL = 30
	// DefaultRounds is how many times each TTL is probed per flow: two,
	// so no conclusion rests on one slot (Decide needs MinSilentSlots).
	DefaultRounds = 2
	// DefaultReplyTimeout is the wait for one probe's reply: routers
	// answer within a round trip plus the slow path that builds ICMP,
	// well under a second. A reply later than this could be taken for
	// the next probe's, so the queue is drained before each probe.
	DefaultReplyTimeout = time.Second
	// DefaultConfirmPause is the wait before a candidate stop's next TTL
	// is probed again: two seconds give a Linux router two tokens of its
	// ICMP rate limit back, so a stop that was only a rate-limited slot
	// shows up as such.
	DefaultConfirmPause = 2 * time.Second
	// GapLimit ends a round's sweep after this many consecutive TTLs at
	// which neither flow drew anything: past it lie routers that send no
	// ICMP, or nothing.
	GapLimit = 3
	// DefaultUDPPayloadSize is the size of a UDP probe's payload when the
	// flow gives none.
	DefaultUDPPayloadSize = 32
)

// Skip reasons of a trace.
const (
	// SkipNoRecvErr: the system cannot queue ICMP errors on an ordinary
	// socket (IP_RECVERR is Linux's), so no hop can be read.
	SkipNoRecvErr = "no_ip_recverr"
)

// Flow is one flow of a trace: its protocol and destination, constant
// across TTLs.
type Flow struct {
	Network string         `json:"network"` // "udp" or "tcp" (a SYN)
	Dst     netip.AddrPort `json:"-"`
	// Payload of each UDP probe; nil sends DefaultUDPPayloadSize zero
	// bytes. A trace of a datagram kind that a filter drops (a QUIC
	// Initial, a STUN request) passes that datagram here.
	Payload []byte `json:"-"`
}

func (f Flow) payload() []byte {
	if f.Payload != nil {
		return f.Payload
	}
	return make([]byte, DefaultUDPPayloadSize)
}

// Config is one trace: a test flow and the control it is compared with.
type Config struct {
	Test, Control Flow
	// Budget is the run's, shared by its traces; nil gives this trace a
	// budget of its own with the default limits.
	Budget *Budget
	// DestinationHop is the hop of the test's destination when another
	// trace found it (Stop.DestinationHop of a trace whose control went
	// to the test's address). A trace whose control goes to another
	// address places no stop without it; see Destination.
	DestinationHop int
	// Zero values mean the Default* constants.
	MaxTTL       int
	Rounds       int
	ReplyTimeout time.Duration
	ConfirmPause time.Duration
}

// Trace is the record of one trace.
type Trace struct {
	Test    Flow `json:"test"`
	Control Flow `json:"control"`
	// Hops lists every probe in the order sent.
	Hops []Hop `json:"hops"`
	Stop Stop  `json:"stop"`
	// Probes counts the probes sent.
	Probes   int           `json:"probes"`
	Started  time.Time     `json:"-"`
	Duration time.Duration `json:"duration"`
	// Skipped says why the trace was not made (SkipNoRecvErr).
	Skipped string `json:"skipped,omitempty"`
	// Failure is a local failure (the sockets could not be made) or an
	// interruption, in failure's vocabulary.
	Failure string `json:"failure,omitempty"`
	// BudgetSpent says the run's Budget ran out before the trace was
	// complete: what it did not probe is unknown.
	BudgetSpent bool `json:"budget_spent,omitempty"`
}

// Run traces cfg's two flows and decides where the test flow stops. A
// failure is recorded in the Trace, never returned.
func Run(ctx context.Context, cfg Config) *Trace {
	tr := &Trace{Test: cfg.Test, Control: cfg.Control, Started: time.Now().UTC()}
	defer func() { tr.Duration = time.Since(tr.Started) }()
	cfg = cfg.withDefaults()

	release, err := cfg.Budget.acquire(ctx)
	if err != nil {
		tr.Failure = failure.Classify(err)
		tr.Stop = Stop{Reason: "not traced: " + tr.Failure}
		return tr
	}
	defer release()

	var probers [2]prober
	for i, f := range []Flow{cfg.Test, cfg.Control} {
		p, err := newProber(ctx, f)
		if err != nil {
			if errors.As(err, new(errNoRecvErr)) || errors.Is(err, errUnsupported) {
				tr.Skipped = SkipNoRecvErr
				tr.Stop = Stop{Reason: "not traced: this system cannot read ICMP errors on an ordinary socket"}
			} else {
				tr.Failure = failure.Classify(err)
				tr.Stop = Stop{Reason: "not traced: " + tr.Failure}
			}
			for _, q := range probers[:i] {
				q.close()
			}
			return tr
		}
		probers[i] = p
	}
	defer probers[0].close()
	defer probers[1].close()

	t := &tracer{cfg: cfg, probers: probers, trace: tr}
	err = t.run(ctx)
	tr.Stop = Decide(tr.Hops, cfg.destination())
	if err != nil {
		if errors.Is(err, ErrBudgetExhausted) {
			tr.BudgetSpent = true
		} else {
			tr.Failure = failure.Classify(err)
		}
		if !tr.Stop.Known {
			cut := "the run's probe budget is spent"
			if !tr.BudgetSpent {
				cut = tr.Failure
			}
			tr.Stop.Reason += " (tracing cut short: " + cut + ")"
		}
	}
	return tr
}

// destination is what Decide knows of the test's destination.
func (c Config) destination() Destination {
	same := c.Test.Dst.Addr().Unmap() == c.Control.Dst.Addr().Unmap()
	return Destination{SameAddress: same, Hop: c.DestinationHop}
}

func (c Config) withDefaults() Config {
	if c.Budget == nil {
		c.Budget = NewDefaultBudget()
	}
	if c.MaxTTL <= 0 {
		c.MaxTTL = DefaultMaxTTL
	}
	if c.Rounds <= 0 {
		c.Rounds = DefaultRounds
	}
	if c.ReplyTimeout <= 0 {
		c.ReplyTimeout = DefaultReplyTimeout
	}
	if c.ConfirmPause <= 0 {
		c.ConfirmPause = DefaultConfirmPause
	}
	return c
}

// tracer runs the rounds of one trace.
type tracer struct {
	cfg     Config
	probers [2]prober // test, control
	trace   *Trace
}

// run sweeps the TTLs Rounds times, then probes a candidate stop's next
// TTL again after ConfirmPause.
func (t *tracer) run(ctx context.Context) error {
	// Round 1 finds how far to go: up to the control's destination, or
	// GapLimit silent TTLs.
	last, gap := 0, 0
	for ttl := 1; ttl <= t.cfg.MaxTTL; ttl++ {
		test, control, err := t.pair(ctx, ttl)
		if err != nil {
			return err
		}
		last = ttl
		// Past the control's destination only a test destination known
		// to be farther is worth probing toward.
		if arrived(test) || (arrived(control) && ttl >= t.cfg.DestinationHop) {
			break
		}
		if test.Reply == ReplyNone && control.Reply == ReplyNone {
			if gap++; gap >= GapLimit {
				break
			}
		} else {
			gap = 0
		}
	}
	// Later rounds need only reach a little past the test flow's last
	// hop: that is where Decide looks.
	// The limit is recomputed as the round goes, since a hop the test
	// flow draws now (its reply lost or rate-limited in round 1) moves
	// the place to look.
	for round := 2; round <= t.cfg.Rounds; round++ {
		for ttl := 1; ttl <= min(last, t.lastTestHop()+2); ttl++ {
			if _, _, err := t.pair(ctx, ttl); err != nil {
				return err
			}
		}
	}
	stop := Decide(t.trace.Hops, t.cfg.destination())
	if !stop.Known {
		return nil
	}
	if err := sleep(ctx, t.cfg.ConfirmPause); err != nil {
		return err
	}
	_, _, err := t.pair(ctx, stop.Hop+1)
	return err
}

// arrived reports a probe that got to the destination, or drew a reset
// that may be the destination's: farther TTLs would draw the same.
func arrived(h Hop) bool { return h.Reply == ReplyDestination || h.Reply == ReplyReset }

// lastTestHop is the highest TTL at which a router answered the test.
func (t *tracer) lastTestHop() int {
	last := 0
	for _, h := range t.trace.Hops {
		if h.Role == RoleTest && h.Reply != ReplyNone {
			last = max(last, h.TTL)
		}
	}
	return last
}

// pair probes the test and the control flow at ttl, side by side: the
// test leaves first, the control a probe interval later, and both wait
// for their replies at once.
func (t *tracer) pair(ctx context.Context, ttl int) (test, control Hop, err error) {
	var hops [2]Hop
	var errs [2]error
	var wg sync.WaitGroup
	ready := make(chan struct{})
	for i, role := range []string{RoleTest, RoleControl} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 1 {
				<-ready // the control takes its turn after the test
			}
			errs[i] = t.cfg.Budget.take(ctx)
			if i == 0 {
				close(ready)
			}
			if errs[i] != nil {
				return
			}
			hops[i], errs[i] = t.probers[i].probe(ctx, ttl, t.cfg.ReplyTimeout)
			hops[i].Role = role
		}()
	}
	wg.Wait()
	for i := range hops {
		if errs[i] == nil {
			t.trace.Hops = append(t.trace.Hops, hops[i])
			t.trace.Probes++
		}
	}
	if err := errors.Join(errs[0], errs[1]); err != nil {
		return hops[0], hops[1], err
	}
	return hops[0], hops[1], nil
}

// ASLookup maps an address to its network: probes/netid.Lookup, with
// the country dropped, fits.
type ASLookup func(netip.Addr) (asn uint, name string)

// Annotate fills in the AS of every hop address and of the stop's with
// lookup. The package leaves it to the caller, who holds the ASN
// database, so that a trace can be judged by AS where its addresses must
// not be exported.
func (t *Trace) Annotate(lookup ASLookup) {
	for i := range t.Hops {
		if a := t.Hops[i].From; a.IsValid() {
			t.Hops[i].ASN, t.Hops[i].ASName = lookup(a)
		}
	}
	if a := t.Stop.Addr; a.IsValid() {
		t.Stop.ASN, t.Stop.ASName = lookup(a)
	}
}
