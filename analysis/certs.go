package analysis

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"strings"
	"sync"

	"github.com/reachprobe/reachprobe/appleca"
	"github.com/reachprobe/reachprobe/measurements"
)

// leafInfo is what analysis reads from a chain: its first certificate and
// the others that parse.
type leafInfo struct {
	// issuer is the issuer's common name and organisation, for people.
	issuer      string
	cert        *x509.Certificate
	fingerprint [sha256.Size]byte
	// rest holds the chain's other certificates, in the order sent; those
	// that do not parse are left out.
	rest []*x509.Certificate
}

// parseLeaf parses chain (DER, leaf first). ok is false when there is no
// certificate or the leaf does not parse: a chain the probe stored is
// untrusted bytes.
func parseLeaf(chain [][]byte) (leafInfo, bool) {
	if len(chain) == 0 || len(chain[0]) == 0 {
		return leafInfo{}, false
	}
	c, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return leafInfo{issuer: "an unparsable certificate", fingerprint: sha256.Sum256(chain[0])}, false
	}
	l := leafInfo{issuer: IssuerName(c), cert: c, fingerprint: sha256.Sum256(chain[0])}
	for _, der := range chain[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			l.rest = append(l.rest, c)
		}
	}
	return l, true
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

// appleAuthorities are Apple's roots and intermediates (package appleca),
// parsed once.
var appleAuthorities = sync.OnceValue(func() []*x509.Certificate {
	return append(appleca.Intermediates(), appleca.Roots()...)
})

// Trust of a chain that did not verify, decided by keys, never by names.
const (
	// keyUnknown: no key analysis knows signed the leaf.
	keyUnknown = iota
	// keyApple: Apple's key signed it: the probe verified the chain
	// against Apple's roots (Anchor "apple"), or an Apple authority
	// signs the leaf, directly or through certificates of the chain.
	keyApple
	// keyKnown: a known authority other than Apple's signed it: the probe
	// verified the chain against the system roots, the same leaf verified
	// on another path, or a key of a chain that verified on another path
	// signs it.
	keyKnown
)

// certBook knows the keys a run can vouch for, to tell a server's own
// chain that failed verification (a missing intermediate, a root this
// computer lacks, the wrong name) from one that is not the server's.
//
// It is built lazily, on the first chain that did not verify: on an honest
// run no chain needs it, and parsing every chain of every run would slow
// reports over many runs.
type certBook struct {
	ix     *index
	loaded bool
	// learned are the certificates sent along with chains that reached an
	// anchor. A certificate counts only if it does sign: a chain's leaf
	// must verify under its key.
	learned []*x509.Certificate
	// anchoredLeaves are the fingerprints of leaves whose chain reached an
	// anchor.
	anchoredLeaves map[[sha256.Size]byte]bool
	// byName holds the handshakes with each server name, the SNI swap's
	// excluded.
	byName map[string][]*measurements.Observation
	memo   map[*measurements.Observation]int
}

func buildCertBook(ix *index) *certBook { return &certBook{ix: ix} }

// anchored reports whether the probe verified o's chain up to an anchor.
func anchored(o *measurements.Observation) bool {
	return o != nil && o.TLS != nil && len(o.TLS.PeerCertificates) > 0 && (o.TLS.Verified || o.TLS.Anchor != "")
}

func (b *certBook) load() {
	if b.loaded {
		return
	}
	b.loaded = true
	b.anchoredLeaves = map[[sha256.Size]byte]bool{}
	b.byName = map[string][]*measurements.Observation{}
	b.memo = map[*measurements.Observation]int{}
	seen := map[[sha256.Size]byte]bool{}
	note := func(o *measurements.Observation, control bool) {
		if o == nil || o.TLS == nil || len(o.TLS.PeerCertificates) == 0 {
			return
		}
		if !control {
			b.byName[o.TLS.ServerName] = append(b.byName[o.TLS.ServerName], o)
		}
		if !anchored(o) {
			return
		}
		b.anchoredLeaves[sha256.Sum256(o.TLS.PeerCertificates[0])] = true
		for _, der := range o.TLS.PeerCertificates[1:] {
			sum := sha256.Sum256(der)
			if seen[sum] {
				continue
			}
			seen[sum] = true
			if c, err := x509.ParseCertificate(der); err == nil {
				b.learned = append(b.learned, c)
			}
		}
	}
	for _, k := range b.ix.endpointIDs {
		for _, a := range b.ix.endpoints[k].attempts {
			note(a.control, true)
			note(a.main, false)
		}
	}
}

// keyOf says whose key signed o's chain (key* constants).
func (b *certBook) keyOf(o *measurements.Observation) int {
	b.load()
	if k, ok := b.memo[o]; ok {
		return k
	}
	k := b.decideKey(o)
	b.memo[o] = k
	return k
}

func (b *certBook) decideKey(o *measurements.Observation) int {
	if o == nil || o.TLS == nil {
		return keyUnknown
	}
	switch o.TLS.Anchor {
	case measurements.AnchorApple:
		return keyApple
	case measurements.AnchorSystem:
		return keyKnown
	}
	leaf, ok := parseLeaf(o.TLS.PeerCertificates)
	if !ok {
		return keyUnknown
	}
	if signedBy(leaf, appleAuthorities()) {
		return keyApple
	}
	if o.TLS.Verified || b.anchoredLeaves[leaf.fingerprint] || signedBy(leaf, b.learned) {
		return keyKnown
	}
	return keyUnknown
}

// signedBy reports whether one of authorities signs the leaf, directly or
// through certificates of its chain, each signing the one before.
func signedBy(l leafInfo, authorities []*x509.Certificate) bool {
	if len(authorities) == 0 {
		return false
	}
	cur, used := l.cert, make([]bool, len(l.rest))
	for range len(l.rest) + 1 {
		for _, a := range authorities {
			if cur.CheckSignatureFrom(a) == nil {
				return true
			}
		}
		next := -1
		for i, c := range l.rest {
			if !used[i] && cur.CheckSignatureFrom(c) == nil {
				next = i
				break
			}
		}
		if next < 0 {
			return false
		}
		used[next] = true
		cur = l.rest[next]
	}
	return false
}

// impersonated returns an authority analysis knows whose name the leaf
// gives as its issuer but whose key did not sign it: the issuer
// impersonates it. Only the key decides; the name picks which key to try.
func (b *certBook) impersonated(l leafInfo) *x509.Certificate {
	b.load()
	for _, set := range [][]*x509.Certificate{appleAuthorities(), b.learned} {
		for _, a := range set {
			if bytes.Equal(a.RawSubject, l.cert.RawIssuer) && l.cert.CheckSignatureFrom(a) != nil {
				return a
			}
		}
	}
	return nil
}

// verifiedFor returns a handshake with name, at another endpoint than
// skip, whose leaf is valid for name and signed by a known key: another
// path saw the name's genuine chain.
func (b *certBook) verifiedFor(name string, skip *endpointObs) (*measurements.Observation, bool) {
	b.load()
	mine := map[*measurements.Observation]bool{}
	for _, a := range skip.attempts {
		mine[a.main] = true
	}
	for _, o := range b.byName[name] {
		if mine[o] {
			continue
		}
		if verified(o) {
			return o, true
		}
		if !reached(o) || b.keyOf(o) == keyUnknown {
			continue
		}
		if l, ok := parseLeaf(o.TLS.PeerCertificates); ok && l.covers(name) {
			return o, true
		}
	}
	return nil, false
}

// mintedAt returns a handshake with the control name at the endpoint that
// got a certificate valid for that name, signed by no known key, when the
// control name is not Apple's: whoever answers at that address makes
// certificates for names it is asked, which no server of Apple's does.
func (b *certBook) mintedAt(e *endpointObs) (*measurements.Observation, bool) {
	for _, a := range e.attempts {
		o := a.control
		if !reached(o) || o.TLS.ServerName == "" || b.isAppleName(o.TLS.ServerName) || b.keyOf(o) != keyUnknown {
			continue
		}
		if l, ok := parseLeaf(o.TLS.PeerCertificates); ok && l.covers(o.TLS.ServerName) {
			return o, true
		}
	}
	return nil, false
}

// isAppleName reports whether name is a host or server name of one of
// Apple's targets, or lies in the same domain (its last two labels) as
// one: the catalog says which names are Apple's.
func (b *certBook) isAppleName(name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	for _, t := range b.ix.targets {
		if !isAppleTarget(t) {
			continue
		}
		for _, n := range []string{t.Host, t.ServerName} {
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			if n == "" {
				continue
			}
			if n == name || sameDomain(n, name) {
				return true
			}
		}
	}
	return false
}

// sameDomain reports whether a and b share their last two labels.
func sameDomain(a, b string) bool {
	last2 := func(s string) string {
		labels := strings.Split(s, ".")
		if len(labels) < 2 {
			return s
		}
		return strings.Join(labels[len(labels)-2:], ".")
	}
	return last2(a) == last2(b)
}

// isAppleTarget reports whether the catalog puts t in one of Apple's
// groups (every group but control), as the probe decides which targets
// to verify against Apple's roots.
func isAppleTarget(t *measurements.Target) bool {
	return t != nil && t.Group != measurements.GroupControl
}
