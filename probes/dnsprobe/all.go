package dnsprobe

import (
	"context"
	"sync"

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
// stop the others.
func (r *Resolver) LookupAll(ctx context.Context, host string, dohURLs []string) []*measurements.Observation {
	qtypes := []uint16{dns.TypeA, dns.TypeAAAA}
	slots := make([][]*measurements.Observation, 1+len(qtypes)*(len(r.Nameservers)+len(dohURLs)))
	var wg sync.WaitGroup
	wg.Go(func() { slots[0] = r.LookupSystem(ctx, host) })
	i := 1
	for _, server := range r.Nameservers {
		for _, qt := range qtypes {
			slot := i
			wg.Go(func() { slots[slot] = r.LookupPlain(ctx, server, host, qt) })
			i++
		}
	}
	for _, url := range dohURLs {
		for _, qt := range qtypes {
			slot := i
			wg.Go(func() { slots[slot] = []*measurements.Observation{r.LookupDoH(ctx, url, host, qt)} })
			i++
		}
	}
	wg.Wait()
	var out []*measurements.Observation
	for _, s := range slots {
		out = append(out, s...)
	}
	return out
}
