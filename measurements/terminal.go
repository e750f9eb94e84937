package measurements

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// TerminalText returns s, a string from the database, made safe to print
// on a terminal: every character a terminal would act on instead of
// printing is written as a visible escape. A censor chooses many stored
// strings (failure text, a certificate's issuer, a QUIC close reason), and
// printed raw they could move the cursor, rewrite what the screen shows,
// or reorder it.
//
//   - C0 controls (newline and tab included) and DEL become \xNN (\x1b);
//   - C1 controls (U+0080 to U+009F, U+009B being a CSI) become \uNNNN;
//   - bidirectional marks, embeddings, overrides and isolates (U+061C,
//     U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069) and the line
//     and paragraph separators (U+2028, U+2029) become \uNNNN;
//   - a byte that is not valid UTF-8 becomes \xNN.
//
// Everything else, the backslash included, is unchanged, so printable
// text round-trips as it is. It is for text output only: JSON output
// escapes by its own rules and stays exact.
func TerminalText(s string) string {
	i := escapeAt(s)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case needsEscape(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// escapeAt is the index of the first byte TerminalText must escape, or -1.
func escapeAt(s string) int {
	for i := 0; i < len(s); {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || needsEscape(r) {
			return i
		}
		i += size
	}
	return -1
}

// needsEscape reports whether a terminal acts on r rather than print it.
func needsEscape(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f: // C0, DEL, C1
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f: // bidi marks
		return true
	case r >= 0x2028 && r <= 0x202e: // separators, embeddings, overrides
		return true
	case r >= 0x2066 && r <= 0x2069: // isolates
		return true
	}
	return false
}
