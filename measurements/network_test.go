package measurements

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

func TestScrub(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"ipv4 with port", "dial tcp 203.0.113.9:5223: i/o timeout", "dial tcp [scrubbed]:5223: i/o timeout"},
		{"ipv6 with zone", "from fe80::1%eth0 to ::1", "from [scrubbed] to [scrubbed]"},
		{"ipv6 long form", "2001:db8:0:0:0:0:0:1 ok", "[scrubbed] ok"},
		{"ipv6 in brackets", "dial udp [2001:db8::53]:53: refused", "dial udp [scrubbed]:53: refused"},
		{"mapped ipv4", "at ::ffff:192.0.2.1.", "at [scrubbed]."},
		{"whole field", "198.51.100.7", "[scrubbed]"},
		{"end of sentence", "connect to 192.0.2.1.", "connect to [scrubbed]."},
		{"reverse name", "1.2.3.4.in-addr.arpa", "[scrubbed].in-addr.arpa"},
		{"two addresses", "10.0.0.1->10.0.0.2", "[scrubbed]->[scrubbed]"},
		{"out of range groups", "999.1.1.1 is not valid", "[scrubbed] is not valid"},
		{"no address", "no address here: just text", "no address here: just text"},
		{"double colon alone", "a :: b", "a :: b"},
		{"time of day", "at 12:30:45.123 UTC", "at 12:30:45.123 UTC"},
		{"version", "TLSv1.3 and v1.2.3", "TLSv1.3 and v1.2.3"},
		{"glued to a letter", "x192.0.2.1", "x[scrubbed]"},
		{"glued to underscores", "ip_9.9.9.9_", "ip_[scrubbed]_"},
		{"glued to a word", "probe_9.9.9.9_x", "probe_[scrubbed]_x"},
		{"ipv6 glued to an underscore", "_::1", "_[scrubbed]"},
		{"ipv6 glued to letters", "fromx2001:db8::1y", "fromx[scrubbed]y"},
		{"five groups", "1.2.3.4567", "[scrubbed]7"},
		{"zone that is not one", "[000:0::0%:00", "[[scrubbed]%:00"},
		{"zone", "fe80::1%eth0.5 up", "[scrubbed] up"},
		{"host name", "courier.push.apple.com", "courier.push.apple.com"},
		{"already scrubbed", "dial [scrubbed]:443", "dial [scrubbed]:443"},
		{"ipv6 left after ipv4", "0.0.0.0::0", "[scrubbed][scrubbed]"},
		{"quad glued to a letter after", "00.0.0.0X0", "[scrubbed]X0"},
		{"hex before a double colon is an address", "std::string", "st[scrubbed]string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Scrub(tt.in); got != tt.want {
				t.Errorf("Scrub(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestScrubExcept(t *testing.T) {
	measured := map[netip.Addr]bool{
		netip.MustParseAddr("17.57.146.20"):    true,
		netip.MustParseAddr("2620:149:a44::1"): true,
	}
	keep := func(a netip.Addr) bool { return measured[a] }
	tests := []struct{ name, in, want string }{
		{"measured ipv4 kept", "forged 17.57.146.20, real 192.0.2.1", "forged 17.57.146.20, real [scrubbed]"},
		{"measured ipv6 kept", "[2620:149:a44::1]:443 from [2001:db8::7]:5000", "[2620:149:a44::1]:443 from [scrubbed]:5000"},
		{"measured field kept", "17.57.146.20", "17.57.146.20"},
		{"other field scrubbed", "203.0.113.77", "[scrubbed]"},
		{"leading zeros never kept", "at 0.0.0.000", "at [scrubbed]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ScrubExcept(tt.in, keep); got != tt.want {
				t.Errorf("ScrubExcept(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// addressLeft returns a substring of s that is an address (IPv6 "::"
// aside, which names no host) or a dotted quad of one to three digits a
// group, or "": an independent statement, by brute force, of what must not
// survive Scrub whatever surrounds it.
func addressLeft(s string) string {
	for i := range len(s) {
		for j := i + 2; j <= len(s) && j-i <= maxAddressLen; j++ {
			sub := s[i:j]
			if sub == "::" || strings.HasPrefix(sub, "::%") {
				continue // the unspecified address, zone or not
			}
			if _, err := netip.ParseAddr(sub); err == nil {
				return sub
			}
			if isLenientQuad(sub) {
				return sub
			}
		}
	}
	return ""
}

// lenientQuad matches four groups of one to three digits.
var lenientQuad = regexp.MustCompile(`^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$`)

func isLenientQuad(s string) bool { return lenientQuad.MatchString(s) }

// hasBadQuad reports whether s holds a dotted quad that is not an address
// (a group above 255, a leading zero), wherever it is.
func hasBadQuad(s string) bool {
	for i := range len(s) {
		for j := i + 7; j <= len(s) && j-i <= 15; j++ {
			if sub := s[i:j]; isLenientQuad(sub) {
				if _, err := netip.ParseAddr(sub); err != nil {
					return true
				}
			}
		}
	}
	return false
}

// TestScrubRegressions holds inputs on which FuzzScrub once failed.
func TestScrubRegressions(t *testing.T) {
	for _, s := range []string{"[000:0::0%:00", "_::1", "ip_9.9.9.9_", "probe_9.9.9.9_"} {
		checkScrub(t, s)
	}
}

func FuzzScrub(f *testing.F) {
	for _, s := range []string{
		"dial 10.1.2.3:443 and [2001:db8::5]:80", "::ffff:192.0.2.1", "fe80::1%eth0", "1.1.2.3.4",
		"a.1.2.3.4", "12:30:45", "x2001:db8::1", "2001:db8::1x", "[scrubbed]", "1.2.3.4.5.6.7.8",
	} {
		f.Add(s)
	}
	f.Fuzz(checkScrub)
}

// checkScrub states what Scrub guarantees for s.
func checkScrub(t *testing.T, s string) {
	if len(s) > 4096 {
		return // the brute-force oracle is quadratic
	}
	{
		out := Scrub(s)
		if left := addressLeft(out); left != "" {
			t.Fatalf("Scrub(%q) = %q still holds the address %q", s, out, left)
		}
		if strings.Count(out, Scrubbed) < strings.Count(s, Scrubbed) {
			t.Fatalf("Scrub lost text: %q -> %q", s, out)
		}
		if again := Scrub(out); again != out {
			t.Fatalf("Scrub is not idempotent: %q -> %q -> %q", s, out, again)
		}
		// Keeping every address changes only dotted quads that are not
		// addresses (groups above 255, leading zeros).
		if kept := ScrubExcept(s, func(netip.Addr) bool { return true }); kept != s && !hasBadQuad(s) {
			t.Fatalf("ScrubExcept keeping every address changed %q to %q", s, kept)
		}
	}
}

func TestIdentity(t *testing.T) {
	if got, want := UnknownIdentity(), (Identity{ProbeCC: "ZZ", ResolverCC: "ZZ"}); got != want {
		t.Errorf("UnknownIdentity() = %+v, want %+v", got, want)
	}
	if got, want := (Identity{ProbeASN: 3320, ProbeCC: "DE"}).Normalized(), (Identity{ProbeASN: 3320, ProbeCC: "DE", ResolverCC: "ZZ"}); got != want {
		t.Errorf("Normalized() = %+v, want %+v", got, want)
	}
	for asn, want := range map[uint]string{0: "AS0", 15169: "AS15169"} {
		if got := ASNString(asn); got != want {
			t.Errorf("ASNString(%d) = %q, want %q", asn, got, want)
		}
	}
}
