package htmlreport

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// The page must be inert: no script, nothing fetched, and no markup from
// strings that came from the network.

// csp is the policy every report declares.
const csp = `default-src 'none'; style-src 'unsafe-inline'; img-src data:`

// forbiddenTags would run code or fetch something.
var forbiddenTags = map[string]bool{
	"script": true, "iframe": true, "frame": true, "object": true, "embed": true, "link": true,
	"img": true, "image": true, "base": true, "form": true, "audio": true, "video": true,
	"source": true, "use": true, "foreignobject": true, "animate": true, "set": true,
}

// urlAttrs hold addresses a browser would load or follow.
var urlAttrs = map[string]bool{
	"src": true, "href": true, "xlink:href": true, "action": true, "formaction": true,
	"srcset": true, "poster": true, "data": true, "background": true, "ping": true,
}

// checkSafe fails t unless out is an inert document: no script anywhere,
// no element that fetches or runs, no attribute that loads an address or
// handles an event, no CSS that loads anything, and the CSP meta element.
func checkSafe(t testing.TB, out []byte) {
	t.Helper()
	if i := bytes.Index(bytes.ToLower(out), []byte("<script")); i >= 0 {
		t.Fatalf("output holds <script at byte %d: %.120q", i, out[i:])
	}
	z := html.NewTokenizer(bytes.NewReader(out))
	sawCSP := false
	inStyle := false
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		tok := z.Token()
		switch tt {
		case html.StartTagToken, html.SelfClosingTagToken:
			name := strings.ToLower(tok.Data)
			if forbiddenTags[name] {
				t.Fatalf("output has a <%s> element", name)
			}
			inStyle = name == "style"
			for _, a := range tok.Attr {
				key, val := strings.ToLower(a.Key), strings.ToLower(a.Val)
				switch {
				case strings.HasPrefix(key, "on"):
					t.Fatalf("<%s> has an event handler %s=%q", name, a.Key, a.Val)
				case urlAttrs[key] && !strings.HasPrefix(val, "#"):
					t.Fatalf("<%s %s=%q> points outside the document", name, a.Key, a.Val)
				case key == "style" && unsafeCSS(val):
					t.Fatalf("<%s style=%q> may load something", name, a.Val)
				case strings.Contains(val, "http://") || strings.Contains(val, "https://"):
					t.Fatalf("<%s %s=%q> holds an address", name, a.Key, a.Val)
				}
				if name == "meta" && key == "http-equiv" && val == "content-security-policy" {
					for _, b := range tok.Attr {
						if b.Key == "content" && strings.HasPrefix(b.Val, csp) {
							sawCSP = true
						}
					}
				}
			}
		case html.TextToken:
			if inStyle && unsafeCSS(strings.ToLower(tok.Data)) {
				t.Fatalf("the style sheet may load something")
			}
		case html.EndTagToken:
			inStyle = false
		}
	}
	if !sawCSP {
		t.Fatalf("output lacks the Content-Security-Policy meta element %q", csp)
	}
}

func unsafeCSS(s string) bool {
	return strings.Contains(s, "url(") || strings.Contains(s, "@import") || strings.Contains(s, "expression(") ||
		strings.Contains(s, "@font-face")
}

// TestInert checks every analysis scenario, alone and in a history, and
// the lab report.
func TestInert(t *testing.T) {
	for _, name := range scenarioNames(t) {
		t.Run(name, func(t *testing.T) {
			checkSafe(t, render(t, singleInput(t, name)))
		})
	}
	t.Run("lab", func(t *testing.T) { checkSafe(t, render(t, labInput(t))) })
}

// evilName is what a hostile network puts in a certificate.
const evilName = `<script>alert(1)</script>`

// evilCert returns a self-signed DER certificate whose subject, issuer and
// DNS name are markup.
func evilCert(t testing.TB) []byte {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(bytes.NewReader(make([]byte, 64)))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: evilName, Organization: []string{`"><img src=x onerror=alert(2)>`}},
		DNSNames:     []string{evilName, "identity.ess.apple.com"},
		NotBefore:    time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(bytes.NewReader(make([]byte, 64)), tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestCertificateMarkup plants a certificate whose names hold markup in an
// intercepted handshake, analyses the run again (so the issuer reaches the
// verdicts' evidence too) and checks the page shows the names escaped.
func TestCertificateMarkup(t *testing.T) {
	d := loadScenario(t, "identity_interception")
	ain := d.in
	ain.Observations = append([]measurements.Observation(nil), ain.Observations...)
	der := evilCert(t)
	planted := 0
	for i := range ain.Observations {
		o := &ain.Observations[i]
		if o.Step != measurements.StepTLS || o.Control || o.Group != measurements.GroupIdentity || o.TLS == nil {
			continue
		}
		tls := *o.TLS
		tls.PeerCertificates = [][]byte{der}
		tls.VerifyFailure = "x509: certificate signed by unknown authority (possibly " + evilName + ")"
		o.TLS = &tls
		planted++
	}
	if planted == 0 {
		t.Fatal("no identity handshake to plant the certificate in")
	}
	run := ain.Run
	in := Input{
		Runs:        []analysis.RunVerdicts{{Run: run, Report: analysis.Analyze(ain)}},
		Evidence:    ain.Observations,
		Network:     NetworkInfo{ASN: 64500, NetworkName: "Example </title><script>alert(3)</script>", CountryCode: "<b>"},
		GeneratedAt: time.Date(2025, 11, 4, 0, 0, 0, 0, time.UTC),
	}
	in.Runs[0].Report.Notes = append(in.Runs[0].Report.Notes, evilName)
	out := render(t, in)
	checkSafe(t, out)
	escaped := "&lt;script&gt;alert(1)&lt;/script&gt;"
	if n := bytes.Count(out, []byte(escaped)); n < 3 {
		t.Errorf("the escaped name %q appears %d times, want it shown as subject, name and issuer (3 or more)", escaped, n)
	}
	if !bytes.Contains(out, []byte("&lt;img src=x onerror=alert(2)&gt;")) {
		t.Errorf("the certificate's organisation is not shown escaped")
	}
}

// ipLike finds candidate IPv4 and IPv6 addresses in text; those that do
// not parse (times such as 12:00:00) are ignored.
var ipLike = regexp.MustCompile(`\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}`)

// TestNoProbeAddress checks that every IP address on the page is one of
// the servers measured (an observation's address, a DNS answer), never
// another address the input carries: the resolver the probe used is not
// shown, and an address in free text (an evidence sentence, a note, a
// certificate error) that is not a server's is scrubbed.
func TestNoProbeAddress(t *testing.T) {
	in := labInput(t)
	in.Evidence = append(in.Evidence[:0:0], in.Evidence...)
	const resolver = "198.51.100.77"
	const probe, probe6 = "203.0.113.9", "2001:db8:1::9"
	planted := 0
	for i := range in.Evidence {
		if d := in.Evidence[i].DNS; d != nil && d.Engine != measurements.EngineDoH {
			dd := *d
			dd.Resolver = resolver + ":53"
			in.Evidence[i].DNS = &dd
			planted++
		}
	}
	if planted == 0 {
		t.Fatal("no lookup to plant the resolver address in")
	}
	last := &in.Runs[len(in.Runs)-1]
	rep := last.Report
	rep.Notes = []string{"the probe's address was " + probe + " and [" + probe6 + "]:443"}
	rep.Endpoints = append([]analysis.EndpointVerdict(nil), rep.Endpoints...)
	for i := range rep.Endpoints {
		if rep.Endpoints[i].Verdict == analysis.VerdictBlocked {
			rep.Endpoints[i].Evidence += "; seen from " + probe
			rep.Endpoints[i].Control += " (from " + probe6 + ")"
		}
	}
	last.Report = rep
	allowed := map[netip.Addr]bool{}
	for _, o := range in.Evidence {
		if a, err := netip.ParseAddr(o.Address); err == nil {
			allowed[a.Unmap()] = true
		}
		if o.DNS != nil {
			for _, ans := range o.DNS.Answers {
				if a, err := netip.ParseAddr(ans.Data); err == nil {
					allowed[a] = true
				}
			}
		}
	}
	out := render(t, in)
	for _, a := range []string{resolver, probe, probe6} {
		if bytes.Contains(out, []byte(a)) {
			t.Errorf("address %s is on the page", a)
		}
	}
	if n := bytes.Count(out, []byte(measurements.Scrubbed)); n < 5 {
		t.Errorf("%q appears %d times, want the planted addresses replaced (5 or more)", measurements.Scrubbed, n)
	}
	seen := 0
	for _, text := range pageText(out) {
		for _, loc := range ipLike.FindAllStringIndex(text, -1) {
			if loc[0] > 0 && isWordByte(text[loc[0]-1]) || loc[1] < len(text) && isWordByte(text[loc[1]]) {
				continue // part of a longer word, such as a CSS selector
			}
			a, err := netip.ParseAddr(text[loc[0]:loc[1]])
			if err != nil {
				continue
			}
			seen++
			if !allowed[a.Unmap()] {
				t.Errorf("address %s on the page is not a server the run measured", a)
			}
		}
	}
	if seen == 0 {
		t.Error("found no server address on the page: the check checked nothing")
	}
}

// pageText returns the text and attribute values of a page, without its
// style sheet.
func pageText(page []byte) []string {
	var out []string
	z := html.NewTokenizer(bytes.NewReader(page))
	inStyle := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			return out
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			inStyle = tok.Data == "style"
			for _, a := range tok.Attr {
				out = append(out, a.Val)
			}
		case html.EndTagToken:
			inStyle = false
		case html.TextToken:
			if !inStyle {
				out = append(out, string(z.Text()))
			}
		}
	}
}

func isWordByte(c byte) bool {
	return c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// FuzzRender puts arbitrary strings where the network's strings go and
// checks the page stays inert.
func FuzzRender(f *testing.F) {
	for _, s := range []string{evilName, `"><svg onload=alert(1)>`, `</title><script>`, `javascript:alert(1)`,
		`url(http://x)`, "\x00<", `<!--`, `]]><![CDATA[`, `<style>@import "x"</style>`} {
		f.Add(s, s, s)
	}
	base := singleInput(f, "identity_interception")
	f.Fuzz(func(t *testing.T, failure, evidence, name string) {
		in := base
		in.Runs = []analysis.RunVerdicts{base.Runs[0]}
		rep := &in.Runs[0].Report
		rep.Endpoints = append([]analysis.EndpointVerdict(nil), rep.Endpoints...)
		for i := range rep.Endpoints {
			e := &rep.Endpoints[i]
			if e.Verdict == analysis.VerdictBlocked {
				e.Failure, e.Operation, e.Evidence, e.Control, e.Issuer, e.Host = failure, name, evidence, evidence, name, name
			}
		}
		rep.Services = append([]analysis.ServiceVerdict(nil), rep.Services...)
		rep.Services[0].Reason = evidence
		rep.Services[0].Methods = []string{name}
		rep.Apps = append([]analysis.AppVerdict(nil), rep.Apps...)
		rep.Apps[0].Reason = evidence
		rep.Notes = []string{failure}
		rep.Network.Reason = evidence
		in.Network = NetworkInfo{NetworkName: name, CountryCode: failure}
		in.SoftwareVersion = name
		in.History = analysis.HistoryReport{}
		checkSafe(t, render(t, in))
	})
}

// FuzzDescribeLeaf feeds arbitrary bytes to the certificate reader.
func FuzzDescribeLeaf(f *testing.F) {
	f.Add(evilCert(f))
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x82, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, der []byte) {
		cv := describeLeaf(der)
		if cv.Subject == "" && cv.Issuer == "" {
			t.Errorf("describeLeaf(%x) says nothing about the certificate", der)
		}
	})
}
