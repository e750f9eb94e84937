package measurements

import (
	"net/netip"
)

// maxAddressLen is the length of the longest IP literal netip.ParseAddr
// accepts without a zone: eight groups in IPv4-mapped form,
// "0000:0000:0000:0000:0000:ffff:255.255.255.255".
const maxAddressLen = 45

// ScrubExcept replaces every IPv4 and IPv6 address in s for which keep
// returns false (every address when keep is nil) with Scrubbed. Exports use
// it to keep the addresses a run measured, which they publish anyway, and
// drop any other, the probe's own above all.
//
// It finds an address whatever surrounds it: text from the network or a
// library may glue one to letters or underscores ("ip_192.0.2.1_",
// "x2001:db8::1"), and a scrubber that waits for a word boundary lets those
// through. At each position it takes the longest literal that starts
// there: four dot-separated groups of one to three digits (groups above
// 255 and leading zeros included: free text is no place to argue about
// notation), or an IPv6 address netip.ParseAddr accepts, with its zone
// ("%eth0"). The bare "::" names no host and is left alone, as are times
// such as 12:30:45, which are no address. "[2001:db8::1]:443" becomes
// "[scrubbed]:443".
//
// After Scrub (keep nil), no substring of the result is an address: every
// position left as it was starts none, and Scrubbed, bracketed, never
// joins the text around it into one.
func ScrubExcept(s string, keep func(netip.Addr) bool) string {
	if !mayHoldAddress(s) {
		return s
	}
	out := make([]byte, 0, len(s))
	changed := false
	for i := 0; i < len(s); {
		n, addr, ok := addressAt(s[i:])
		if n == 0 {
			out = append(out, s[i])
			i++
			continue
		}
		if ok && keep != nil && keep(addr) {
			out = append(out, s[i:i+n]...)
			i += n
			continue
		}
		changed = true
		end := i + n
		// "[2001:db8::1]" reads better as "[scrubbed]".
		if len(out) > 0 && out[len(out)-1] == '[' && end < len(s) && s[end] == ']' {
			out = out[:len(out)-1]
			end++
		}
		out = append(out, Scrubbed...)
		i = end
	}
	if !changed {
		return s
	}
	return string(out)
}

// addressAt returns the length of the longest address literal at the
// start of s (0 when none starts there), the address, and whether it
// parses (a dotted quad with a group above 255 does not).
func addressAt(s string) (int, netip.Addr, bool) {
	if s == "" || !isAddrChar(s[0]) {
		return 0, netip.Addr{}, false
	}
	run := 0
	for run < len(s) && run < maxAddressLen && isAddrChar(s[run]) {
		run++
	}
	best, bestAddr, bestOK := 0, netip.Addr{}, false
	if n := dottedQuad(s); n > 0 {
		best = n
		bestAddr, bestOK = parseQuad(s[:n])
	}
	// The longest IPv6 literal first: the run can end in characters
	// (":", ".", hex) that do not belong to the address.
	colons := 0
	for i := 0; i < run; i++ {
		if s[i] == ':' {
			colons++
		}
	}
	for end := run; end > best && colons >= 2; end-- {
		if s[end-1] == ':' && end == 2 && s[:2] == "::" {
			break // the bare "::"
		}
		if a, err := netip.ParseAddr(s[:end]); err == nil && a.Is6() {
			n := end + zoneLen(s[end:])
			return n, a, true
		}
		if s[end-1] == ':' {
			colons--
		}
	}
	return best, bestAddr, bestOK
}

// parseQuad parses a dotted quad found by dottedQuad.
func parseQuad(q string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(q)
	return a, err == nil
}

// zoneLen returns the length of the IPv6 zone ("%eth0") at the start of s,
// or 0.
func zoneLen(s string) int {
	if s == "" || s[0] != '%' {
		return 0
	}
	n := 1
	for n < len(s) && isZoneChar(s[n]) {
		n++
	}
	if n == 1 {
		return 0
	}
	return n
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

// dottedQuad returns the length of the longest four dot-separated groups
// of one to three digits that start s, or 0.
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
	return end
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isAddrChar reports whether c can be part of an address: hex digits and
// the separators of both families.
func isAddrChar(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == '.' || c == ':'
}

// isZoneChar reports whether c can be part of an IPv6 zone ("%eth0",
// "%wlan0.5").
func isZoneChar(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '.'
}
