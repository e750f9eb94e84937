package pathprobe

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestBudgetPacesAndCaps: in a bubble's fake time, five probes spaced by
// 100 ms take 400 ms, and the sixth is refused.
func TestBudgetPacesAndCaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(5, time.Hour, 100*time.Millisecond)
		start := time.Now()
		for i := 0; i < 5; i++ {
			if err := b.take(context.Background()); err != nil {
				t.Fatalf("probe %d: %v", i, err)
			}
		}
		if got := time.Since(start); got != 400*time.Millisecond {
			t.Errorf("5 probes took %v, want 400ms", got)
		}
		if err := b.take(context.Background()); !errors.Is(err, ErrBudgetExhausted) {
			t.Errorf("sixth probe: %v, want ErrBudgetExhausted", err)
		}
		if b.Sent() != 5 {
			t.Errorf("Sent() = %d, want 5", b.Sent())
		}
	})
}

// TestBudgetDeadline: a probe whose turn would come after the budget's
// time is refused.
func TestBudgetDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(100, 250*time.Millisecond, 100*time.Millisecond)
		n := 0
		for b.take(context.Background()) == nil {
			n++
		}
		if n != 3 { // at 0, 100 and 200 ms
			t.Errorf("%d probes within 250ms at 100ms spacing, want 3", n)
		}
	})
}

// TestBudgetTraceSlots: at most MaxConcurrentTraces traces hold a slot.
func TestBudgetTraceSlots(t *testing.T) {
	b := NewDefaultBudget()
	var releases []func()
	for i := 0; i < MaxConcurrentTraces; i++ {
		r, err := b.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.acquire(ctx); err == nil {
		t.Fatal("a slot beyond MaxConcurrentTraces was granted")
	}
	releases[0]()
	if _, err := b.acquire(context.Background()); err != nil {
		t.Fatalf("after a release: %v", err)
	}
}
