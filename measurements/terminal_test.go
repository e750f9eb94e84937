package measurements

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestTerminalText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "ssl_unknown_authority: x509: issuer CN=Evil CA", "ssl_unknown_authority: x509: issuer CN=Evil CA"},
		{"empty", "", ""},
		{"unicode", "Госсертификат 中国 café ✓", "Госсертификат 中国 café ✓"},
		{"backslash kept", `C:\path\x1b`, `C:\path\x1b`},
		{"escape sequence", "\x1b[2J\x1b]0;owned\x07", `\x1b[2J\x1b]0;owned\x07`},
		{"newline and tab", "line one\nline\ttwo\r", `line one\x0aline\x09two\x0d`},
		{"nul and del", "a\x00b\x7fc", `a\x00b\x7fc`},
		{"C1 CSI", "before\u009b31mafter", `before\u009b31mafter`},
		{"C1 range ends", "\u0080\u009f\u00a0", `\u0080\u009f` + "\u00a0"},
		{"bidi override", "evil\u202etxt.exe", `evil\u202etxt.exe`},
		{"bidi embeddings", "\u202a\u202b\u202c\u202d", `\u202a\u202b\u202c\u202d`},
		{"bidi isolates", "\u2066\u2067\u2068\u2069", `\u2066\u2067\u2068\u2069`},
		{"bidi marks", "\u200e\u200f\u061c", `\u200e\u200f\u061c`},
		{"line separators", "a\u2028b\u2029c", `a\u2028b\u2029c`},
		{"invalid UTF-8", "ok\xff\xfe\xc3", `ok\xff\xfe\xc3`},
		{"zero width joiner kept", "a\u200db", "a\u200db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TerminalText(tt.in); got != tt.want {
				t.Errorf("TerminalText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// acted reports whether a terminal would act on r: the property
// TerminalText guarantees, written independently of its implementation.
func acted(r rune) bool {
	return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Bidi_Control, r) ||
		unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r) || r == utf8.RuneError
}

// FuzzTerminalText: the output never holds a character a terminal acts
// on, nor invalid UTF-8; text without one comes back unchanged.
func FuzzTerminalText(f *testing.F) {
	for _, s := range []string{"", "plain", "\x1b[31mred", "\u009b2J", "a\u202eb", "\xff", "\u2066x\u2069", `\x1b`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := TerminalText(s)
		if !utf8.ValidString(got) {
			t.Fatalf("TerminalText(%q) = %q, not valid UTF-8", s, got)
		}
		for _, r := range got {
			if acted(r) {
				t.Fatalf("TerminalText(%q) = %q holds %U", s, got, r)
			}
		}
		printable := utf8.ValidString(s) && !strings.ContainsFunc(s, acted)
		if printable && got != s {
			t.Fatalf("TerminalText(%q) = %q, want it unchanged", s, got)
		}
		if !printable && got == s {
			t.Fatalf("TerminalText(%q) left it unchanged", s)
		}
	})
}

func BenchmarkTerminalTextPlain(b *testing.B) {
	s := strings.Repeat("ssl_unknown_authority: issuer CN=Apple Server Authentication CA ", 4)
	for b.Loop() {
		TerminalText(s)
	}
}
