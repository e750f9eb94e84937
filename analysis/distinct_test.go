package analysis

import (
	"strings"
	"testing"
	"unicode"
)

// FuzzQuoteBytes: whatever a middlebox sends, the quoted evidence is
// printable ASCII, bounded, and never carries a control character raw.
func FuzzQuoteBytes(f *testing.F) {
	f.Add([]byte(blockPage))
	f.Add([]byte(portalPage))
	f.Add([]byte{0x1b, '[', '2', 'J', 0, 0xff, 0xfe})
	f.Add([]byte("<script>alert(1)</script>\u202e"))
	f.Fuzz(func(t *testing.T, b []byte) {
		q := quoteBytes(b)
		if len(q) > 4*maxQuoted+16 {
			t.Errorf("quoted %d bytes into %d", len(b), len(q))
		}
		for _, r := range q {
			if r > unicode.MaxASCII || !unicode.IsPrint(r) {
				t.Fatalf("quoted evidence %q carries %U raw", q, r)
			}
		}
		if len(b) > 0 && !strings.HasPrefix(q, `"`) {
			t.Errorf("quoted evidence %q is not quoted", q)
		}
	})
}
