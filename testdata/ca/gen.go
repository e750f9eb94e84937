//go:build ignore

// gen writes the committed test CAs of reachprobe: the trusted test CA
// (ca.pem, ca-key.pem, CN "reachprobe test CA") and an untrusted CA playing
// an intercepting middlebox (untrusted.pem, untrusted-key.pem, CN
// "reachprobe untrusted CA"). Both have ECDSA P-256 keys and are valid from
// 2020-01-01 to 2120-01-01, so the files never need renewing.
//
// Rerun it from the module root when the CAs must change (it overwrites the
// four files with new keys; nothing depends on the old ones):
//
//	go run testdata/ca/gen.go
//
// or elsewhere with -dir pointing at this directory.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Validity of the committed CAs: wide enough that no test ever sees them
// expire or not yet valid.
var (
	notBefore = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter  = time.Date(2120, 1, 1, 0, 0, 0, 0, time.UTC)
)

func main() {
	dir := flag.String("dir", filepath.Join("testdata", "ca"), "directory to write the CA files to")
	flag.Parse()
	cas := []struct{ name, cert, key string }{
		{"reachprobe test CA", "ca.pem", "ca-key.pem"},
		{"reachprobe untrusted CA", "untrusted.pem", "untrusted-key.pem"},
	}
	for _, ca := range cas {
		if err := writeCA(ca.name, filepath.Join(*dir, ca.cert), filepath.Join(*dir, ca.key)); err != nil {
			log.Fatal(err)
		}
	}
}

func writeCA(name, certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o644) // a test key, meant to be public
}
