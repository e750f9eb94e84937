package tlsprobe

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/probes/probetest"
)

func TestLoadRoots(t *testing.T) {
	trusted, untrusted := testCAs(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	root, err := probetest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(root, probetest.TestCACertFile)
	bundle := write("bundle.pem", bytes.Join([][]byte{
		[]byte("# a comment before the first block\n"),
		untrusted.CertPEM(),
		[]byte("trusted:\n"),
		trusted.CertPEM(),
	}, nil))
	keyAndCert := write("key-and-cert.pem", append(readFile(t, filepath.Join(root, probetest.TestCAKeyFile)), trusted.CertPEM()...))

	trustedLeaf := leaf(t, trusted, courier).Leaf
	untrustedLeaf := leaf(t, untrusted, courier).Leaf
	tests := []struct {
		name          string
		files         []string
		wantTrusted   bool
		wantUntrusted bool
	}{
		{"system only", nil, false, false},
		{"test CA", []string{caFile}, true, false},
		{"bundle with comments", []string{bundle}, true, true},
		{"key block skipped", []string{keyAndCert}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := LoadRoots(tt.files...)
			if err != nil {
				t.Fatalf("LoadRoots: %v", err)
			}
			for _, c := range []struct {
				name string
				leaf *x509.Certificate
				want bool
			}{{"trusted", trustedLeaf, tt.wantTrusted}, {"untrusted", untrustedLeaf, tt.wantUntrusted}} {
				_, err := c.leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: courier})
				if got := err == nil; got != c.want {
					t.Errorf("%s leaf verifies = %v (%v), want %v", c.name, got, err, c.want)
				}
			}
		})
	}
}

func TestLoadRootsErrors(t *testing.T) {
	trusted, _ := testCAs(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := trusted.CertPEM()
	truncated := good[:len(good)-10] // END line cut short
	badDER := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	goodLines := bytes.Count(good, []byte("\n"))

	tests := []struct {
		name    string
		file    string
		wantErr []string // substrings of the error
	}{
		{"missing", filepath.Join(dir, "missing.pem"), []string{"missing.pem", "no such file"}},
		{"empty", write("empty.pem", nil), []string{"empty.pem", "no certificate found (no PEM block)"}},
		{"text only", write("text.pem", []byte("hello\n")), []string{"text.pem", "no certificate found"}},
		{"key only", write("key.pem", key), []string{"key.pem", `no certificate found (only ["PRIVATE KEY"] blocks)`}},
		{"bad DER", write("bad-der.pem", badDER), []string{"bad-der.pem", "PEM block 1 (line 1): x509: "}},
		{
			"malformed second block", write("malformed.pem", append(append(bytes.Clone(good), truncated...), good...)),
			[]string{"malformed.pem", "PEM block 2 (line " + strconv.Itoa(goodLines+1) + ") is malformed"},
		},
		{
			"bad DER after comment", write("comment.pem", append([]byte("# one\n# two\n"), badDER...)),
			[]string{"comment.pem", "PEM block 1 (line 3)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := LoadRoots(tt.file)
			if err == nil {
				t.Fatalf("LoadRoots = %v, nil; want an error", pool)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("LoadRoots: %v, want an error containing %q", err, want)
				}
			}
		})
	}
}

func FuzzParseCertificates(f *testing.F) {
	ca, err := probetest.NewCA("fuzz seed CA")
	if err != nil {
		f.Fatal(err)
	}
	good := ca.CertPEM()
	f.Add(good)
	f.Add(append(append([]byte("# comment\n"), good...), good[:len(good)-10]...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----BEGIN"))
	f.Add([]byte("-----BEGIN"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := parseCertificates(data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
		if err != nil && certs != nil {
			t.Fatal("certificates returned with an error")
		}
	})
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestLoadRootsEndlessFile(t *testing.T) {
	_, err := LoadRoots("/dev/zero")
	if err == nil || !strings.Contains(err.Error(), "/dev/zero is larger than 4194304 bytes") {
		t.Errorf("LoadRoots(/dev/zero) error = %v, want it too large", err)
	}
}
