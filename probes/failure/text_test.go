package failure

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestText(t *testing.T) {
	long := strings.Repeat("x", 9437184)
	tests := []struct {
		name, in, want string
	}{
		{"short text is kept, scrubbed", "dial 192.0.2.1:53 failed", "dial [scrubbed]:53 failed"},
		{"exactly the cap", strings.Repeat("y", MaxTextBytes), strings.Repeat("y", MaxTextBytes)},
		{"a 9 MB status line", "malformed HTTP status code " + long,
			"malformed HTTP status code " + strings.Repeat("x", MaxTextBytes-27) + "…[truncated, 9437211 bytes]"},
		{"an address at the cut is not split", strings.Repeat("z", MaxTextBytes-5) + " 192.0.2.77 and more",
			strings.Repeat("z", MaxTextBytes-5) + " …[truncated, 527 bytes]"},
		{"a character at the cut is not split", strings.Repeat("w", MaxTextBytes-1) + "é" + long[:10],
			strings.Repeat("w", MaxTextBytes-1) + "…[truncated, 523 bytes]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Text(tt.in); got != tt.want {
				t.Errorf("Text(%d bytes) = %.80q... (%d bytes), want %.80q... (%d bytes)", len(tt.in), got, len(got), tt.want, len(tt.want))
			}
		})
	}
}

// TestClassifyCapsUnknownText is the boundary: an unknown failure from a
// server's megabytes of text is stored capped.
func TestClassifyCapsUnknownText(t *testing.T) {
	err := errors.New("malformed HTTP status code \"" + strings.Repeat("\x1b[31m", 2<<20) + "\"")
	got := Classify(err)
	if !strings.HasPrefix(got, UnknownPrefix) {
		t.Fatalf("Classify = %.60q, want an unknown_failure", got)
	}
	if len(got) > len(UnknownPrefix)+MaxTextBytes+64 {
		t.Errorf("Classify kept %d bytes, want at most %d", len(got), len(UnknownPrefix)+MaxTextBytes+64)
	}
	if want := "…[truncated, 10485789 bytes]"; !strings.HasSuffix(got, want) {
		t.Errorf("Classify = ...%q, want it to end with %q", got[len(got)-40:], want)
	}
}

// FuzzText checks Text's promises on any input: bounded, valid UTF-8 kept
// valid, the whole size noted when cut.
func FuzzText(f *testing.F) {
	for _, s := range []string{"", "dial 10.0.0.1:80", strings.Repeat("1.2.3.4 ", 100), strings.Repeat("é", 400)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Text(s)
		// Scrubbing can lengthen a text ("::1" becomes "[scrubbed]"), at
		// most tenfold per three bytes.
		if limit := 4*MaxTextBytes + 64; len(got) > limit {
			t.Fatalf("Text(%d bytes) kept %d bytes, want at most %d", len(s), len(got), limit)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Text(%q) = %q is not valid UTF-8", s, got)
		}
		if len(s) > MaxTextBytes && !strings.Contains(got, "[truncated, ") {
			t.Fatalf("Text(%d bytes) = %q does not say it was cut", len(s), got)
		}
	})
}
