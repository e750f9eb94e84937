package runner

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/catalog"
	"github.com/reachprobe/reachprobe/probes/dnsprobe"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// windowTestListen is the listening window of the runs below: long
// enough that a run which waited for it shows.
const windowTestListen = 1500 * time.Millisecond

// runWindowCase runs a one-target catalog, name.test on a TLS server at
// 127.0.0.1 whose certificate verifies for it, with the network's
// resolver answering resolver and encrypted DNS answering control, and
// returns the plain UDP A and AAAA lookups and how long the run took.
func runWindowCase(t *testing.T, resolver, control probetest.ZoneEntry) (a, aaaa *measurements.Observation, took time.Duration) {
	t.Helper()
	ca, err := probetest.NewCA("window test root")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Leaf("name.test")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := probetest.StartTLS("127.0.0.1:0", probetest.TLSValid, cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	dns, err := probetest.StartDNS("127.0.0.1:0", probetest.Zone{"name.test": resolver})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	doh := httptest.NewUnstartedServer(probetest.NewDoHHandler(probetest.Zone{"name.test": control}))
	doh.Config.ErrorLog = log.New(io.Discard, "", 0)
	doh.StartTLS()
	t.Cleanup(doh.Close)
	dohPool := x509.NewCertPool()
	dohPool.AddCert(doh.Certificate())

	text := fmt.Sprintf("[target name]\ngroup = push\nhost = name.test\nports = %d\ntransports = tcp, tls\n", srv.Addr().Port())
	cat, err := catalog.Parse("window", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	system := systemResolver(dns.Addr())
	rec := &memRecorder{}
	r := &Runner{
		Catalog:  cat,
		Resolver: &dnsprobe.Resolver{Nameservers: []string{dns.Addr()}, System: system, RootCAs: dohPool, ListenWindow: windowTestListen},
		DoHURLs:  []string{doh.URL + "/dns-query"},
		RootCAs:  ca.Pool(),
		Recorder: rec,
		// Loopback addresses are bogons outside a target's networks;
		// these are the test's servers.
		HasRoute: func(netip.Addr) bool { return true },
	}
	r.Catalog.Targets[0].Networks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	started := time.Now()
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	took = time.Since(started)
	for _, o := range rec.obs {
		if o.DNS == nil || o.DNS.Engine != measurements.EngineUDP {
			continue
		}
		switch o.DNS.QueryType {
		case "A":
			a = o
		case "AAAA":
			aaaa = o
		}
	}
	if a == nil || aaaa == nil {
		t.Fatalf("no plain UDP lookups recorded among %d observations", len(rec.obs))
	}
	return a, aaaa, took
}

func lateData(o *measurements.Observation) []string {
	var out []string
	for _, l := range o.DNS.Late {
		for _, a := range l.Answers {
			out = append(out, a.Data)
		}
	}
	return out
}

var (
	serverAddr = netip.MustParseAddr("127.0.0.1")
	otherAddr  = netip.MustParseAddr("127.0.0.2") // nothing listens there
)

func TestWindowEndsWhenTheControlAgrees(t *testing.T) {
	real := probetest.ZoneEntry{Addrs: []netip.Addr{serverAddr}}
	// A second response 800 ms after the first, long after the control
	// agreed: it is not listened for.
	late := real
	late.Behavior, late.Forged, late.ForgeDelay = probetest.DNSSecondLate, []netip.Addr{otherAddr}, 800*time.Millisecond
	a, aaaa, took := runWindowCase(t, late, real)
	if a.DNS.ListenCut != measurements.ListenCutControlAgrees || len(a.DNS.Late) != 0 {
		t.Errorf("A: ListenCut %q, late %v; want %q and no late response", a.DNS.ListenCut, lateData(a), measurements.ListenCutControlAgrees)
	}
	// No AAAA record on either side: they agree too.
	if aaaa.DNS.ListenCut != measurements.ListenCutControlAgrees {
		t.Errorf("AAAA: ListenCut %q, want %q", aaaa.DNS.ListenCut, measurements.ListenCutControlAgrees)
	}
	if a.DNS.Listened >= windowTestListen || took >= windowTestListen {
		t.Errorf("listened %s, run took %s: the %s window was waited for", a.DNS.Listened, took, windowTestListen)
	}
}

func TestWindowEndsWhenAHandshakeVouches(t *testing.T) {
	// The resolver's answer is not the control's (another server of the
	// name's, as geo-DNS gives), and a second response follows late.
	resolver := probetest.ZoneEntry{Addrs: []netip.Addr{serverAddr}, Behavior: probetest.DNSSecondLate,
		Forged: []netip.Addr{netip.MustParseAddr("127.0.0.3")}, ForgeDelay: 800 * time.Millisecond}
	control := probetest.ZoneEntry{Addrs: []netip.Addr{otherAddr}}
	a, _, took := runWindowCase(t, resolver, control)
	if a.DNS.ListenCut != measurements.ListenCutHandshakeVerified || len(a.DNS.Late) != 0 {
		t.Errorf("A: ListenCut %q, late %v; want %q and no late response", a.DNS.ListenCut, lateData(a), measurements.ListenCutHandshakeVerified)
	}
	if took >= windowTestListen {
		t.Errorf("run took %s: the %s window was waited for", took, windowTestListen)
	}
}

func TestWindowRunsFullAfterAForgedFirstAnswer(t *testing.T) {
	// An injector wins the race: its address, where nothing verifies,
	// comes first, the genuine one 300 ms later.
	resolver := probetest.ZoneEntry{Addrs: []netip.Addr{serverAddr}, Behavior: probetest.DNSForgeFirst,
		Forged: []netip.Addr{otherAddr}, ForgeDelay: 300 * time.Millisecond}
	control := probetest.ZoneEntry{Addrs: []netip.Addr{serverAddr}}
	a, _, _ := runWindowCase(t, resolver, control)
	if a.DNS.ListenCut != "" || a.DNS.Listened < windowTestListen-50*time.Millisecond {
		t.Errorf("A: ListenCut %q after listening %s; want the whole %s window", a.DNS.ListenCut, a.DNS.Listened, windowTestListen)
	}
	if !slices.Contains(lateData(a), serverAddr.String()) {
		t.Errorf("A: late responses %v, want the genuine %s behind the forged one", lateData(a), serverAddr)
	}
}

func TestWindowRunsFullWhenNothingVouches(t *testing.T) {
	// The resolver's answer is neither the control's nor verified
	// anywhere (nothing listens there): the window runs full.
	resolver := probetest.ZoneEntry{Addrs: []netip.Addr{otherAddr}}
	control := probetest.ZoneEntry{Addrs: []netip.Addr{serverAddr}}
	a, _, _ := runWindowCase(t, resolver, control)
	if a.DNS.ListenCut != "" || a.DNS.Listened < windowTestListen-50*time.Millisecond {
		t.Errorf("A: ListenCut %q after listening %s; want the whole %s window", a.DNS.ListenCut, a.DNS.Listened, windowTestListen)
	}
}
