package pathprobe

import (
	"context"
	"errors"
	"sync"
	"time"
)

// The default budget of one run's path probes. Routers rate-limit the
// ICMP errors they send per destination (Linux: a burst of about 6, then
// one a second), and every trace of a run has the same destination, the
// volunteer; at a shared hop (the first routers of the access network)
// concurrent traces draw on one router's allowance.
const (
	// DefaultProbeInterval spaces any two probes of a run, across all
	// traces. A TTL's test and control probes reach the same router, so
	// each trace costs a router 2 ICMP errors per round, and with
	// MaxConcurrentTraces traces in step a shared router sees at most 6
	// at once: within the Linux burst. A round of a 15-hop path takes
	// 15 × 2 × 100 ms = 3 s per trace, so the burst has refilled before
	// the next round returns.
	DefaultProbeInterval = 100 * time.Millisecond
	// DefaultMaxProbes caps a run's probes. A trace of a 15-hop path
	// sends at most about 64 (see the package doc) and a reset trace 2
	// per TTL up to the injector, so 600 covers the handful of
	// candidates a run with blocks traces. A run that needs more leaves
	// the rest unknown (Trace.BudgetSpent).
	DefaultMaxProbes = 600
	// DefaultMaxDuration caps the time a run spends tracing, from the
	// Budget's creation: a run with blocks stays about a minute longer
	// than a clean one, never more.
	DefaultMaxDuration = 90 * time.Second
	// MaxConcurrentTraces bounds the traces in flight per Budget (see
	// DefaultProbeInterval for why 3).
	MaxConcurrentTraces = 3
)

// ErrBudgetExhausted reports that a run has spent its probes or its time:
// what remains unprobed stays unknown.
var ErrBudgetExhausted = errors.New("pathprobe: the run's probe budget is spent")

// Budget paces and caps the probes of one run. One Budget is shared by
// every trace of the run; it is safe for concurrent use.
type Budget struct {
	interval  time.Duration
	maxProbes int
	deadline  time.Time
	slots     chan struct{}

	mu   sync.Mutex
	sent int
	next time.Time // the earliest time the next probe may leave
}

// NewBudget returns a budget of maxProbes probes, spaced by interval,
// spent within maxDuration from now.
func NewBudget(maxProbes int, maxDuration, interval time.Duration) *Budget {
	return &Budget{
		interval:  interval,
		maxProbes: maxProbes,
		deadline:  time.Now().Add(maxDuration),
		slots:     make(chan struct{}, MaxConcurrentTraces),
	}
}

// NewDefaultBudget returns the budget of one run with the default limits.
func NewDefaultBudget() *Budget {
	return NewBudget(DefaultMaxProbes, DefaultMaxDuration, DefaultProbeInterval)
}

// Sent returns how many probes the budget has let out.
func (b *Budget) Sent() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sent
}

// take waits for the next probe's turn and counts it. It returns
// ErrBudgetExhausted when the probes or the time are spent, and ctx's
// error when ctx ends first.
func (b *Budget) take(ctx context.Context) error {
	b.mu.Lock()
	now := time.Now()
	at := now
	if b.next.After(now) {
		at = b.next
	}
	if b.sent >= b.maxProbes || at.After(b.deadline) {
		b.mu.Unlock()
		return ErrBudgetExhausted
	}
	b.sent++
	b.next = at.Add(b.interval)
	b.mu.Unlock()
	return sleep(ctx, at.Sub(now))
}

// acquire holds one of the MaxConcurrentTraces trace slots until release
// is called.
func (b *Budget) acquire(ctx context.Context) (release func(), err error) {
	select {
	case b.slots <- struct{}{}:
		return func() { <-b.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
