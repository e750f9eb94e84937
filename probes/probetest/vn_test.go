package probetest_test

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/reachprobe/reachprobe/probes/arrival"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// TestRelayPorts probes a relay-mode server with the arrival package's
// datagrams: inside its prefixes it answers STUN and, with a Version
// Negotiation that arrival validates, the reserved version; it ignores
// QUIC v1. Outside them it answers STUN alone.
func TestRelayPorts(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	kinds := []arrival.Kind{arrival.KindSTUN, arrival.KindQUICReserved, arrival.KindQUICv1}
	tests := []struct {
		name     string
		prefixes []netip.Prefix
		want     map[arrival.Kind]string
	}{
		{"inside", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, map[arrival.Kind]string{
			arrival.KindSTUN: arrival.EvidenceAnswer, arrival.KindQUICReserved: arrival.EvidenceAnswer, arrival.KindQUICv1: arrival.EvidenceSilence}},
		{"outside", []netip.Prefix{netip.MustParsePrefix("17.0.0.0/8")}, map[arrival.Kind]string{
			arrival.KindSTUN: arrival.EvidenceAnswer, arrival.KindQUICReserved: arrival.EvidenceSilence, arrival.KindQUICv1: arrival.EvidenceSilence}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := probetest.StartRelayPorts("127.0.0.1", []int{port}, tt.prefixes)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			res, err := arrival.Probe(context.Background(), srv.Addr(), arrival.Config{Kinds: kinds})
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range res.Kinds {
				if k.Evidence != tt.want[k.Kind] {
					t.Errorf("%s: evidence %q, want %q", k.Kind, k.Evidence, tt.want[k.Kind])
				}
				if k.Kind == arrival.KindQUICReserved && k.Evidence == arrival.EvidenceAnswer && k.VersionNegotiation != arrival.VNValid {
					t.Errorf("Version Negotiation judged %q, want %q", k.VersionNegotiation, arrival.VNValid)
				}
			}
		})
	}
}
