package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/catalog"
	"github.com/reachprobe/reachprobe/probes/dnsprobe"
	"github.com/reachprobe/reachprobe/probes/probetest"
	"github.com/reachprobe/reachprobe/probes/tlsprobe"
)

// memRecorder keeps observations in memory; fail makes it refuse from the
// n-th observation on, as a full disk would.
type memRecorder struct {
	mu     sync.Mutex
	obs    []*measurements.Observation
	failAt int
}

func (m *memRecorder) AddObservation(_ context.Context, o *measurements.Observation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failAt > 0 && len(m.obs)+1 >= m.failAt {
		return errors.New("disk full")
	}
	m.obs = append(m.obs, o)
	return nil
}

var _ Recorder = (*memRecorder)(nil)

// systemResolver is a system engine that asks the test's DNS server at
// addr: a test never sends a query to the machine's own resolver.
func systemResolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// blackholeLab serves n names that all resolve to a port whose SYNs are
// never answered, the way a censor dropping an address range behaves.
func blackholeLab(t *testing.T, n int) (measurements.Catalog, *dnsprobe.Resolver) {
	t.Helper()
	hole, err := probetest.StartBlackholePort(context.Background())
	if err != nil {
		t.Skipf("no silent port on this kernel: %v", err)
	}
	t.Cleanup(func() { hole.Close() })
	zone := probetest.Zone{}
	var text strings.Builder
	for i := range n {
		host := fmt.Sprintf("h%d.test", i)
		zone[host] = probetest.ZoneEntry{Addrs: []netip.Addr{hole.Addr().Addr()}}
		fmt.Fprintf(&text, "[target t%d]\ngroup = push\nhost = %s\nports = %d\ntransports = tcp, tls\nnetworks = 127.0.0.0/8\n\n", i, host, hole.Addr().Port())
	}
	srv, err := probetest.StartDNS("127.0.0.1:0", zone)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cat, err := catalog.Parse("blackhole", []byte(text.String()))
	if err != nil {
		t.Fatal(err)
	}
	// The system engine too asks the test server: a test never sends a
	// query to the machine's own resolver.
	system := systemResolver(srv.Addr())
	return cat, &dnsprobe.Resolver{Nameservers: []string{srv.Addr()}, System: system, ListenWindow: -1}
}

// TestBlackholedTargetsRunConcurrently checks the property that keeps a
// run against a network that drops everything short: no target's connect
// waits for another's timeout. It compares start times, not wall time.
func TestBlackholedTargetsRunConcurrently(t *testing.T) {
	cat, res := blackholeLab(t, 12)
	rec := &memRecorder{}
	r := &Runner{Catalog: cat, Resolver: res, Recorder: rec, Parallel: 16}
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var first, last time.Time
	n := 0
	for _, o := range rec.obs {
		if o.Step != measurements.StepTCP {
			continue
		}
		n++
		if o.Failure != "generic_timeout_error" || o.Operation != "connect" {
			t.Errorf("%s: failure %q/%q, want a connect timeout", o.Target, o.Failure, o.Operation)
		}
		if first.IsZero() || o.Started.Before(first) {
			first = o.Started
		}
		if o.Started.After(last) {
			last = o.Started
		}
	}
	if n != 12 {
		t.Fatalf("got %d TCP observations, want 12", n)
	}
	if spread := last.Sub(first); spread >= tlsprobe.ConnectTimeout {
		t.Errorf("connects started %s apart: some waited for another's timeout (ConnectTimeout %s)", spread, tlsprobe.ConnectTimeout)
	}
}

// TestPoolBoundsConcurrency checks the other side: with Parallel 2 the
// twelve connects run two at a time, so their start times spread over
// several timeouts.
func TestPoolBoundsConcurrency(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for three connect timeouts")
	}
	cat, res := blackholeLab(t, 6)
	rec := &memRecorder{}
	r := &Runner{Catalog: cat, Resolver: res, Recorder: rec, Parallel: 2}
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	starts := map[int64]int{}
	for _, o := range rec.obs {
		if o.Step == measurements.StepTCP {
			starts[o.Started.Sub(rec.obs[0].Started).Milliseconds()/int64(tlsprobe.ConnectTimeout/time.Millisecond)]++
		}
	}
	for slot, n := range starts {
		if n > 2 {
			t.Errorf("%d connects started in timeout slot %d, want at most 2 (Parallel)", n, slot)
		}
	}
}

func TestRecorderFailureStopsRun(t *testing.T) {
	cat, res := blackholeLab(t, 4)
	rec := &memRecorder{failAt: 3}
	r := &Runner{Catalog: cat, Resolver: res, Recorder: rec}
	_, err := r.Run(context.Background())
	if !errors.Is(err, ErrRecord) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Run error = %v, want ErrRecord naming the cause", err)
	}
	if len(rec.obs) != 2 {
		t.Errorf("stored %d observations, want the 2 before the failure", len(rec.obs))
	}
}

func TestSkips(t *testing.T) {
	s := &state{r: &Runner{HasRoute: func(a netip.Addr) bool { return !a.Is6() }}}
	apple := &measurements.Target{Networks: []netip.Prefix{netip.MustParsePrefix("17.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")}}
	open := &measurements.Target{}
	tests := []struct {
		name   string
		target *measurements.Target
		addr   string
		want   string
	}{
		{"public v4", open, "17.1.2.3", ""},
		{"bogon outside networks", open, "10.0.0.1", measurements.SkipBogon},
		{"loopback inside networks", apple, "127.0.0.2", ""},
		{"loopback inside declared networks", apple, "127.0.0.1", ""},
		{"private for apple", apple, "192.168.1.1", measurements.SkipBogon},
		{"v6 without route", open, "2620:149:a44::1", measurements.SkipNoIPv6Route},
		{"v4-mapped", open, "::ffff:17.1.2.3", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.skipReason(tt.target, netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("skipReason(%s) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	s := newSummary()
	obs := []struct {
		o      measurements.Observation
		hasTLS bool
	}{
		{measurements.Observation{Group: "push", Step: measurements.StepDNS}, true},
		{measurements.Observation{Group: "push", Step: measurements.StepDNS, Failure: "dns_no_answer"}, true},
		{measurements.Observation{Group: "push", Step: measurements.StepDNS, Failure: "generic_timeout_error"}, true},
		{measurements.Observation{Group: "push", Step: measurements.StepTCP}, true},
		{measurements.Observation{Group: "push", Step: measurements.StepTLS, Control: true}, true},
		{measurements.Observation{Group: "push", Step: measurements.StepTLS, Host: "a", Operation: "tls_handshake", Failure: "connection_reset"}, true},
		{measurements.Observation{Group: "push", Step: measurements.StepTCP, Host: "b", Operation: "connect", Failure: "generic_timeout_error"}, true},
		{measurements.Observation{Group: "push", Step: measurements.StepTCP, Skipped: measurements.SkipNoIPv6Route}, true},
		{measurements.Observation{Group: "call", Step: measurements.StepUDP}, false},
	}
	for _, x := range obs {
		s.add(&x.o, x.hasTLS)
	}
	push := s.Groups["push"]
	if push.Measured != 2 || push.Reachable != 0 || push.Lookups != 3 || push.Resolved != 2 || len(push.FirstFailures) != 2 {
		t.Errorf("push summary = %+v, want 2 measured, 0 reachable, 2/3 lookups, 2 failures", push)
	}
	if c := s.Groups["call"]; c.Measured != 1 || c.Reachable != 1 {
		t.Errorf("call summary = %+v, want 1/1", c)
	}
	if got := s.GroupNames(); strings.Join(got, ",") != "push,call" {
		t.Errorf("GroupNames = %v", got)
	}
}
