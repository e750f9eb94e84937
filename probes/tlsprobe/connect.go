package tlsprobe

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
)

// ConnectTimeout bounds one TCP connect. A live host answers a SYN in well
// under a second even on a poor mobile link, and 5 s still leaves room for
// two lost SYNs (Linux resends after 1 s and 3 s); a censor that drops
// everything must not cost the run more than this per address.
const ConnectTimeout = 5 * time.Second

// Address families recorded in TCPDetails.
const (
	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
)

// Connect makes one TCP connection to addr and returns it with the tcp
// Observation of the attempt. On failure the connection is nil and the
// observation's Failure and Operation ("connect") say why. The caller owns
// the returned connection and closes it.
//
// An IPv4-mapped IPv6 address is recorded and dialled as IPv4.
func Connect(ctx context.Context, addr netip.AddrPort) (net.Conn, *measurements.Observation) {
	addr = unmap(addr)
	obs := &measurements.Observation{
		Step:      measurements.StepTCP,
		Address:   addr.Addr().String(),
		Port:      int(addr.Port()),
		Transport: "tcp",
		TCP:       &measurements.TCPDetails{Family: family(addr.Addr())},
	}
	start := time.Now()
	obs.Started = start.UTC()
	conn, err := dial(ctx, addr)
	obs.Duration = time.Since(start)
	if err != nil {
		obs.Failure = failure.Classify(err)
		obs.Operation = failure.OpConnect
		return nil, obs
	}
	return conn, obs
}

// dial connects to addr within ConnectTimeout.
func dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, ConnectTimeout)
	defer cancel()
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr.String())
}

func unmap(addr netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
}

func family(a netip.Addr) string {
	if a.Unmap().Is4() {
		return FamilyIPv4
	}
	return FamilyIPv6
}
