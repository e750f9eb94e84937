package measurements

import (
	"net/netip"
	"testing"
)

func TestIsBogon(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", true}, {"0.0.0.0", true}, {"10.1.2.3", true}, {"192.168.1.1", true},
		{"172.31.255.255", true}, {"172.32.0.1", false}, {"100.64.0.1", true}, {"169.254.1.1", true},
		{"17.253.144.10", false}, {"8.8.8.8", false}, {"::1", true}, {"fd00::1", true},
		{"fe80::1", true}, {"2620:149:a44::1", false}, {"::ffff:10.0.0.1", true}, {"::ffff:17.0.0.1", false},
		{"224.0.0.1", true}, {"2001:db8::1", true},
		// NAT64 (RFC 6052): judged as the IPv4 address carried.
		{"64:ff9b::a00:1", true}, {"64:ff9b::1139:9214", false}, {"64:ff9b::7f00:1", true},
	}
	for _, tt := range tests {
		if got := IsBogon(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("IsBogon(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if !IsBogon(netip.Addr{}) {
		t.Error("IsBogon(invalid) = false, want true")
	}
}

func TestUnwrapIPv4(t *testing.T) {
	tests := []struct{ in, want string }{
		{"64:ff9b::1139:9214", "17.57.146.20"},
		{"64:ff9b::17.57.146.20", "17.57.146.20"},
		{"::ffff:17.57.146.20", "17.57.146.20"},
		{"17.57.146.20", "17.57.146.20"},
		{"2620:149:a44::20", "2620:149:a44::20"},
		// A network-specific prefix is not recognised by the address alone.
		{"fd00:64::1139:9214", "fd00:64::1139:9214"},
		{"64:ff9b:1::1139:9214", "64:ff9b:1::1139:9214"},
	}
	for _, tt := range tests {
		if got := UnwrapIPv4(netip.MustParseAddr(tt.in)); got != netip.MustParseAddr(tt.want) {
			t.Errorf("UnwrapIPv4(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
