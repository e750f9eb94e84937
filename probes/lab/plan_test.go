//go:build lab

package lab

import (
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/probes/catalog"
)

// TestLabPlan checks the lab's address plan against the lab catalog: it
// needs no root, and its name starts with TestLab so "make lab" runs it.
func TestLabPlan(t *testing.T) {
	cat, err := catalog.Load(filepath.Join("..", "..", labCatalog))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(cat)
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Zone(true).Validate(); err != nil {
		t.Errorf("zone: %v", err)
	}

	served := func(a netip.Addr) bool {
		return slices.ContainsFunc(internetPrefixes, func(p string) bool { return netip.MustParsePrefix(p).Contains(a) })
	}
	for name, addrs := range hostAddresses {
		for _, s := range addrs {
			a := netip.MustParseAddr(s)
			if a.Is4() && !served(a) {
				t.Errorf("%s: %s is not in a prefix the fake internet serves", name, a)
			}
		}
	}
	for _, s := range []string{ResolverAddr, DoHAddr} {
		if !served(netip.MustParseAddr(s)) {
			t.Errorf("%s is not in a prefix the fake internet serves", s)
		}
	}
	if served(netip.MustParseAddr(InjectedAddr)) {
		t.Errorf("the injected address %s is served by the fake internet; it must lead nowhere", InjectedAddr)
	}

	// The censor's rules name these blocks: every host of the group, in
	// the lab catalog or the default one (TestLabDefaultCatalog runs it),
	// must be inside, and no other host.
	def, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	defPlan, err := NewPlan(def)
	if err != nil {
		t.Fatalf("the lab cannot serve the default catalog: %v", err)
	}
	blocks := []struct {
		prefix string
		hosts  func(string) bool
	}{
		{pushCourierBlock, func(h string) bool {
			return strings.HasSuffix(h, "-courier.push.apple.com") || h == "courier.push.apple.com"
		}},
		{identityBlock, func(h string) bool {
			return slices.Contains(plan.Hosts(identity), h) || slices.Contains(defPlan.Hosts(identity), h)
		}},
	}
	for _, b := range blocks {
		p := netip.MustParsePrefix(b.prefix)
		for name, addrs := range hostAddresses {
			a := netip.MustParseAddr(addrs[0])
			if got, want := p.Contains(a), b.hosts(name); got != want {
				t.Errorf("%s (%s) in %s: %v, want %v", name, a, p, got, want)
			}
		}
	}

	for _, tt := range []struct {
		name string
		got  []int
		want []int
	}{
		{"TLS ports", plan.TLSPorts(), []int{443, 2197, 5223}},
		{"QUIC ports", plan.QUICPorts(), []int{443}},
	} {
		if !slices.Equal(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	stun := plan.STUNPorts()
	for _, port := range []int{3478, 3497, 16384, 16387, 16393, 16402, 19302} {
		if !slices.Contains(stun, port) {
			t.Errorf("STUN ports %v lack %d", stun, port)
		}
	}
	if got := plan.ALPNs("quic"); !slices.Equal(got, []string{"h3"}) {
		t.Errorf("QUIC ALPNs = %v, want [h3], what an HTTP/3 server accepts", got)
	}
}
