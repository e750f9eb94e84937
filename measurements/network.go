package measurements

import (
	"fmt"
	"net/netip"
	"strings"
)

// UnknownCountry is the country code of a network that could not be
// located, as OONI writes it.
const UnknownCountry = "ZZ"

// Identity is the network a run was measured from, and the network of its
// DNS resolver: autonomous system number, the AS's name and its country.
// It never holds an IP address: the probe's public address is looked up
// and forgotten.
//
// An unknown network is AS 0 with country UnknownCountry and an empty
// name, as OONI records it.
type Identity struct {
	ProbeASN            uint   `json:"probe_asn"`
	ProbeNetworkName    string `json:"probe_network_name"`
	ProbeCC             string `json:"probe_cc"`
	ResolverASN         uint   `json:"resolver_asn"`
	ResolverNetworkName string `json:"resolver_network_name"`
	ResolverCC          string `json:"resolver_cc"`
}

// UnknownIdentity is the Identity of a run whose networks are unknown:
// AS0 in country ZZ for both the probe and its resolver.
func UnknownIdentity() Identity {
	return Identity{ProbeCC: UnknownCountry, ResolverCC: UnknownCountry}
}

// Normalized returns id with an empty country code replaced by
// UnknownCountry.
func (id Identity) Normalized() Identity {
	if id.ProbeCC == "" {
		id.ProbeCC = UnknownCountry
	}
	if id.ResolverCC == "" {
		id.ResolverCC = UnknownCountry
	}
	return id
}

// ASNString formats an AS number as OONI does: "AS1234", "AS0" when unknown.
func ASNString(asn uint) string { return fmt.Sprintf("AS%d", asn) }

// Scrubbed replaces an IP address in free text.
const Scrubbed = "[scrubbed]"

// Scrub replaces every IPv4 and IPv6 address in s with Scrubbed, as OONI
// does for free text (error messages, certificate errors).
func Scrub(s string) string { return ScrubExcept(s, nil) }

// ScrubExcept replaces every IPv4 and IPv6 address in s for which keep
// returns false (every address when keep is nil) with Scrubbed. Exports use
// it to keep the addresses a run measured, which they publish anyway, and
// drop any other, the probe's own above all.
//
// It finds what OONI's scrubber finds: an IPv4 address is four groups of
// one to three digits joined by dots, with no letter, digit or underscore
// right before or after it; an IPv6 address is a word of hex digits,
// colons and dots (and a zone, "%eth0") with at least two colons that
// netip.ParseAddr accepts, so that times like 12:30:45 survive.
func ScrubExcept(s string, keep func(netip.Addr) bool) string {
	// Scrubbing an IPv4 address can leave an IPv6 one behind ("0.0.0.0::1"
	// leaves "::1"), so repeat until nothing changes. Scrubbed itself
	// never forms part of an address, so every pass that changes s
	// removes address characters and the loop ends.
	for {
		out := scrubOnce(s, keep)
		if out == s {
			return out
		}
		s = out
	}
}

// scrubOnce is one pass of ScrubExcept.
func scrubOnce(s string, keep func(netip.Addr) bool) string {
	if !mayHoldAddress(s) {
		return s
	}
	// The common case of a field that is exactly one address.
	if a, err := netip.ParseAddr(s); err == nil {
		if keep != nil && keep(a) {
			return s
		}
		return Scrubbed
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if !isAddrChar(s[i]) || (i > 0 && isWordChar(s[i-1])) {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i
		for j < len(s) && isAddrChar(s[j]) {
			j++
		}
		if j < len(s) && s[j] == '%' && strings.Count(s[i:j], ":") >= 2 {
			for j++; j < len(s) && isZoneChar(s[j]); j++ {
			}
		}
		glued := j < len(s) && isWordChar(s[j])
		b.WriteString(scrubWord(s[i:j], glued, keep))
		i = j
	}
	// "[2001:db8::1]:443" reads better as "[scrubbed]:443".
	return strings.ReplaceAll(b.String(), "["+Scrubbed+"]", Scrubbed)
}

// mayHoldAddress is a quick test that rules out most strings: an IPv4
// address needs a digit, a dot and a digit in a row, an IPv6 address two
// colons.
func mayHoldAddress(s string) bool {
	colons := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ':':
			if colons++; colons == 2 {
				return true
			}
		case c == '.' && i > 0 && i+1 < len(s) && isDigit(s[i-1]) && isDigit(s[i+1]):
			return true
		}
	}
	return false
}

// scrubWord scrubs one maximal run of address characters that starts at a
// word boundary: an IPv6 address, or text holding IPv4 addresses such as
// "192.0.2.1:443". glued says a letter follows the run, so that it does
// not end at a word boundary.
func scrubWord(w string, glued bool, keep func(netip.Addr) bool) string {
	if strings.Count(w, ":") >= 2 {
		core := strings.TrimRight(w, ":.")
		if a, err := netip.ParseAddr(core); err == nil {
			if keep != nil && keep(a) {
				return w
			}
			return Scrubbed + w[len(core):]
		}
	}
	if !strings.Contains(w, ".") {
		return w
	}
	var b strings.Builder
	for k := 0; k < len(w); {
		if k == 0 || !isWordChar(w[k-1]) {
			if n := dottedQuad(w[k:]); n > 0 && !(glued && k+n == len(w)) {
				a, err := netip.ParseAddr(w[k : k+n])
				if err == nil && keep != nil && keep(a) {
					b.WriteString(w[k : k+n])
				} else {
					// Groups above 255 or with leading zeros are scrubbed
					// too: free text is no place to argue about notation.
					b.WriteString(Scrubbed)
				}
				k += n
				continue
			}
		}
		b.WriteByte(w[k])
		k++
	}
	return b.String()
}

// dottedQuad returns the length of the four dot-separated groups of one to
// three digits that start s and end at a word boundary, or 0.
func dottedQuad(s string) int {
	end := 0
	for g := 0; g < 4; g++ {
		if g > 0 {
			if end >= len(s) || s[end] != '.' {
				return 0
			}
			end++
		}
		start := end
		for end < len(s) && isDigit(s[end]) && end-start < 3 {
			end++
		}
		if end == start {
			return 0
		}
	}
	if end < len(s) && isWordChar(s[end]) {
		return 0
	}
	return end
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isAddrChar reports whether c can be part of an address: hex digits and
// the separators of both families.
func isAddrChar(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == '.' || c == ':'
}

// isZoneChar reports whether c can be part of an IPv6 zone ("%eth0").
func isZoneChar(c byte) bool {
	return isWordChar(c) && c != '_' || c == '.' || c == '%'
}

// isWordChar reports whether c joins the characters around it into one
// word, as \w does in a regular expression: an address glued to a letter
// ("x192.0.2.1") is not taken for one.
func isWordChar(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}
