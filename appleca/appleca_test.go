package appleca

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// The SHA-256 fingerprints Apple publishes for its roots
// (https://www.apple.com/certificateauthority/) and those of the two
// intermediates, as the shared data files record them after checking with
// openssl; recomputed for the embedded copies with
//
//	openssl x509 -in CERT.pem -noout -fingerprint -sha256
//
// A changed file must fail here.
var (
	wantRoots = map[string]string{
		"Apple Root CA":      "B0:B1:73:0E:CB:C7:FF:45:05:14:2C:49:F1:29:5E:6E:DA:6B:CA:ED:7E:2C:68:C5:BE:91:B5:A1:10:01:F0:24",
		"Apple Root CA - G2": "C2:B9:B0:42:DD:57:83:0E:7D:11:7D:AC:55:AC:8A:E1:94:07:D3:8E:41:D8:8F:32:15:BC:3A:89:04:44:A0:50",
		"Apple Root CA - G3": "63:34:3A:BF:B8:9A:6A:03:EB:B5:7E:9B:3F:5F:A7:BE:7C:4F:5C:75:6F:30:17:B3:A8:C4:88:C3:65:3E:91:79",
	}
	wantIntermediates = map[string]string{
		"Apple Server Authentication CA":   "EF:D0:C3:35:2E:8F:5C:C6:C7:67:8A:5C:B4:83:70:C3:41:DB:58:D3:9F:C0:56:9D:5E:10:6F:02:C4:FC:AC:EB",
		"Apple Server Authentication CA 2": "2D:9B:64:D8:EC:50:D5:D3:E5:A6:65:91:94:CE:52:D6:07:B2:AD:3C:02:6F:DD:3D:7F:AB:72:41:83:C2:32:D5",
	}
)

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

func TestFingerprints(t *testing.T) {
	tests := []struct {
		name  string
		certs []*x509.Certificate
		want  map[string]string
	}{
		{"roots", Roots(), wantRoots},
		{"intermediates", Intermediates(), wantIntermediates},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.certs) != len(tt.want) {
				t.Fatalf("%d certificates embedded, want %d", len(tt.certs), len(tt.want))
			}
			for _, c := range tt.certs {
				want, ok := tt.want[c.Subject.CommonName]
				if !ok {
					t.Errorf("unexpected certificate %q", c.Subject.CommonName)
					continue
				}
				if got := fingerprint(c); got != want {
					t.Errorf("%s: SHA-256 %s, want %s", c.Subject.CommonName, got, want)
				}
			}
		})
	}
}

// TestIntermediatesChainToRoots checks each intermediate verifies under
// the embedded roots, as `openssl verify -CAfile roots.pem` does, at a
// time inside every certificate's validity.
func TestIntermediatesChainToRoots(t *testing.T) {
	roots := x509.NewCertPool()
	for _, c := range Roots() {
		// Apple Root CA signs itself with SHA-1, which Go no longer
		// checks; a root's self-signature is not what makes it trusted.
		if !c.IsCA || string(c.RawSubject) != string(c.RawIssuer) {
			t.Errorf("%s: not a self-issued authority", c.Subject.CommonName)
		}
		roots.AddCert(c)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range Intermediates() {
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s does not verify under Apple's roots: %v", c.Subject.CommonName, err)
		}
		if string(c.RawSubject) == string(c.RawIssuer) {
			t.Errorf("%s is self-issued, want an intermediate", c.Subject.CommonName)
		}
	}
}

// TestCopies checks callers get their own copies.
func TestCopies(t *testing.T) {
	a, b := Roots(), Roots()
	if a[0] == b[0] {
		t.Error("Roots returned the same certificate twice; want a fresh parse")
	}
	p := RootsPEM()
	p[0] = 'X'
	if RootsPEM()[0] == 'X' {
		t.Error("RootsPEM shares its bytes with callers")
	}
	if len(IntermediatesPEM()) == 0 {
		t.Error("IntermediatesPEM is empty")
	}
}
