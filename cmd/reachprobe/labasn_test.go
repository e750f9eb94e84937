package main

import (
	"net/netip"
	"testing"
)

func TestLabASNs(t *testing.T) {
	entries, err := parseLabASNs("81.200.60.0/24 64500 Lab ISP; 81.200.60.0/30 AS64501 Lab edge ;62.115.0.0/16 64510")
	if err != nil {
		t.Fatal(err)
	}
	lookup := labASLookup(entries, func(netip.Addr) (uint, string) { return 0, "" })
	tests := []struct {
		addr string
		asn  uint
		name string
	}{
		{"81.200.60.2", 64501, "Lab edge"},
		{"81.200.60.9", 64500, "Lab ISP"},
		{"62.115.60.2", 64510, ""},
		{"192.168.77.1", 0, ""},
	}
	for _, tt := range tests {
		if asn, name := lookup(netip.MustParseAddr(tt.addr)); asn != tt.asn || name != tt.name {
			t.Errorf("%s: AS%d %q, want AS%d %q", tt.addr, asn, name, tt.asn, tt.name)
		}
	}
	for _, bad := range []string{"10.0.0.0/8", "nonsense 1 x", "10.0.0.0/8 ASx"} {
		if _, err := parseLabASNs(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
