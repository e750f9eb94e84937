package dnsprobe

import (
	"context"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
)

// LookupSystem resolves host with the system resolver, the one
// applications use, and returns two observations, Engine "system": the
// IPv4 lookup (QueryType "A") and the IPv6 one ("AAAA"), made
// concurrently, each bounded by LookupTimeout. The system resolver hides
// the wire: Resolver, Transport, Rcode and TransactionID stay empty and
// answers carry the query name and TTL 0.
//
// The system resolver reports "no such host" both for a name that does
// not exist and for a name without an address of the family asked. When
// the other family has addresses the name exists, so that lookup records
// dns_no_answer, not dns_nxdomain_error, as OONI does.
func (r *Resolver) LookupSystem(ctx context.Context, host string) []*measurements.Observation {
	families := []struct {
		network string
		qtype   uint16
	}{{"ip4", dns.TypeA}, {"ip6", dns.TypeAAAA}}
	out := make([]*measurements.Observation, len(families))
	var wg sync.WaitGroup
	for i, f := range families {
		wg.Go(func() { out[i] = r.lookupSystem(ctx, host, f.network, f.qtype) })
	}
	wg.Wait()
	for i, o := range out {
		if o.Failure == failure.DNSNXDomain && out[1-i].Succeeded() {
			o.Failure = failure.DNSNoAnswer
		}
	}
	return out
}

// lookupSystem makes one system lookup of network "ip4" or "ip6".
func (r *Resolver) lookupSystem(ctx context.Context, host, network string, qtype uint16) *measurements.Observation {
	obs := newObservation(host, measurements.EngineSystem, "", "", qtype)
	ctx, cancel := context.WithTimeout(ctx, LookupTimeout)
	defer cancel()
	started := time.Now()
	addrs, err := r.system().LookupNetIP(ctx, network, host)
	obs.Duration = time.Since(started)
	if err != nil {
		fail(obs, err)
		return obs
	}
	for _, a := range addrs {
		a = a.WithZone("")
		if qtype == dns.TypeA {
			a = a.Unmap()
		}
		typ := "AAAA"
		if a.Is4() {
			typ = "A"
		}
		obs.DNS.Answers = append(obs.DNS.Answers, measurements.DNSAnswer{Name: host, Type: typ, Data: a.String()})
	}
	if len(obs.DNS.Answers) == 0 {
		fail(obs, &failure.Error{Failure: failure.DNSNoAnswer})
	}
	return obs
}
