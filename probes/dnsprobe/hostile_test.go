package dnsprobe

import (
	"context"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

func startHostile(t *testing.T, script probetest.DNSScript) string {
	t.Helper()
	s, err := probetest.StartHostileDNS("127.0.0.1:0", script)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr()
}

// TestLookupPlainFlood: a flood of matching responses in the listening
// window keeps MaxLateResponses whole and counts the rest, bytes included.
func TestLookupPlainFlood(t *testing.T) {
	const size = 2000
	genuine := netip.MustParseAddr("17.57.146.20")
	var sent atomic.Int64
	server := startHostile(t, probetest.FloodScript([]netip.Addr{genuine}, size, testListenWindow/2, &sent))
	r := &Resolver{ListenWindow: testListenWindow}
	obs := r.LookupPlain(context.Background(), server, "courier.push.test", dns.TypeA)
	if len(obs) != 1 {
		t.Fatalf("%d observations, want 1", len(obs))
	}
	d := obs[0].DNS
	if obs[0].Failure != "" || len(d.Answers) != 1 || d.Answers[0].Data != genuine.String() {
		t.Fatalf("first response: failure %q, answers %+v; want %s", obs[0].Failure, d.Answers, genuine)
	}
	if len(d.Late) != measurements.MaxLateResponses {
		t.Fatalf("kept %d late responses, want %d", len(d.Late), measurements.MaxLateResponses)
	}
	for i, l := range d.Late {
		if len(l.Raw) != len(d.Late[0].Raw) || len(l.Raw) > size || len(l.Answers) != 1 {
			t.Errorf("late response %d: %d raw bytes, %d answers; want the flood's response", i, len(l.Raw), len(l.Answers))
		}
	}
	// Loopback may drop some of a burst, never add: the counts add up to
	// what arrived, at most what was sent.
	if max := int(sent.Load()) - measurements.MaxLateResponses; d.LateDropped < 1 || d.LateDropped > max {
		t.Fatalf("LateDropped = %d, want between 1 and %d", d.LateDropped, max)
	}
	if want := int64(d.LateDropped) * int64(len(d.Late[0].Raw)); d.LateDroppedBytes != want {
		t.Errorf("LateDroppedBytes = %d, want %d (%d responses of %d bytes)", d.LateDroppedBytes, want, d.LateDropped, len(d.Late[0].Raw))
	}
}

// TestLookupFanOut: a 64 KB TCP answer of 4000 A records and records of
// another name yields at most MaxAddressesPerFamily addresses to measure,
// never an off-chain one, and marks every other answer.
func TestLookupFanOut(t *testing.T) {
	const n = 4000 // what fits in 64 KB beside this query name
	first := netip.MustParseAddr("17.1.0.1")
	offChain := []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.100.8")}
	server := startHostile(t, probetest.FanOutScript(first, n, "victim.test", offChain))
	r := &Resolver{ListenWindow: -1}
	obs := r.LookupPlain(context.Background(), server, "courier.push.test", dns.TypeA)
	if len(obs) != 2 || obs[1].DNS.Engine != measurements.EngineTCP {
		t.Fatalf("%d observations, want the UDP one and its TCP fallback", len(obs))
	}
	tcp := obs[1]
	if tcp.Failure != "" || len(tcp.DNS.Answers) != n+len(offChain) {
		t.Fatalf("TCP lookup: failure %q, %d answers; want %d", tcp.Failure, len(tcp.DNS.Answers), n+len(offChain))
	}
	addrs := Addresses(obs)
	if len(addrs) != measurements.MaxAddressesPerFamily {
		t.Fatalf("Addresses = %d addresses, want %d", len(addrs), measurements.MaxAddressesPerFamily)
	}
	want := []netip.Addr{}
	for a := first; len(want) < measurements.MaxAddressesPerFamily; a = a.Next() {
		want = append(want, a)
	}
	if !slices.Equal(addrs, want) {
		t.Errorf("Addresses = %v, want the first %d of the answer %v", addrs, len(want), want)
	}
	count := map[string]int{}
	for _, a := range tcp.DNS.Answers {
		count[a.Unused]++
		if slices.Contains(offChain, netip.MustParseAddr(a.Data)) != (a.Unused == measurements.UnusedOffChain) {
			t.Errorf("answer %+v: off-chain mark wrong", a)
		}
	}
	wantCount := map[string]int{"": measurements.MaxAddressesPerFamily, measurements.UnusedOverCap: n - measurements.MaxAddressesPerFamily,
		measurements.UnusedOffChain: len(offChain)}
	if !sameCounts(count, wantCount) {
		t.Errorf("answers by mark = %v, want %v", count, wantCount)
	}
	checkSelection(t, tcp, addrs)
}

// TestAddressesTakeTurns: over the cap, every lookup's addresses are
// represented, so a resolver answering with many cannot crowd out the
// encrypted control's.
func TestAddressesTakeTurns(t *testing.T) {
	lookup := func(engine string, first netip.Addr, n int) *measurements.Observation {
		o := &measurements.Observation{Step: measurements.StepDNS, DNS: &measurements.DNSDetails{Engine: engine}}
		for a := first; n > 0; n, a = n-1, a.Next() {
			o.DNS.Answers = append(o.DNS.Answers, measurements.DNSAnswer{Name: "x.test.", Type: "A", Data: a.String()})
		}
		return o
	}
	local := lookup(measurements.EngineUDP, netip.MustParseAddr("203.0.113.1"), 50)
	doh := lookup(measurements.EngineDoH, netip.MustParseAddr("17.0.0.1"), 2)
	got := Addresses([]*measurements.Observation{local, doh})
	want := []netip.Addr{netip.MustParseAddr("17.0.0.1"), netip.MustParseAddr("17.0.0.2")}
	for a := netip.MustParseAddr("203.0.113.1"); len(want) < measurements.MaxAddressesPerFamily; a = a.Next() {
		want = append(want, a)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Addresses = %v, want %v", got, want)
	}
	if doh.DNS.Answers[1].Unused != "" || local.DNS.Answers[6].Unused != measurements.UnusedOverCap {
		t.Errorf("marks: control %q, seventh local %q; want none and %q", doh.DNS.Answers[1].Unused, local.DNS.Answers[6].Unused, measurements.UnusedOverCap)
	}
}

func sameCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
