package measurements

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

// t0 is an arbitrary instant with nanoseconds, to check none are lost.
var t0 = time.Date(2025, 11, 3, 12, 30, 45, 123456789, time.UTC)

// newTestStore opens a new store under t.TempDir, closed at cleanup.
func newTestStore(tb testing.TB) *Store {
	tb.Helper()
	s, err := Open(tb.Context(), filepath.Join(tb.TempDir(), "data", "reachprobe.db"))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func testCatalog(name, text string) Catalog {
	sum := sha256.Sum256([]byte(text))
	return Catalog{Name: name, Digest: hex.EncodeToString(sum[:]), Text: []byte(text)}
}

// beginTestRun starts a run at started with the default test catalog.
func beginTestRun(tb testing.TB, s *Store, started time.Time) int64 {
	tb.Helper()
	cat := testCatalog("default", "push courier.push.apple.com tls 5223 443\n")
	id, err := s.BeginRun(tb.Context(), Run{Started: started, SoftwareVersion: "0.1.0", CatalogName: "default"}, cat)
	if err != nil {
		tb.Fatalf("BeginRun: %v", err)
	}
	return id
}

// sampleObservations has one observation of every kind, every field set.
func sampleObservations(runID int64) []Observation {
	moscow := time.FixedZone("MSK", 3*60*60)
	return []Observation{
		{
			RunID: runID, Step: StepDNS, Group: GroupPush, Target: "courier", Host: "courier.push.apple.com",
			Transport: "udp", Started: t0.In(moscow), Duration: 23 * time.Millisecond,
			DNS: &DNSDetails{
				Engine: EngineUDP, Resolver: "192.0.2.53:53", QueryType: "A", TransactionID: 0xbeef,
				Rcode: "NOERROR", Truncated: true,
				Answers: []DNSAnswer{
					{Name: "courier.push.apple.com.", Type: "CNAME", Data: "courier.push.apple.com.akadns.net.", TTL: 60},
					{Name: "courier.push.apple.com.akadns.net.", Type: "A", Data: "17.57.146.20", TTL: 30},
				},
				CNAMEs: []string{"courier.push.apple.com.akadns.net."},
				Late: []DNSResponse{{
					Rcode: "NOERROR", Delay: 41 * time.Millisecond, Raw: []byte{0xbe, 0xef, 0x81, 0x80},
					Answers: []DNSAnswer{{Name: "courier.push.apple.com.", Type: "A", Data: "10.10.34.34", TTL: 300}},
				}},
				RawResponse: []byte{0xbe, 0xef, 0x81, 0x80, 0, 1, 0, 2},
			},
		},
		{
			RunID: runID, Step: StepDNS, Group: GroupPush, Target: "courier", Host: "courier.push.apple.com",
			Transport: "tcp", Control: true, Started: t0.Add(time.Second), Duration: 80 * time.Millisecond,
			DNS:     &DNSDetails{Engine: EngineDoH, Resolver: "https://doh.example/dns-query", QueryType: "AAAA", Rcode: "NXDOMAIN"},
			Failure: "dns_nxdomain_error", Operation: "resolve",
		},
		{
			RunID: runID, Step: StepTCP, Group: GroupPush, Target: "courier", Host: "courier.push.apple.com",
			Address: "17.57.146.20", Port: 5223, Transport: "tcp", Repeat: 2, Started: t0.Add(2 * time.Second),
			Duration: 10 * time.Second, Failure: "generic_timeout_error", Operation: "connect",
			TCP: &TCPDetails{Family: "ipv4"},
		},
		{
			RunID: runID, Step: StepTLS, Group: GroupIdentity, Target: "ids-init", Host: "init.ess.apple.com",
			Address: "2620:149:a44::1", Port: 443, Transport: "tcp", Repeat: 1, Control: true,
			Started: t0.Add(3 * time.Second), Duration: 150 * time.Millisecond,
			TLS: &TLSDetails{
				Network: "tcp", ServerName: "init.ess.apple.com", ALPN: []string{"h2", "http/1.1"},
				ClientHello: "iOS_14", NegotiatedProtocol: "h2", TLSVersion: "TLSv1.3",
				CipherSuite:      "TLS_AES_128_GCM_SHA256",
				PeerCertificates: [][]byte{{0x30, 0x82, 1, 2}, {0x30, 0x82, 3, 4}},
				Verified:         false, VerifyFailure: "ssl_unknown_authority",
			},
			Failure: "ssl_unknown_authority", Operation: "tls_handshake",
		},
		{
			RunID: runID, Step: StepQUIC, Group: GroupQUIC, Target: "private-relay", Host: "mask.icloud.com",
			Address: "17.0.0.1", Port: 443, Transport: "udp", Started: t0.Add(4 * time.Second), Duration: time.Second,
			TLS: &TLSDetails{
				Network: "udp", ServerName: "mask.icloud.com", ALPN: []string{"h3"},
				NegotiatedProtocol: "h3", TLSVersion: "TLSv1.3", CipherSuite: "TLS_AES_256_GCM_SHA384",
				PeerCertificates: [][]byte{{1, 2, 3}}, Verified: true,
			},
		},
		{
			RunID: runID, Step: StepUDP, Group: GroupCall, Target: "facetime-relay", Host: "17.1.2.3",
			Address: "17.1.2.3", Port: 3478, Transport: "udp", Started: t0.Add(5 * time.Second), Duration: 2 * time.Second,
			STUN: &STUNDetails{
				TransactionID: []byte("0123456789ab"), ExpectAnswer: true, Attempts: 3, Responded: true,
				Class: "success", MappedAddressSeen: true, ResponseBytes: 32,
			},
		},
		{
			RunID: runID, Step: StepArrival, Group: GroupCall, Target: "facetime-relay", Host: "17.1.2.3",
			Address: "17.1.2.3", Port: 16384, Transport: "udp", Started: t0.Add(5 * time.Second), Duration: 3 * time.Second,
			Arrival: &ArrivalDetails{Kinds: []ArrivalKind{
				{Kind: ArrivalSTUN, Sent: 3, Size: 1200, Evidence: ArrivalSilence},
				{Kind: ArrivalQUICReserved, Sent: 1, Size: 1200, Evidence: ArrivalAnswer, Answers: 1, AnswerBytes: 43, VersionNegotiation: "valid"},
				{Kind: ArrivalRandom, Sent: 1, Size: 1200, Evidence: ArrivalPortUnreachable, ICMP: &ICMPDetails{Type: 3, Code: 3, FromTarget: true}},
			}},
		},
		{
			RunID: runID, Step: StepTCP, Group: GroupControl, Target: "control", Host: "example.org",
			Address: "2001:db8::1", Port: 443, Transport: "tcp", Started: t0.Add(6 * time.Second),
			Skipped: SkipNoIPv6Route, TCP: &TCPDetails{Family: "ipv6"},
		},
		// Nothing but the required fields: no start time, no details.
		{RunID: runID, Step: StepUDP, Target: "bare"},
	}
}

func TestObservationRoundTrip(t *testing.T) {
	s := newTestStore(t)
	run := beginTestRun(t, s, t0)
	in := sampleObservations(run)
	for i := range in {
		if err := s.AddObservation(t.Context(), &in[i]); err != nil {
			t.Fatalf("AddObservation(%s %s): %v", in[i].Step, in[i].Target, err)
		}
		if in[i].ID == 0 {
			t.Fatalf("AddObservation(%s %s) left ID 0", in[i].Step, in[i].Target)
		}
	}
	// As rows while the run goes on, then packed once it has ended.
	for _, form := range []string{"rows", "packed"} {
		if form == "packed" {
			if err := s.EndRun(t.Context(), run, RunComplete, t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			var rows, packs int
			if err := s.db.QueryRowContext(t.Context(), `SELECT (SELECT count(*) FROM observations), (SELECT count(*) FROM observation_packs)`).Scan(&rows, &packs); err != nil || rows != 0 || packs != 1 {
				t.Fatalf("after EndRun: %d rows, %d packs (%v); want 0 and 1", rows, packs, err)
			}
		}
		checkRoundTrip(t, form, in, s, run)
	}
}

// checkRoundTrip checks that the observations of run read from s are in.
func checkRoundTrip(t *testing.T, form string, in []Observation, s *Store, run int64) {
	t.Helper()
	got, err := s.Observations(t.Context(), run)
	if err != nil {
		t.Fatalf("Observations: %v", err)
	}
	if len(got) != len(in) {
		t.Fatalf("Observations returned %d, want %d", len(got), len(in))
	}
	for i := range in {
		want, g := in[i], got[i]
		t.Run(fmt.Sprintf("%s_%d_%s_%s", form, i, want.Step, want.Target), func(t *testing.T) {
			if !g.Started.Equal(want.Started) || g.Started.Location() != time.UTC {
				t.Errorf("Started = %v, want %v in UTC", g.Started, want.Started)
			}
			g.Started, want.Started = time.Time{}, time.Time{}
			if !reflect.DeepEqual(g, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", g, want)
			}
		})
	}
}

func TestAddObservationErrors(t *testing.T) {
	s := newTestStore(t)
	run := beginTestRun(t, s, t0)
	tests := []struct {
		name string
		o    *Observation
	}{
		{"nil", nil},
		{"already stored", &Observation{ID: 7, RunID: run, Step: StepTCP}},
		{"no such run", &Observation{RunID: run + 100, Step: StepTCP}}, // foreign key
		{"unstorable time", &Observation{RunID: run, Step: StepTCP, Started: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.AddObservation(t.Context(), tt.o); err == nil {
				t.Errorf("AddObservation succeeded, want an error")
			}
		})
	}
	obs, err := s.Observations(t.Context(), run)
	if err != nil || len(obs) != 0 {
		t.Errorf("Observations = %d, %v; want 0, nil", len(obs), err)
	}
}

func TestConcurrentAddObservation(t *testing.T) {
	const goroutines, each = 50, 4
	s := newTestStore(t)
	run := beginTestRun(t, s, t0)
	errs := make(chan error, goroutines*each)
	ids := make(chan int64, goroutines*each)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				o := &Observation{RunID: run, Step: StepTCP, Target: fmt.Sprintf("t%d", g), Repeat: i,
					Started: t0, TCP: &TCPDetails{Family: "ipv4"}}
				if err := s.AddObservation(t.Context(), o); err != nil {
					errs <- err
					continue
				}
				ids <- o.ID
			}
		})
	}
	wg.Wait()
	close(errs)
	close(ids)
	for err := range errs {
		t.Errorf("AddObservation: %v", err)
	}
	seen := map[int64]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("ID %d assigned twice", id)
		}
		seen[id] = true
	}
	obs, err := s.Observations(t.Context(), run)
	if err != nil {
		t.Fatalf("Observations: %v", err)
	}
	if len(obs) != goroutines*each {
		t.Errorf("stored %d observations, want %d", len(obs), goroutines*each)
	}
	for _, o := range obs {
		if !seen[o.ID] {
			t.Errorf("stored observation %d was never returned to a caller", o.ID)
		}
	}
}

func TestRuns(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	if _, err := s.LatestRun(ctx); !errors.Is(err, ErrNoRun) {
		t.Errorf("LatestRun of an empty store: err = %v, want ErrNoRun", err)
	}
	// Inserted out of order: listings go by start time, not id.
	middle := beginTestRun(t, s, t0.Add(time.Hour))
	oldest := beginTestRun(t, s, t0)
	newest := beginTestRun(t, s, t0.Add(2*time.Hour))
	for range 3 {
		if err := s.AddObservation(ctx, &Observation{RunID: middle, Step: StepDNS}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.EndRun(ctx, middle, RunComplete, t0.Add(time.Hour+time.Minute)); err != nil {
		t.Fatalf("EndRun: %v", err)
	}

	ids := func(runs []Run) []int64 {
		var out []int64
		for _, r := range runs {
			out = append(out, r.ID)
		}
		return out
	}
	all, err := s.Runs(ctx)
	if err != nil {
		t.Fatalf("Runs: %v", err)
	}
	if got, want := ids(all), []int64{newest, middle, oldest}; !reflect.DeepEqual(got, want) {
		t.Errorf("Runs ids = %v, want newest first %v", got, want)
	}
	since, err := s.RunsSince(ctx, t0.Add(time.Hour))
	if err != nil {
		t.Fatalf("RunsSince: %v", err)
	}
	if got, want := ids(since), []int64{middle, newest}; !reflect.DeepEqual(got, want) {
		t.Errorf("RunsSince(t0+1h) ids = %v, want oldest first %v", got, want)
	}
	if everything, err := s.RunsSince(ctx, time.Time{}); err != nil || len(everything) != 3 {
		t.Errorf("RunsSince(zero) = %d runs, %v; want 3, nil", len(everything), err)
	}

	latest, err := s.LatestRun(ctx)
	if err != nil || latest.ID != newest {
		t.Errorf("LatestRun = %d, %v; want %d, nil", latest.ID, err, newest)
	}
	got, err := s.Run(ctx, middle)
	if err != nil {
		t.Fatalf("Run(%d): %v", middle, err)
	}
	want := Run{
		ID: middle, Started: t0.Add(time.Hour), Ended: t0.Add(time.Hour + time.Minute), Status: RunComplete,
		SoftwareVersion: "0.1.0", CatalogDigest: testCatalog("", "push courier.push.apple.com tls 5223 443\n").Digest,
		CatalogName: "default", Observations: 3,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Run(%d):\n got %+v\nwant %+v", middle, got, want)
	}
	if r, err := s.Run(ctx, oldest); err != nil || r.Status != RunRunning || !r.Ended.IsZero() {
		t.Errorf("Run(%d) = status %q ended %v, %v; want running, zero end", oldest, r.Status, r.Ended, err)
	}
	if _, err := s.Run(ctx, 999); !errors.Is(err, ErrNoRun) {
		t.Errorf("Run(999): err = %v, want ErrNoRun", err)
	}
	if obs, err := s.Observations(ctx, oldest); err != nil || len(obs) != 0 {
		t.Errorf("Observations of a run without any = %d, %v; want 0, nil", len(obs), err)
	}
	if _, err := s.Observations(ctx, 999); !errors.Is(err, ErrNoRun) {
		t.Errorf("Observations(999): err = %v, want ErrNoRun", err)
	}
}

func TestEndRunErrors(t *testing.T) {
	s := newTestStore(t)
	run := beginTestRun(t, s, t0)
	tests := []struct {
		name   string
		id     int64
		status string
		ended  time.Time
		is     error // nil: any error
	}{
		{"no such run", 999, RunComplete, t0, ErrNoRun},
		{"status running", run, RunRunning, t0, nil},
		{"unknown status", run, "done", t0, nil},
		{"no end time", run, RunComplete, time.Time{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.EndRun(t.Context(), tt.id, tt.status, tt.ended)
			if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Errorf("EndRun: err = %v, want an error (wrapping %v)", err, tt.is)
			}
		})
	}
	if r, err := s.Run(t.Context(), run); err != nil || r.Status != RunRunning {
		t.Errorf("after failed EndRuns: status %q, %v; want running", r.Status, err)
	}
}

func TestMarkUnfinishedRuns(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	done := beginTestRun(t, s, t0)
	if err := s.EndRun(ctx, done, RunComplete, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	crashed1 := beginTestRun(t, s, t0.Add(time.Hour))
	crashed2 := beginTestRun(t, s, t0.Add(2*time.Hour))
	found := t0.Add(3 * time.Hour)

	n, err := s.MarkUnfinishedRuns(ctx, found)
	if err != nil || n != 2 {
		t.Fatalf("MarkUnfinishedRuns = %d, %v; want 2, nil", n, err)
	}
	tests := []struct {
		name   string
		id     int64
		status string
		ended  time.Time
	}{
		{"complete run untouched", done, RunComplete, t0.Add(time.Minute)},
		{"first crashed", crashed1, RunInterrupted, found},
		{"second crashed", crashed2, RunInterrupted, found},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := s.Run(ctx, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tt.status || !r.Ended.Equal(tt.ended) {
				t.Errorf("run %d: status %q ended %v, want %q ended %v", tt.id, r.Status, r.Ended, tt.status, tt.ended)
			}
		})
	}
	if n, err := s.MarkUnfinishedRuns(ctx, found); err != nil || n != 0 {
		t.Errorf("second MarkUnfinishedRuns = %d, %v; want 0, nil", n, err)
	}
}

func TestCatalogs(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	cat := testCatalog("/etc/reachprobe/targets.catalog", "push a.example tls 443\n")
	other := testCatalog("default", "push b.example tls 443\n")
	for _, c := range []Catalog{cat, cat, other} {
		if _, err := s.BeginRun(ctx, Run{Started: t0, CatalogName: filepath.Base(c.Name)}, c); err != nil {
			t.Fatalf("BeginRun: %v", err)
		}
	}
	var stored int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM catalogs").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 2 {
		t.Errorf("catalogs stored = %d, want 2 (once per digest)", stored)
	}
	got, err := s.Catalog(ctx, cat.Digest)
	if err != nil {
		t.Fatalf("Catalog: %v", err)
	}
	if !reflect.DeepEqual(got, cat) {
		t.Errorf("Catalog = %+v, want %+v", got, cat)
	}
	if _, err := s.Catalog(ctx, "00"); !errors.Is(err, ErrNoCatalog) {
		t.Errorf("Catalog(missing): err = %v, want ErrNoCatalog", err)
	}

	empty := testCatalog("empty", "")
	empty.Text = nil
	if _, err := s.BeginRun(ctx, Run{Started: t0}, empty); err != nil {
		t.Errorf("BeginRun with an empty catalog: %v", err)
	}

	bad := []struct {
		name string
		run  Run
		cat  Catalog
	}{
		{"digest does not match text", Run{Started: t0}, Catalog{Name: "x", Digest: other.Digest, Text: cat.Text}},
		{"no digest", Run{Started: t0}, Catalog{Name: "x", Text: cat.Text}},
		{"run names another catalog", Run{Started: t0, CatalogDigest: other.Digest}, cat},
		{"no start time", Run{}, cat},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if id, err := s.BeginRun(ctx, tt.run, tt.cat); err == nil {
				t.Errorf("BeginRun = %d, nil; want an error", id)
			}
		})
	}
}

func BenchmarkAddObservation(b *testing.B) {
	obs := sampleObservations(0)[3] // a TLS handshake with a certificate chain
	b.Run("serial", func(b *testing.B) {
		s := newTestStore(b)
		run := beginTestRun(b, s, t0)
		for b.Loop() {
			o := obs
			o.RunID = run
			if err := s.AddObservation(b.Context(), &o); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		s := newTestStore(b)
		run := beginTestRun(b, s, t0)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				o := obs
				o.RunID = run
				if err := s.AddObservation(b.Context(), &o); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
