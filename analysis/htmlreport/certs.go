package htmlreport

import (
	"cmp"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// certView describes the leaf certificate one path received. Every string
// in it comes from the network: the template escapes it like any other.
type certView struct {
	Path    string // "target name courier.push.apple.com" or "control name www.example.com"
	Subject string
	Names   string
	Issuer  string
	Status  string
	Chain   int
	control int // 1 for the control path, to sort it last
}

// certificates returns the distinct leaves an endpoint's handshakes
// received: those of the target path, and, when all is true, those of the
// control path too.
func certificates(obs []*measurements.Observation, all bool) []certView {
	var out []certView
	seen := map[[sha256.Size]byte]bool{}
	for _, o := range obs {
		if o.TLS == nil || len(o.TLS.PeerCertificates) == 0 || (o.Control && !all) {
			continue
		}
		fp := sha256.Sum256(o.TLS.PeerCertificates[0])
		if seen[fp] {
			continue
		}
		seen[fp] = true
		cv := describeLeaf(o.TLS.PeerCertificates[0])
		cv.Chain = len(o.TLS.PeerCertificates)
		cv.Path = "target name " + o.TLS.ServerName
		if o.Control {
			cv.Path, cv.control = "control name "+o.TLS.ServerName, 1
		}
		switch {
		case o.TLS.Verified:
			cv.Status = "verified for " + o.TLS.ServerName
		case o.TLS.VerifyFailure != "":
			cv.Status = "did not verify: " + o.TLS.VerifyFailure
		default:
			cv.Status = "did not verify"
		}
		out = append(out, cv)
	}
	// The target path first: it is what the verdict is about.
	slices.SortStableFunc(out, func(a, b certView) int { return cmp.Compare(a.control, b.control) })
	return out
}

// describeLeaf reads the names of a DER certificate, untrusted bytes from
// the network.
func describeLeaf(der []byte) certView {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return certView{Subject: "a certificate that does not parse", Issuer: "unknown"}
	}
	cv := certView{Subject: c.Subject.CommonName, Issuer: analysis.IssuerName(c)}
	if cv.Subject == "" {
		cv.Subject = c.Subject.String()
	}
	if cv.Subject == "" {
		cv.Subject = "(no subject name)"
	}
	if cv.Issuer == "" {
		cv.Issuer = "(no issuer name)"
	}
	names := c.DNSNames
	if len(names) > maxNamesShown {
		names = append(names[:maxNamesShown:maxNamesShown], fmt.Sprintf("and %d more", len(c.DNSNames)-maxNamesShown))
	}
	cv.Names = strings.Join(names, ", ")
	return cv
}
