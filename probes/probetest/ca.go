package probetest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// Validity windows of generated certificates. Leaves are made when a test
// or lab starts, so they only need to outlive it; the hour of backdating
// absorbs clock skew between namespaces sharing one kernel clock and any
// rounding of NotBefore.
const (
	certBackdate  = time.Hour
	leafValidity  = 30 * 24 * time.Hour
	freshCAExpiry = 10 * 365 * 24 * time.Hour
)

// Paths of the committed CAs, relative to the module root. testdata/ca/gen.go
// regenerates them.
const (
	TestCACertFile      = "testdata/ca/ca.pem"
	TestCAKeyFile       = "testdata/ca/ca-key.pem"
	UntrustedCACertFile = "testdata/ca/untrusted.pem"
	UntrustedCAKeyFile  = "testdata/ca/untrusted-key.pem"
)

// PEM block types.
const (
	certificatePEMType = "CERTIFICATE"
	pkcs8KeyPEMType    = "PRIVATE KEY"
	ecKeyPEMType       = "EC PRIVATE KEY"
	rsaKeyPEMType      = "RSA PRIVATE KEY"
)

// CA is a certificate authority that issues leaf certificates to the
// loopback TLS servers. Tests trust it through Pool; a second CA that the
// probe does not trust plays an intercepting middlebox.
type CA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
}

// NewCA makes a fresh in-memory CA with an ECDSA P-256 key and the common
// name name, valid from an hour ago for ten years.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-certBackdate),
		NotAfter:              now.Add(freshCAExpiry),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	return &CA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: certificatePEMType, Bytes: der})}, nil
}

// LoadCA reads a CA from a PEM certificate file and a PEM private key file
// (PKCS #8, SEC 1 EC or PKCS #1 RSA). The key must match the certificate.
func LoadCA(certPEMPath, keyPEMPath string) (*CA, error) {
	certPEM, err := os.ReadFile(certPEMPath)
	if err != nil {
		return nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != certificatePEMType {
		return nil, fmt.Errorf("%s: no %s PEM block", certPEMPath, certificatePEMType)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPEMPath, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s: certificate is not a CA", certPEMPath)
	}
	keyPEM, err := os.ReadFile(keyPEMPath)
	if err != nil {
		return nil, fmt.Errorf("reading CA key: %w", err)
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPEMPath, err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("%s does not match the certificate in %s", keyPEMPath, certPEMPath)
	}
	return &CA{cert: cert, key: key, certPEM: pem.EncodeToMemory(block)}, nil
}

// LoadTestCA loads the committed test CA ("reachprobe test CA"), the one
// tests and the lab give the probe as an extra root.
func LoadTestCA() (*CA, error) {
	return loadCommittedCA(TestCACertFile, TestCAKeyFile)
}

// LoadUntrustedCA loads the committed untrusted CA ("reachprobe untrusted
// CA"), which plays an intercepting middlebox: nothing trusts it.
func LoadUntrustedCA() (*CA, error) {
	return loadCommittedCA(UntrustedCACertFile, UntrustedCAKeyFile)
}

func loadCommittedCA(certFile, keyFile string) (*CA, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	return LoadCA(filepath.Join(root, certFile), filepath.Join(root, keyFile))
}

// ModuleRoot returns the directory holding go.mod, walking up from the
// working directory. Tests run in their package's directory, so this finds
// the module's testdata from any package.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding module root: %w", err)
	}
	for {
		if st, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !st.IsDir() {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("finding module root: no go.mod in the working directory or above")
		}
		dir = parent
	}
}

// Certificate returns the CA's certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA's certificate in PEM, as a --ca-file would hold it.
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// Pool returns a new pool holding only the CA's certificate.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// Intermediate issues a subordinate CA named name, with a fresh ECDSA
// P-256 key, valid as long as ca. Its leaves' chains hold the leaf only,
// as a server that leaves its intermediate out sends them.
func (ca *CA) Intermediate(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating intermediate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             ca.cert.NotBefore,
		NotAfter:              ca.cert.NotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("creating intermediate certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing intermediate certificate: %w", err)
	}
	return &CA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: certificatePEMType, Bytes: der})}, nil
}

// Leaf issues a server certificate with a fresh ECDSA P-256 key for names:
// each is a DNS name or an IP literal, and becomes a DNS or IP subject
// alternative name accordingly. The chain holds the leaf only, as a server
// whose leaf a root signs directly sends it.
func (ca *CA) Leaf(names ...string) (tls.Certificate, error) {
	if len(names) == 0 {
		return tls.Certificate{}, errors.New("leaf certificate needs at least one name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating leaf key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0]},
		NotBefore:             now.Add(-certBackdate),
		NotAfter:              now.Add(leafValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, name := range names {
		if ip, err := netip.ParseAddr(name); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
			continue
		}
		tmpl.DNSNames = append(tmpl.DNSNames, name)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("creating leaf certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parsing leaf certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return serial, nil
}

func parsePrivateKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case pkcs8KeyPEMType:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case ecKeyPEMType:
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case rsaKeyPEMType:
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}
