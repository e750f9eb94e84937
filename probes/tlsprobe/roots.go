package tlsprobe

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/reachprobe/reachprobe/probes/inputfile"
)

const certificatePEMType = "CERTIFICATE"

// MaxRootsFileBytes caps a --ca-file. Debian's whole bundle of public
// roots is about 220 KB; 4 MiB is far above any honest roots file and
// keeps a wrong path (/dev/zero) from filling memory.
const MaxRootsFileBytes = 4 << 20

// pemBegin starts every PEM block.
var pemBegin = []byte("-----BEGIN")

// LoadRoots returns the system roots plus the certificates of each PEM
// file (a user's --ca-file). Without system roots (or where the platform
// cannot list them) the pool starts empty. Blocks of other types in a file
// (a private key kept alongside) are skipped.
//
// An error names the file and says what is wrong with it: it cannot be
// read, holds no certificate, or a PEM block is malformed or does not
// parse, with the block's number and line.
func LoadRoots(files ...string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, file := range files {
		data, err := inputfile.Read(file, MaxRootsFileBytes)
		if err != nil {
			return nil, fmt.Errorf("reading roots: %w", err)
		}
		certs, err := parseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("roots file %s: %w", file, err)
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return pool, nil
}

// parseCertificates returns the certificates of the PEM blocks in data.
// Text outside blocks (comments, as in many bundles) is ignored.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var (
		certs  []*x509.Certificate
		types  []string
		rest   = data
		number int
	)
	for {
		begin := bytes.Index(rest, pemBegin)
		if begin < 0 {
			break
		}
		number++
		line := lineOf(data, len(data)-len(rest)+begin)
		// Decode one block at a time: given more, pem.Decode silently
		// skips a malformed block and returns the next good one.
		seg := rest[begin:]
		end := len(seg)
		if next := bytes.Index(seg[len(pemBegin):], pemBegin); next >= 0 {
			end = len(pemBegin) + next
		}
		block, after := pem.Decode(seg[:end])
		if block == nil {
			return nil, fmt.Errorf("PEM block %d (line %d) is malformed", number, line)
		}
		rest = seg[end-len(after):]
		if block.Type != certificatePEMType {
			types = append(types, block.Type)
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (line %d): %w", number, line, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		if len(types) > 0 {
			return nil, fmt.Errorf("no certificate found (only %q blocks)", types)
		}
		return nil, errors.New("no certificate found (no PEM block)")
	}
	return certs, nil
}

// lineOf returns the 1-based line number of byte offset off in data.
func lineOf(data []byte, off int) int {
	return bytes.Count(data[:off], []byte("\n")) + 1
}
