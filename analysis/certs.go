package analysis

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
)

// leafInfo is what analysis reads from the first certificate of a chain.
type leafInfo struct {
	// issuer is the issuer's common name and organisation, for people.
	issuer string
	// issuerDN is the full issuer name, for comparison.
	issuerDN string
	// authorityKey is the issuer's key identifier: two chains naming the
	// same issuer with different keys mean one of them is forged.
	authorityKey []byte
	cert         *x509.Certificate
	fingerprint  [sha256.Size]byte
}

// parseLeaf parses the leaf of chain (DER, leaf first). ok is false when
// there is no certificate or it does not parse: a chain the probe stored is
// untrusted bytes.
func parseLeaf(chain [][]byte) (leafInfo, bool) {
	if len(chain) == 0 || len(chain[0]) == 0 {
		return leafInfo{}, false
	}
	c, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return leafInfo{issuer: "an unparsable certificate", fingerprint: sha256.Sum256(chain[0])}, false
	}
	return leafInfo{issuer: IssuerName(c), issuerDN: c.Issuer.String(), authorityKey: c.AuthorityKeyId, cert: c, fingerprint: sha256.Sum256(chain[0])}, true
}

// IssuerName returns "CN (O)" of c's issuer, or what of it there is: how
// verdicts and reports name a certificate's authority.
func IssuerName(c *x509.Certificate) string {
	cn := c.Issuer.CommonName
	org := strings.Join(c.Issuer.Organization, ", ")
	switch {
	case cn != "" && org != "":
		return cn + " (" + org + ")"
	case cn != "":
		return cn
	case org != "":
		return org
	}
	return c.Issuer.String()
}

// covers reports whether the leaf is valid for name.
func (l leafInfo) covers(name string) bool {
	return l.cert != nil && l.cert.VerifyHostname(name) == nil
}

// appleLike reports whether the issuer names Apple. Apple runs private
// certificate authorities (REFERENCE: the courier chain may end in "Apple
// Server Authentication CA"), so an Apple-named chain that does not verify
// against this computer's roots is not, by itself, taken for interception.
// An interceptor could name its authority Apple too; then only a verified
// chain for the same name elsewhere exposes it.
func (l leafInfo) appleLike() bool {
	return strings.Contains(strings.ToLower(l.issuerDN), "apple")
}

// certBook holds the chains a run saw, to compare a chain that did not
// verify with the ones other paths got.
type certBook struct {
	verifiedFor     map[string][]leafInfo // by server name
	verifiedIssuers map[string]bool       // issuer DNs of verified chains
	controlAt       map[string][]leafInfo // chains of control-name handshakes, by address
}

func buildCertBook(ix *index) *certBook {
	b := &certBook{verifiedFor: map[string][]leafInfo{}, verifiedIssuers: map[string]bool{}, controlAt: map[string][]leafInfo{}}
	note := func(address string, o *measurements.Observation) {
		if o == nil || o.TLS == nil {
			return
		}
		leaf, ok := parseLeaf(o.TLS.PeerCertificates)
		if !ok {
			return
		}
		switch {
		case o.Control:
			b.controlAt[address] = append(b.controlAt[address], leaf)
		case verified(o):
			b.verifiedFor[o.TLS.ServerName] = append(b.verifiedFor[o.TLS.ServerName], leaf)
			b.verifiedIssuers[leaf.issuerDN] = true
		}
	}
	for _, k := range ix.endpointIDs {
		for _, a := range ix.endpoints[k].attempts {
			note(k.address, a.control)
			note(k.address, a.main)
		}
	}
	return b
}

// verifiedElsewhere returns a verified chain for name whose issuer differs
// from leaf's.
func (b *certBook) verifiedElsewhere(name string, leaf leafInfo) (leafInfo, bool) {
	for _, l := range b.verifiedFor[name] {
		if l.issuerDN != leaf.issuerDN {
			return l, true
		}
	}
	return leafInfo{}, false
}

// forgedIssuer returns a verified chain for name whose issuer has the same
// name as leaf's but another key: leaf's issuer impersonates it.
func (b *certBook) forgedIssuer(name string, leaf leafInfo) (leafInfo, bool) {
	if len(leaf.authorityKey) == 0 {
		return leafInfo{}, false
	}
	for _, l := range b.verifiedFor[name] {
		if l.issuerDN == leaf.issuerDN && len(l.authorityKey) > 0 && !bytes.Equal(l.authorityKey, leaf.authorityKey) {
			return l, true
		}
	}
	return leafInfo{}, false
}

// controlDiffers returns a chain the control name got at address whose
// issuer differs from leaf's.
func (b *certBook) controlDiffers(address string, leaf leafInfo) (leafInfo, bool) {
	for _, l := range b.controlAt[address] {
		if l.issuerDN != leaf.issuerDN {
			return l, true
		}
	}
	return leafInfo{}, false
}
