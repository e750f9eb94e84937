package measurements

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestChainsMigrate: observations stored at schema version 4, with their
// chains inline, read the same (deep-equal) after migration 5 moved the
// chains to the chains table, once each; a new observation with the same
// chain adds none; and pruning every observation naming a chain deletes it
// at the next Compact.
func TestChainsMigrate(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v4.db")
	v4 := openAtVersion(t, path, 4)
	var ids []int64
	for i := range 3 {
		id := beginTestRun(t, v4, t0.Add(time.Duration(i)*time.Hour))
		for _, o := range sampleObservations(id) {
			addInline(t, v4, &o)
		}
		endTestRun(t, v4, id)
		ids = append(ids, id)
	}
	before := map[int64][]Observation{}
	for _, id := range ids {
		obs, err := v4.Observations(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		before[id] = obs
	}
	if n := countTLSWithChain(before); n == 0 {
		t.Fatal("the sample observations have no certificate chain to move")
	}
	if err := v4.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open of a version 4 database: %v", err)
	}
	defer s.Close()
	for _, id := range ids {
		after, err := s.Observations(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(after, before[id]) {
			t.Errorf("run %d after migrating:\n%+v\nbefore:\n%+v", id, after, before[id])
		}
	}
	distinct := map[string]bool{}
	for _, o := range before[ids[0]] {
		if o.TLS != nil && len(o.TLS.PeerCertificates) > 0 {
			_, h := encodeChain(o.TLS.PeerCertificates)
			distinct[h] = true
		}
	}
	if got := chainCount(t, s); got != len(distinct) {
		t.Errorf("%d chains stored, want %d (each distinct chain once)", got, len(distinct))
	}
	var inline int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM observations WHERE details LIKE '%peer_certificates%'`).Scan(&inline); err != nil || inline != 0 {
		t.Errorf("%d observations still carry their chain inline (%v)", inline, err)
	}

	// A new run with the same chains stores none again, and reads back
	// what it stored.
	id := beginTestRun(t, s, t0.Add(5*time.Hour))
	want := sampleObservations(id)
	for i := range want {
		if err := s.AddObservation(ctx, &want[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got := chainCount(t, s); got != len(distinct) {
		t.Errorf("%d chains after storing the same chains again, want %d", got, len(distinct))
	}
	got, err := s.Observations(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if !reflect.DeepEqual(got[i].TLS, want[i].TLS) {
			t.Errorf("observation %d: TLS read back %+v, stored %+v", i, got[i].TLS, want[i].TLS)
		}
	}
	// Changing a certificate read back changes no other observation's,
	// nor what the next read gives.
	first := firstCert(got)
	first[0] ^= 0xff
	for _, o := range got {
		if o.TLS != nil && len(o.TLS.PeerCertificates) > 0 && &o.TLS.PeerCertificates[0][0] != &first[0] && o.TLS.PeerCertificates[0][0] == first[0] {
			t.Error("two observations read back share a certificate's memory")
		}
	}
	if again, err := s.Observations(ctx, id); err != nil || !bytes.Equal(firstCert(again), firstCert(want)) {
		t.Errorf("after changing a certificate read back, the next read gives %x (%v), want %x", firstCert(again), err, firstCert(want))
	}

	endTestRun(t, s, id)
	for _, id := range append(ids, id) {
		if _, err := s.PruneRun(ctx, id, []byte(`{}`), t0.Add(10*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if got := chainCount(t, s); got != 0 {
		t.Errorf("%d chains left after every observation naming them was pruned, want 0", got)
	}
}

// addInline stores o as schema version 4 stored it: the chain inline in
// its details.
func addInline(t *testing.T, s *Store, o *Observation) {
	t.Helper()
	details, err := json.Marshal(observationDetails{DNS: o.DNS, TCP: o.TCP, TLS: o.TLS, STUN: o.STUN, Confirmation: o.Confirmation, PortCheck: o.PortCheck})
	if err != nil {
		t.Fatal(err)
	}
	var started any
	if !o.Started.IsZero() {
		started = o.Started.UnixNano()
	}
	if _, err := s.db.ExecContext(context.Background(), `INSERT INTO observations
	(run_id, step, grp, target, host, address, port, transport, repeat, control, started, duration_ns, failure, operation, skipped, details)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		o.RunID, string(o.Step), o.Group, o.Target, o.Host, o.Address, o.Port, o.Transport, o.Repeat, boolInt(o.Control),
		started, int64(o.Duration), o.Failure, o.Operation, o.Skipped, string(details)); err != nil {
		t.Fatal(err)
	}
}

func chainCount(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.db.QueryRowContext(t.Context(), `SELECT count(*) FROM chains`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func countTLSWithChain(runs map[int64][]Observation) int {
	n := 0
	for _, obs := range runs {
		for _, o := range obs {
			if o.TLS != nil && len(o.TLS.PeerCertificates) > 0 {
				n++
			}
		}
	}
	return n
}

func firstCert(obs []Observation) []byte {
	for _, o := range obs {
		if o.TLS != nil && len(o.TLS.PeerCertificates) > 0 {
			return o.TLS.PeerCertificates[0]
		}
	}
	return nil
}

// FuzzDecodeChain: decodeChain never panics, and what it accepts encodes
// back to the same bytes.
func FuzzDecodeChain(f *testing.F) {
	blob, _ := encodeChain([][]byte{{0x30, 0x82, 1, 2}, {}, bytes.Repeat([]byte{7}, 300)})
	f.Add(blob)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := decodeChain(b)
		if err != nil {
			return
		}
		if again, _ := encodeChain(certs); !bytes.Equal(again, b) {
			t.Errorf("decodeChain(%x) = %x, which encodes to %x", b, certs, again)
		}
	})
}
