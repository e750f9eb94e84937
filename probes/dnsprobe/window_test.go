package dnsprobe

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// windowZone answers "late.test" twice: the genuine address, then a
// second one lateDelay after it.
func windowZone(lateDelay time.Duration) probetest.Zone {
	return probetest.Zone{
		"late.test": {Addrs: []netip.Addr{netip.MustParseAddr("17.0.0.9")}, Behavior: probetest.DNSSecondLate,
			Forged: []netip.Addr{netip.MustParseAddr("203.0.113.9")}, ForgeDelay: lateDelay},
		"v4only.test": {Addrs: []netip.Addr{netip.MustParseAddr("17.0.0.4")}},
	}
}

func startWindowServer(t *testing.T, lateDelay time.Duration) *probetest.DNSServer {
	t.Helper()
	s, err := probetest.StartDNS("127.0.0.1:0", windowZone(lateDelay))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// plainUDP returns the plain UDP lookup of qtype among obs.
func plainUDP(t *testing.T, obs []*measurements.Observation, qtype string) *measurements.Observation {
	t.Helper()
	for _, o := range obs {
		if o.DNS != nil && o.DNS.Engine == measurements.EngineUDP && o.DNS.QueryType == qtype {
			return o
		}
	}
	t.Fatalf("no plain UDP %s lookup among %d observations", qtype, len(obs))
	return nil
}

func TestStartFirstComesBeforeTheWindow(t *testing.T) {
	server := startWindowServer(t, 20*time.Millisecond)
	r := &Resolver{Nameservers: []string{server.Addr()}, ListenWindow: 2 * time.Second, System: goResolverFor(server)}
	started := time.Now()
	l := r.Start(context.Background(), "v4only.test", nil)
	first := l.First()
	if took := time.Since(started); took > time.Second {
		t.Errorf("First took %s: it waited for the listening window", took)
	}
	a := plainUDP(t, first, "A")
	if a.DNS.Rcode != "NOERROR" || len(a.DNS.Answers) != 1 {
		t.Fatalf("first response %s %v, want one answer", a.DNS.Rcode, a.DNS.Answers)
	}
	for _, o := range first {
		l.EndWindow(o, measurements.ListenCutControlAgrees)
	}
	done := l.Wait()
	if took := time.Since(started); took > time.Second {
		t.Errorf("Wait took %s after every window was ended", took)
	}
	if len(done) != len(first) {
		t.Fatalf("Wait returned %d observations, First %d", len(done), len(first))
	}
	for i := range done {
		if done[i] != first[i] {
			t.Errorf("observation %d: Wait's is not First's", i)
		}
	}
	if a.DNS.ListenCut != measurements.ListenCutControlAgrees || a.DNS.Listened >= time.Second {
		t.Errorf("ListenCut %q Listened %s, want %q well under the window", a.DNS.ListenCut, a.DNS.Listened, measurements.ListenCutControlAgrees)
	}
}

func TestEndWindowKeepsWhatArrivedBefore(t *testing.T) {
	server := startWindowServer(t, 20*time.Millisecond)
	r := &Resolver{Nameservers: []string{server.Addr()}, ListenWindow: 2 * time.Second, System: goResolverFor(server)}
	l := r.Start(context.Background(), "late.test", nil)
	first := l.First()
	a := plainUDP(t, first, "A")
	// The second response is sent 20 ms after the first: by now it has
	// arrived, read or still queued.
	time.Sleep(200 * time.Millisecond)
	for _, o := range first {
		l.EndWindow(o, measurements.ListenCutHandshakeVerified)
	}
	l.Wait()
	if len(a.DNS.Late) != 1 || len(a.DNS.Late[0].Answers) != 1 || a.DNS.Late[0].Answers[0].Data != "203.0.113.9" {
		t.Fatalf("late responses %+v, want the second response, which came before the cut", a.DNS.Late)
	}
	if a.DNS.ListenCut != measurements.ListenCutHandshakeVerified {
		t.Errorf("ListenCut %q, want %q", a.DNS.ListenCut, measurements.ListenCutHandshakeVerified)
	}
	if a.DNS.Listened < 150*time.Millisecond || a.DNS.Listened > time.Second {
		t.Errorf("Listened %s, want about the 200 ms before the cut", a.DNS.Listened)
	}
}

func TestEndWindowBeforeTheLateResponse(t *testing.T) {
	server := startWindowServer(t, 500*time.Millisecond)
	r := &Resolver{Nameservers: []string{server.Addr()}, ListenWindow: 2 * time.Second, System: goResolverFor(server)}
	started := time.Now()
	l := r.Start(context.Background(), "late.test", nil)
	first := l.First()
	a := plainUDP(t, first, "A")
	for _, o := range first {
		l.EndWindow(o, measurements.ListenCutControlAgrees)
	}
	l.Wait()
	if took := time.Since(started); took > 400*time.Millisecond {
		t.Errorf("the lookup took %s though its window was ended at the first response", took)
	}
	if len(a.DNS.Late) != 0 {
		t.Errorf("late responses %+v, want none: the second comes 500 ms after the cut", a.DNS.Late)
	}
	if a.DNS.ListenCut != measurements.ListenCutControlAgrees {
		t.Errorf("ListenCut %q, want %q", a.DNS.ListenCut, measurements.ListenCutControlAgrees)
	}
}

func TestFullWindowRecordsNoCut(t *testing.T) {
	server := startWindowServer(t, 20*time.Millisecond)
	r := &Resolver{ListenWindow: testListenWindow}
	obs := r.LookupPlain(context.Background(), server.Addr(), "late.test", dns.TypeA)
	d := obs[0].DNS
	if d.ListenCut != "" || d.Listened < testListenWindow-10*time.Millisecond {
		t.Errorf("ListenCut %q Listened %s, want no cut and the whole %s window", d.ListenCut, d.Listened, testListenWindow)
	}
	if len(d.Late) != 1 {
		t.Errorf("%d late responses, want 1", len(d.Late))
	}
}

func TestEndWindowLeavesOthersAlone(t *testing.T) {
	server := startWindowServer(t, 20*time.Millisecond)
	r := &Resolver{Nameservers: []string{server.Addr()}, ListenWindow: testListenWindow, System: goResolverFor(server)}
	l := r.Start(context.Background(), "late.test", nil)
	first := l.First()
	a, aaaa := plainUDP(t, first, "A"), plainUDP(t, first, "AAAA")
	l.EndWindow(aaaa, measurements.ListenCutControlAgrees)
	l.EndWindow(&measurements.Observation{DNS: &measurements.DNSDetails{}}, measurements.ListenCutControlAgrees)
	l.Wait()
	if a.DNS.ListenCut != "" || len(a.DNS.Late) != 1 {
		t.Errorf("A lookup: ListenCut %q and %d late responses, want its window full and the second response", a.DNS.ListenCut, len(a.DNS.Late))
	}
	if aaaa.DNS.ListenCut != measurements.ListenCutControlAgrees {
		t.Errorf("AAAA lookup: ListenCut %q, want %q", aaaa.DNS.ListenCut, measurements.ListenCutControlAgrees)
	}
}
