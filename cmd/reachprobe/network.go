package main

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/dnsprobe"
	"github.com/reachprobe/reachprobe/probes/netid"
)

// defaultSTUNServer is where "run" learns the network it measures from: a
// public STUN server that answers from anywhere. The address it reports is
// looked up in the embedded ASN database and then dropped.
const defaultSTUNServer = "stun.l.google.com:19302"

// discoverNetwork finds the networks the probe measures from
// (netid.Discover) in the background; the channel yields the result once.
// Failing to find them gives AS0/ZZ, never an error.
func discoverNetwork(ctx context.Context, stunServer string, resolver *dnsprobe.Resolver) <-chan measurements.Identity {
	ch := make(chan measurements.Identity, 1)
	go func() { ch <- netid.Discover(ctx, stunServer, firstNameserver(resolver)) }()
	return ch
}

// recordNetwork stores the network of run runID. Failing to store it is a
// warning: the run's observations are safe either way.
func recordNetwork(ctx context.Context, store *measurements.Store, runID int64, id measurements.Identity, log *eventLog) {
	log.event("network_identified", "run_id", runID, "probe_asn", id.ProbeASN, "probe_cc", id.ProbeCC,
		"resolver_asn", id.ResolverASN, "resolver_cc", id.ResolverCC)
	if err := store.SetRunNetwork(context.WithoutCancel(ctx), runID, id); err != nil {
		log.warn(fmt.Sprintf("run %d: storing its network: %v", runID, err))
	}
}

// firstNameserver returns the address of the plain DNS engine's first
// nameserver, the resolver the probe's applications use; an invalid Addr
// when there is none.
func firstNameserver(r *dnsprobe.Resolver) netip.Addr {
	if r == nil || len(r.Nameservers) == 0 {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(r.Nameservers[0])
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}
