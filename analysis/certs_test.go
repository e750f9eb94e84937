package analysis

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/reachprobe/reachprobe/appleca"
	"github.com/reachprobe/reachprobe/measurements"
)

// Certificates of the chain scenarios. A test network's Apple has a root
// and an intermediate with the names of Apple's real ones (their exact
// DER names, taken from the embedded certificates), as the lab's would
// under --apple-ca-file; a forged authority has the intermediate's name
// and a key of its own; a public authority is cross-signed by an old root
// this computer holds and a new one a stale store lacks. Keys are Ed25519
// from fixed seeds and Ed25519 signatures are deterministic, so the golden
// files are stable.
type chainCAs struct {
	appleRoot, appleMid *testCA // the test network's Apple
	forgedMid           *testCA // "Apple Server Authentication CA", another key
	// publicCross and publicNew are one authority ("Example Public CA
	// R2", one key) under two roots: R1, in every store, and R2, which a
	// stale store lacks.
	publicCross, publicNew *testCA
}

var (
	chainOnce sync.Once
	chainSet  chainCAs
)

func chainFixtures() *chainCAs {
	chainOnce.Do(func() {
		name := func(certs []*x509.Certificate, cn string) []byte {
			for _, c := range certs {
				if c.Subject.CommonName == cn {
					return c.RawSubject
				}
			}
			panic("appleca has no " + cn)
		}
		rootName := name(appleca.Roots(), "Apple Root CA")
		midName := name(appleca.Intermediates(), "Apple Server Authentication CA")
		c := &chainSet
		c.appleRoot = issueCA(20, 20, rootName, pkix.Name{}, nil)
		c.appleMid = issueCA(21, 21, midName, pkix.Name{}, c.appleRoot)
		c.forgedMid = issueCA(22, 22, midName, pkix.Name{}, nil)
		oldRoot := issueCA(23, 23, nil, pkix.Name{CommonName: "Example Root R1", Organization: []string{"Example Trust Services"}}, nil)
		newRoot := issueCA(24, 24, nil, pkix.Name{CommonName: "Example Root R2", Organization: []string{"Example Trust Services"}}, nil)
		pub := pkix.Name{CommonName: "Example Public CA R2", Organization: []string{"Example Trust Services"}}
		c.publicCross = issueCA(25, 26, nil, pub, oldRoot)
		c.publicNew = issueCA(25, 27, nil, pub, newRoot)
	})
	return &chainSet
}

// issueCA makes an authority whose key comes from keySeed, named rawName
// (DER) or name, signed by parent or by itself.
func issueCA(keySeed, serial byte, rawName []byte, name pkix.Name, parent *testCA) *testCA {
	sum := sha256.Sum256([]byte{'c', 'a', keySeed})
	key := ed25519.NewKeyFromSeed(sum[:])
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(serial)), RawSubject: rawName, Subject: name,
		NotBefore: certEpoch, NotAfter: certEpoch.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	parentCert, parentKey := tmpl, key
	if parent != nil {
		parentCert, parentKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), parentKey)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return &testCA{cert: c, key: key}
}

// issue returns a leaf for name signed by ca; variant tells apart the
// leaves two servers of one name hold.
func issue(ca *testCA, name string, variant byte) []byte {
	k := string(ca.cert.Raw) + "|" + name + "|" + string(variant)
	if v, ok := issued.Load(k); ok {
		return v.([]byte)
	}
	sum := sha256.Sum256(append([]byte(name+"|"), ca.cert.RawSubject...))
	seed := sha256.Sum256(append(sum[:], variant))
	key := ed25519.NewKeyFromSeed(seed[:])
	tmpl := &x509.Certificate{SerialNumber: new(big.Int).SetBytes(seed[:8]), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: certEpoch, NotAfter: certEpoch.AddDate(1, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		panic(err)
	}
	issued.Store(k, der)
	return der
}

// issued caches issue's leaves: a random world asks for the same ones
// many times.
var issued sync.Map

// present replaces a completed handshake's chain by chain, as the probe
// records it: verified against anchor, or failing with failure.
func (s *stepCtx) present(chain [][]byte, anchor, failure, why string) {
	if s.o.TLS == nil || s.o.TLS.PeerCertificates == nil {
		return // the handshake did not complete
	}
	s.o.TLS.PeerCertificates = chain
	s.o.TLS.Anchor = anchor
	if failure == "" {
		s.o.Failure, s.o.Operation = "", ""
		s.o.TLS.Verified, s.o.TLS.VerifyFailure = true, ""
		return
	}
	s.chain(chain[0], failure, why)
	s.o.TLS.PeerCertificates = chain
}

const whyUnknown = "x509: certificate signed by unknown authority"

// targetTLS matches the handshake with the target's name at address.
func targetTLS(s *stepCtx, address string) bool {
	return s.o.Step == measurements.StepTLS && !s.o.Control && s.addr.String() == address
}

// forgeCourier presents the forged "Apple Server Authentication CA"'s
// leaf, and the forged authority after it, to the courier handshakes on
// the given port (every port when 0), as a middlebox that port 443 is
// redirected to would.
func forgeCourier(port int) func(s *stepCtx) {
	return func(s *stepCtx) {
		// The couriers and, as an independent server (another /24), the
		// provider API behind the same middlebox.
		if s.o.Step != measurements.StepTLS || s.o.Control || s.t.Group != measurements.GroupPush {
			return
		}
		if port != 0 && s.o.Port != port {
			return
		}
		c := chainFixtures()
		s.present([][]byte{issue(c.forgedMid, s.t.ServerName, 9), c.forgedMid.cert.Raw}, "", failSSLAuthority, whyUnknown)
	}
}

// certScenarios are the golden cases of chains that do not verify: the
// honest ones (an incomplete chain, a stale trust store) must not be
// blocked, the forged ones are caught when another path shows the name's
// real chain and only suspected otherwise.
func certScenarios() []scenario {
	identityOK := allOK()
	return []scenario{
		{name: "incomplete_chain", world: func() *world {
			// identity.ess.apple.com's servers chain through the test
			// network's Apple intermediate. The one at .5 leaves the
			// intermediate out, and the probe does not hold it (a run
			// stored before the probe knew Apple's intermediates, or one
			// Apple has not published); .6 sends it, and its chain
			// verifies against the Apple roots.
			return &world{step: func(s *stepCtx) {
				c := chainFixtures()
				switch {
				case targetTLS(s, "17.32.194.5"):
					s.present([][]byte{issue(c.appleMid, s.t.ServerName, 1)}, "", failSSLAuthority, whyUnknown)
				case targetTLS(s, "17.32.194.6"):
					s.present([][]byte{issue(c.appleMid, s.t.ServerName, 2), c.appleMid.cert.Raw}, measurements.AnchorApple, "", "")
				}
			}}
		}, want: expectation{network: "ok", services: identityOK, apps: working, noBlocked: true}},
		{name: "stale_trust_store", world: func() *world {
			// gsa.apple.com's public authority is cross-signed: .41 sends
			// it under the old root this computer holds, and verifies;
			// .40 sends it under the new root a stale ca-certificates
			// lacks. One key signs both leaves.
			return &world{step: func(s *stepCtx) {
				c := chainFixtures()
				switch {
				case targetTLS(s, "17.32.195.40"):
					s.present([][]byte{issue(c.publicNew, s.t.ServerName, 1), c.publicNew.cert.Raw}, "", failSSLAuthority, whyUnknown)
				case targetTLS(s, "17.32.195.41"):
					s.present([][]byte{issue(c.publicCross, s.t.ServerName, 2), c.publicCross.cert.Raw}, measurements.AnchorSystem, "", "")
				}
			}}
		}, want: expectation{network: "ok", services: identityOK, apps: working, noBlocked: true}},
		{name: "stale_trust_store_unverified", world: func() *world {
			// Every server of gsa.apple.com sends the chain under the new
			// root the stale store lacks: nothing verifies the name.
			return &world{step: func(s *stepCtx) {
				if s.o.Step == measurements.StepTLS && !s.o.Control && s.t.Name == "gsa" {
					c := chainFixtures()
					s.present([][]byte{issue(c.publicNew, s.t.ServerName, 1), c.publicNew.cert.Raw}, "", failSSLAuthority, whyUnknown)
				}
			}}
		}, want: expectation{network: "ok", services: identityOK, apps: working, noBlocked: true}},
		{name: "push_forged_apple_issuer", world: func() *world {
			// A censor sends TCP 443 of the push servers to a middlebox
			// whose authority is named "Apple Server Authentication CA",
			// the name of the couriers' real one; port 5223 is not
			// redirected and its chains verify, for the same name.
			return &world{step: forgeCourier(443)}
		}, want: expectation{network: "ok", services: allOK("push", "degraded"), methods: map[string]string{"push": MethodTLSInterception},
			apps: map[string]string{"imessage": "degraded", "facetime": "degraded"}, blockedOnly: "push"}},
		{name: "push_forged_apple_issuer_unverified", world: func() *world {
			// The same middlebox on both courier ports: no path shows
			// the name's real chain.
			return &world{step: forgeCourier(0)}
		}, want: expectation{network: "ok", noBlocked: true}},
		{name: "identity_interception_any_name", world: func() *world {
			// The middlebox of identity_interception, which also makes a
			// certificate for the SNI swap's control name.
			return &world{step: func(s *stepCtx) {
				if s.o.Step == measurements.StepTLS && s.t.Group == measurements.GroupIdentity {
					cas()
					s.present([][]byte{interceptCA.leaf(serverNameOf(s))}, "", failSSLAuthority, whyUnknown)
				}
			}}
		}, want: expectation{network: "ok", services: allOK("identity", "blocked"), methods: map[string]string{"identity": MethodTLSInterception},
			apps: map[string]string{"imessage": "blocked", "facetime": "blocked"}}},
	}
}

// TestSignedByEmbeddedApple checks the key test on Apple's real
// certificates: each intermediate is signed by an embedded root, and a
// leaf naming Apple's intermediate as its issuer but signed by another key
// is not, and is found impersonating it.
func TestSignedByEmbeddedApple(t *testing.T) {
	roots := appleca.Roots()
	for _, mid := range appleca.Intermediates() {
		l, ok := parseLeaf([][]byte{mid.Raw})
		if !ok {
			t.Fatalf("%s does not parse", mid.Subject.CommonName)
		}
		if !signedBy(l, roots) {
			t.Errorf("%s: not signed by an embedded root", mid.Subject.CommonName)
		}
		if signedBy(l, nil) {
			t.Errorf("%s: signed by no authority at all", mid.Subject.CommonName)
		}
	}
	c := chainFixtures()
	forged, ok := parseLeaf([][]byte{issue(c.forgedMid, "courier.push.apple.com", 1), c.forgedMid.cert.Raw})
	if !ok {
		t.Fatal("forged leaf does not parse")
	}
	if signedBy(forged, appleAuthorities()) {
		t.Error("a leaf of the forged authority verifies under Apple's keys")
	}
	b := buildCertBook(buildIndex(Input{}))
	if a := b.impersonated(forged); a == nil || a.Subject.CommonName != "Apple Server Authentication CA" {
		t.Errorf("impersonated = %v, want Apple Server Authentication CA", a)
	}
	genuine, _ := parseLeaf([][]byte{issue(c.publicCross, "gsa.apple.com", 1)})
	if a := b.impersonated(genuine); a != nil {
		t.Errorf("a leaf of an authority analysis does not know impersonates %s", a.Subject.CommonName)
	}
}

// TestSignedByThroughChain checks the walk from the leaf through the
// certificates sent with it, each signing the one before.
func TestSignedByThroughChain(t *testing.T) {
	c := chainFixtures()
	leafDER := issue(c.appleMid, "identity.ess.apple.com", 1)
	tests := []struct {
		name        string
		chain       [][]byte
		authorities []*x509.Certificate
		want        bool
	}{
		{"intermediate known", [][]byte{leafDER}, []*x509.Certificate{c.appleMid.cert}, true},
		{"root known, intermediate sent", [][]byte{leafDER, c.appleMid.cert.Raw}, []*x509.Certificate{c.appleRoot.cert}, true},
		{"root known, intermediate missing", [][]byte{leafDER}, []*x509.Certificate{c.appleRoot.cert}, false},
		{"another authority sent", [][]byte{leafDER, c.forgedMid.cert.Raw}, []*x509.Certificate{c.appleRoot.cert}, false},
		{"same name, another key", [][]byte{leafDER}, []*x509.Certificate{c.forgedMid.cert}, false},
		{"cross-signed key", [][]byte{issue(c.publicNew, "gsa.apple.com", 1)}, []*x509.Certificate{c.publicCross.cert}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, ok := parseLeaf(tt.chain)
			if !ok {
				t.Fatal("leaf does not parse")
			}
			if got := signedBy(l, tt.authorities); got != tt.want {
				t.Errorf("signedBy = %v, want %v", got, tt.want)
			}
		})
	}
}

// honestChainWorld is a network that censors nothing, whose Apple servers
// have the chain quirks of real ones, chosen at random per server name:
//
//   - Apple's private chain, which some servers send without the
//     intermediate; a try whose chain is complete verifies against the
//     Apple roots, one without it does not;
//   - a public authority cross-signed by an old root and a new one a stale
//     store lacks: a server under the old root verifies, one under the
//     new root does not;
//   - Apple's chain for another of Apple's names (a misconfigured
//     server), which reaches the Apple roots and fails on the name.
//
// The SNI swap gets each server's own certificate, which never covers the
// control name.
func honestChainWorld(repeats int, seed uint64) *world {
	w := &world{repeats: repeats, rng: mrand.New(mrand.NewPCG(seed, 11))}
	setup := map[string]int{} // by server name
	w.step = func(s *stepCtx) {
		if s.o.Step != measurements.StepTLS || !isAppleTarget(s.t) || s.o.TLS == nil || s.o.TLS.PeerCertificates == nil {
			return
		}
		name := s.t.ServerName
		kind, ok := setup[name]
		if !ok {
			kind = w.rng.IntN(3)
			setup[name] = kind
		}
		c := chainFixtures()
		variant := byte(w.rng.IntN(4))
		var chain [][]byte
		anchor, failure, why := "", failSSLAuthority, whyUnknown
		switch kind {
		case 0:
			chain = [][]byte{issue(c.appleMid, name, variant)}
			if w.rng.IntN(2) == 0 {
				chain = append(chain, c.appleMid.cert.Raw)
				anchor, failure, why = measurements.AnchorApple, "", ""
			}
		case 1:
			if w.rng.IntN(2) == 0 {
				chain = [][]byte{issue(c.publicCross, name, variant), c.publicCross.cert.Raw}
				anchor, failure, why = measurements.AnchorSystem, "", ""
			} else {
				chain = [][]byte{issue(c.publicNew, name, variant), c.publicNew.cert.Raw}
			}
		case 2:
			other := "www.apple.com"
			chain = [][]byte{issue(c.appleMid, other, variant), c.appleMid.cert.Raw}
			anchor, failure, why = measurements.AnchorApple, failSSLHostname, "x509: certificate is valid for "+other
		}
		if s.o.Control {
			// The server's own certificate, for its own name.
			if failure == "" {
				failure, why = failSSLHostname, "x509: certificate is valid for "+name+", not "+controlName
			}
		}
		s.present(chain, anchor, failure, why)
	}
	return w
}

// TestHonestChainsNeverBlock checks, over random honest networks, that
// no chain quirk of an honest server (a missing intermediate, a root a
// stale store lacks, a chain for another name) is ever called blocked.
func TestHonestChainsNeverBlock(t *testing.T) {
	cleared := 0 // chains that did not verify and were found the server's
	for _, repeats := range []int{1, 2} {
		for seed := uint64(1); seed <= lossSeeds(); seed++ {
			rep := Analyze(honestChainWorld(repeats, seed).build())
			for _, e := range rep.Endpoints {
				if e.Verdict == VerdictBlocked {
					t.Errorf("repeats %d seed %d: endpoint %s %s:%d blocked (%s)", repeats, seed, e.Target, e.Address, e.Port, e.Evidence)
				}
				if e.Verdict == VerdictOK && strings.Contains(e.Evidence, "this is not interception") {
					cleared++
				}
			}
			for _, s := range rep.Services {
				if s.Verdict == VerdictBlocked || s.Verdict == VerdictDegraded {
					t.Errorf("repeats %d seed %d: service %s %s (%s)", repeats, seed, s.Service, s.Verdict, s.Reason)
				}
			}
		}
	}
	if cleared == 0 {
		t.Error("no chain that failed verification was judged the server's: the quirks were not exercised")
	}
}
