package measurements

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestRunNetwork(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	run := beginTestRun(t, s, t0)
	other := beginTestRun(t, s, t0.Add(1))

	google := Identity{ProbeASN: 15169, ProbeNetworkName: "Google LLC", ProbeCC: "US",
		ResolverASN: 13335, ResolverNetworkName: "Cloudflare, Inc.", ResolverCC: "US"}
	tests := []struct {
		name string
		set  *Identity // nil: nothing recorded
		want Identity
	}{
		{"nothing recorded", nil, UnknownIdentity()},
		{"recorded", &google, google},
		{"replaced, empty countries become ZZ", &Identity{ProbeASN: 3320, ProbeNetworkName: "Deutsche Telekom AG"},
			Identity{ProbeASN: 3320, ProbeNetworkName: "Deutsche Telekom AG", ProbeCC: "ZZ", ResolverCC: "ZZ"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.set != nil {
				if err := s.SetRunNetwork(ctx, run, *tt.set); err != nil {
					t.Fatalf("SetRunNetwork: %v", err)
				}
			}
			got, err := s.RunNetwork(ctx, run)
			if err != nil || got != tt.want {
				t.Errorf("RunNetwork = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	if got, err := s.RunNetwork(ctx, other); err != nil || got != UnknownIdentity() {
		t.Errorf("RunNetwork of another run = %+v, %v; want it unknown", got, err)
	}
	if err := s.SetRunNetwork(ctx, 999, google); !errors.Is(err, ErrNoRun) {
		t.Errorf("SetRunNetwork of a missing run: %v, want ErrNoRun", err)
	}
	if got, err := s.RunNetwork(ctx, 999); err != nil || got != UnknownIdentity() {
		t.Errorf("RunNetwork of a missing run = %+v, %v; want it unknown", got, err)
	}
}

func TestRunNetworkSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reachprobe.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	run := beginTestRun(t, s, t0)
	want := Identity{ProbeASN: 64496, ProbeNetworkName: "Example", ProbeCC: "IT", ResolverCC: "ZZ"}
	if err := s.SetRunNetwork(t.Context(), run, want); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.RunNetwork(t.Context(), run); err != nil || got != want {
		t.Errorf("after reopening, RunNetwork = %+v, %v; want %+v", got, err, want)
	}
}
