package runner

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/catalog"
	"github.com/reachprobe/reachprobe/probes/dnsprobe"
	"github.com/reachprobe/reachprobe/probes/failure"
	"github.com/reachprobe/reachprobe/probes/probetest"
	"github.com/reachprobe/reachprobe/probes/tlsprobe"
)

func TestAppleFor(t *testing.T) {
	custom := &tlsprobe.AppleTrust{}
	tests := []struct {
		name  string
		apple *tlsprobe.AppleTrust
		group string
		want  *tlsprobe.AppleTrust
	}{
		{"push, embedded", nil, measurements.GroupPush, tlsprobe.EmbeddedApple()},
		{"identity, replaced", custom, measurements.GroupIdentity, custom},
		{"quic, replaced", custom, measurements.GroupQUIC, custom},
		{"control, never", custom, measurements.GroupControl, nil},
		{"control, default", nil, measurements.GroupControl, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Runner{Apple: tt.apple}
			if got := r.appleFor(&measurements.Target{Group: tt.group}); got != tt.want {
				t.Errorf("appleFor(%s) = %p, want %p", tt.group, got, tt.want)
			}
		})
	}
}

// TestAppleTrustReachesHandshakes runs a catalog with an Apple target and
// a control host, both served by one loopback server whose leaf a test
// Apple intermediate signed and which leaves the intermediate out: the
// Apple target's handshakes verify against the Apple authorities given
// (anchor "apple", the SNI swap's included, its name aside); the control
// host's do not, since Apple's roots are not for it.
func TestAppleTrustReachesHandshakes(t *testing.T) {
	root, err := probetest.NewCA("Apple Root CA (test)")
	if err != nil {
		t.Fatal(err)
	}
	mid, err := root.Intermediate("Apple Server Authentication CA (test)")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "apple.pem")
	if err := os.WriteFile(file, append(root.CertPEM(), mid.CertPEM()...), 0o644); err != nil {
		t.Fatal(err)
	}
	apple, err := tlsprobe.LoadAppleTrust(file)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := mid.Leaf("apple.test", "control.test")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := probetest.StartTLS("127.0.0.1:0", probetest.TLSValid, cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	zone := probetest.Zone{}
	for _, h := range []string{"apple.test", "control.test"} {
		zone[h] = probetest.ZoneEntry{Addrs: []netip.Addr{srv.Addr().Addr()}}
	}
	dns, err := probetest.StartDNS("127.0.0.1:0", zone)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	text := fmt.Sprintf("[target apple]\ngroup = push\nhost = apple.test\nports = %d\ntransports = tcp, tls\nnetworks = 127.0.0.0/8\n\n"+
		"[target control]\ngroup = control\nhost = control.test\nports = %d\ntransports = tcp, tls\nnetworks = 127.0.0.0/8\n", srv.Addr().Port(), srv.Addr().Port())
	cat, err := catalog.Parse("apple", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	system := systemResolver(dns.Addr())
	rec := &memRecorder{}
	r := &Runner{Catalog: cat, Resolver: &dnsprobe.Resolver{Nameservers: []string{dns.Addr()}, System: system, ListenWindow: -1},
		RootCAs: x509.NewCertPool(), Apple: apple, Recorder: rec}
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	type want struct {
		failure  string
		anchor   string
		verified bool
	}
	wants := map[string]want{
		"apple":         {"", measurements.AnchorApple, true},
		"apple/control": {failure.SSLInvalidHostname, measurements.AnchorApple, false},
		"control":       {failure.SSLUnknownAuthority, "", false},
	}
	seen := map[string]bool{}
	for _, o := range rec.obs {
		if o.Step != measurements.StepTLS {
			continue
		}
		k := o.Target
		if o.Control {
			k += "/control"
		}
		w, ok := wants[k]
		if !ok {
			continue
		}
		seen[k] = true
		if o.Failure != w.failure || o.TLS.Anchor != w.anchor || o.TLS.Verified != w.verified {
			t.Errorf("%s: failure %q, anchor %q, verified %v; want %q, %q, %v (%s)", k, o.Failure, o.TLS.Anchor, o.TLS.Verified, w.failure, w.anchor, w.verified, o.TLS.VerifyFailure)
		}
	}
	for k := range wants {
		if !seen[k] {
			t.Errorf("no %s handshake recorded", k)
		}
	}
}
