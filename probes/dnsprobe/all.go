package dnsprobe

import (
	"context"

	"github.com/miekg/dns"
	"github.com/reachprobe/reachprobe/measurements"
)

// LookupAll resolves host with every engine at once: the system resolver
// (A and AAAA), each of Nameservers with plain DNS (A and AAAA, plus TCP
// after truncation) and each of dohURLs (A and AAAA). It returns every
// observation in a fixed order whatever the timing: system A, system
// AAAA, then per nameserver in order its A and AAAA lookups, then per DoH
// URL in order its A and AAAA lookups. The lookups are few (two per
// engine), so each runs in its own goroutine; a failure in one does not
// stop the others. Plain lookups listen for their whole window.
func (r *Resolver) LookupAll(ctx context.Context, host string, dohURLs []string) []*measurements.Observation {
	return r.Start(ctx, host, dohURLs).Wait()
}

// Lookups are one name's lookups in flight (Start): every engine's first
// response comes first (First), and the plain lookups go on listening
// for late responses until their windows run out or are ended (EndWindow,
// Wait).
type Lookups struct {
	// parts hold LookupAll's observations in its order, a part per
	// lookup (a plain one has its TCP fallback with it).
	parts []*lookupPart
}

// lookupPart is one lookup of Lookups.
type lookupPart struct {
	// first closes once obs holds the first responses, done once the
	// lookup is over.
	first, done <-chan struct{}
	obs         func() []*measurements.Observation
	// plain is set for a plain lookup, whose window EndWindow ends.
	plain *plainLookup
}

// Start begins LookupAll's lookups of host and returns at once.
func (r *Resolver) Start(ctx context.Context, host string, dohURLs []string) *Lookups {
	qtypes := []uint16{dns.TypeA, dns.TypeAAAA}
	l := &Lookups{}
	single := func(lookup func() []*measurements.Observation) {
		done := make(chan struct{})
		var obs []*measurements.Observation
		go func() {
			defer close(done)
			obs = lookup()
		}()
		l.parts = append(l.parts, &lookupPart{first: done, done: done, obs: func() []*measurements.Observation { return obs }})
	}
	single(func() []*measurements.Observation { return r.LookupSystem(ctx, host) })
	for _, server := range r.Nameservers {
		for _, qt := range qtypes {
			p := r.startPlain(ctx, server, host, qt)
			l.parts = append(l.parts, &lookupPart{first: p.first, done: p.done, obs: p.observations, plain: p})
		}
	}
	for _, url := range dohURLs {
		for _, qt := range qtypes {
			single(func() []*measurements.Observation {
				return []*measurements.Observation{r.LookupDoH(ctx, url, host, qt)}
			})
		}
	}
	return l
}

// First waits for the first response (or the failure) of every lookup
// and returns the observations in LookupAll's order. The plain lookups
// go on listening: until Wait returns, the caller may read and annotate
// these observations but not their listening fields (Late, LateDropped,
// LateDroppedBytes, Listened, ListenCut), which the lookups fill when
// their windows end.
func (l *Lookups) First() []*measurements.Observation {
	var out []*measurements.Observation
	for _, p := range l.parts {
		<-p.first
		out = append(out, p.obs()...)
	}
	return out
}

// EndWindow ends the listening window of o, a plain UDP lookup among
// First's observations, now, recording reason (measurements.ListenCut*)
// in its ListenCut: responses already arrived are still recorded, later
// ones are not listened for. A window that is over, or an o that is no
// plain UDP lookup of l, is left alone.
func (l *Lookups) EndWindow(o *measurements.Observation, reason string) {
	if reason == "" {
		return
	}
	for _, p := range l.parts {
		if p.plain != nil && p.plain.obs == o {
			p.plain.win.end(reason)
			return
		}
	}
}

// Wait waits until every lookup is over, windows included, and returns
// the observations in LookupAll's order.
func (l *Lookups) Wait() []*measurements.Observation {
	var out []*measurements.Observation
	for _, p := range l.parts {
		<-p.done
		out = append(out, p.obs()...)
	}
	return out
}
