package analysis

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// goldenDigests pins, for each Version, the SHA-256 of the golden cases'
// analysis.json files (sorted by case). A change of the rules that
// changes a golden verdict changes the digest: then raise Version, so
// verdicts stored under the old one are judged again, and add its digest.
var goldenDigests = map[int]string{
	1: "8803976923f7d7513729ab2abac812b34dd6f86bbd84d0781554385642854df5",
	2: "73c3031c70f25be521fbd5c30a54501cd592d96ef26d692ba51d49483492a920",
	3: "637b656b2048a24d9df982e0e8f029edb3df167c3e24a21e23184cb7ced26e3b",
}

func TestVersionPinsGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*", "analysis.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden analyses: %v", err)
	}
	h := sha256.New()
	for _, f := range files { // Glob sorts
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h.Write([]byte(f + "\x00"))
		h.Write(b)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want := goldenDigests[Version]; got != want {
		t.Errorf("golden analyses digest %s, pinned for analysis.Version %d: %q; if the rules changed a verdict, raise Version and pin the new digest", got, Version, want)
	}
}
