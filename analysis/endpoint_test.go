package analysis

import (
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// findEndpoint returns the report's endpoint, or fails the test.
func findEndpoint(t *testing.T, rep Report, target, address string, port int, transport string) EndpointVerdict {
	t.Helper()
	for _, e := range rep.Endpoints {
		if e.Target == target && e.Address == address && e.Port == port && e.Transport == transport {
			return e
		}
	}
	t.Fatalf("no endpoint %s %s:%d/%s in the report", target, address, port, transport)
	return EndpointVerdict{}
}

func serviceVerdict(rep Report, service string) string {
	for _, s := range rep.Services {
		if s.Service == service {
			return s.Verdict
		}
	}
	return ""
}

// at matches one endpoint's target-name handshake.
func targetTLSAt(s *stepCtx, address string, port int) bool {
	return s.o.Step == measurements.StepTLS && !s.o.Control && s.addr.String() == address && s.o.Port == port
}

func TestEndpointRules(t *testing.T) {
	tests := []struct {
		name      string
		world     *world
		target    string
		address   string
		port      int
		transport string
		verdict   string
		method    string // for blocked
		suspected string // for inconclusive
		successes int
	}{
		{
			name: "one timeout among three tries is ok",
			world: &world{repeats: 3, step: func(s *stepCtx) {
				if targetTLSAt(s, "17.57.146.20", 443) && s.repeat == 1 {
					s.fail(failTimeout, "tls_handshake")
				}
			}},
			target: "courier-1", address: "17.57.146.20", port: 443, transport: "tls", verdict: VerdictOK, successes: 2,
		},
		{
			name: "two timeouts among three tries are inconclusive",
			world: &world{repeats: 3, step: func(s *stepCtx) {
				if targetTLSAt(s, "17.57.146.20", 443) && s.repeat > 0 {
					s.fail(failTimeout, "tls_handshake")
				}
			}},
			target: "courier-1", address: "17.57.146.20", port: 443, transport: "tls", verdict: VerdictInconclusive, successes: 1,
		},
		{
			name: "a lone timeout tried once is inconclusive",
			world: &world{step: func(s *stepCtx) {
				if targetTLSAt(s, "17.57.146.20", 443) {
					s.fail(failTimeout, "tls_handshake")
				}
			}},
			target: "courier-1", address: "17.57.146.20", port: 443, transport: "tls", verdict: VerdictInconclusive, suspected: MethodSNIFiltering,
		},
		{
			name: "a lone reset tried once is inconclusive",
			world: &world{step: func(s *stepCtx) {
				if targetTLSAt(s, "17.57.146.20", 443) {
					s.fail(failReset, "tls_handshake")
				}
			}},
			target: "courier-1", address: "17.57.146.20", port: 443, transport: "tls", verdict: VerdictInconclusive, suspected: MethodSNIFiltering,
		},
		{
			name: "a lone reset on one server, in every try, is not blocked: no independent server agrees",
			world: &world{repeats: 3, step: func(s *stepCtx) {
				if targetTLSAt(s, "17.57.146.20", 443) {
					s.fail(failReset, "tls_handshake")
				}
			}},
			target: "courier-1", address: "17.57.146.20", port: 443, transport: "tls", verdict: VerdictInconclusive, suspected: MethodSNIFiltering,
		},
		{
			name: "a reset confirmed after a pause and seen on an independent server is blocked",
			world: &world{step: func(s *stepCtx) {
				if targetTLSAt(s, "17.57.146.20", 443) || targetTLSAt(s, "17.188.128.10", 443) {
					s.fail(failReset, "tls_handshake")
				}
			}},
			target: "courier-1", address: "17.57.146.20", port: 443, transport: "tls", verdict: VerdictBlocked, method: MethodSNIFiltering,
		},
		{
			name: "a reset seen on another server of the same /24 only is not independent",
			world: &world{step: func(s *stepCtx) {
				if targetTLSAt(s, "17.57.146.20", 443) || targetTLSAt(s, "17.57.146.52", 443) {
					s.fail(failReset, "tls_handshake")
				}
			}},
			target: "courier-1", address: "17.57.146.20", port: 443, transport: "tls", verdict: VerdictInconclusive, suspected: MethodSNIFiltering,
		},
		{
			name: "a reset on two independent servers in one pass, with no confirmation pass, is not blocked",
			world: &world{noConfirm: true, step: func(s *stepCtx) {
				if targetTLSAt(s, "17.57.146.20", 443) || targetTLSAt(s, "17.188.128.10", 443) {
					s.fail(failReset, "tls_handshake")
				}
			}},
			target: "courier-1", address: "17.57.146.20", port: 443, transport: "tls", verdict: VerdictInconclusive, suspected: MethodSNIFiltering,
		},
		{
			name: "silence of a group's only endpoint tried once is inconclusive",
			world: &world{noConfirm: true, step: func(s *stepCtx) {
				if s.o.Step == measurements.StepQUIC && s.t.Group == "quic" {
					s.fail(failTimeout, "quic_handshake")
				}
			}},
			target: "mask", address: "17.248.180.10", port: 443, transport: "quic", verdict: VerdictInconclusive, suspected: MethodQUICTimeout,
		},
		{
			name: "QUIC silent to Apple while TCP to the same address works is quic.timeout",
			world: &world{repeats: 2, targets: catalogWithFallback(), resolve: sharedRelayAddress, step: func(s *stepCtx) {
				if forApple(s) && s.o.Step == measurements.StepQUIC {
					s.fail(failTimeout, "quic_handshake")
				}
			}},
			target: "mask", address: "17.248.180.10", port: 443, transport: "quic", verdict: VerdictBlocked, method: MethodQUICTimeout,
		},
		{
			name: "QUIC silent everywhere, the control's too, is not blocked though TCP to the same address works",
			world: &world{repeats: 3, targets: catalogWithFallback(), resolve: sharedRelayAddress, step: func(s *stepCtx) {
				if s.o.Step == measurements.StepQUIC {
					s.fail(failTimeout, "quic_handshake")
				}
			}},
			target: "mask", address: "17.248.180.10", port: 443, transport: "quic", verdict: VerdictInconclusive,
		},
		{
			name:   "QUIC silent to Apple while the QUIC control answers, TCP to Apple silent too, is unreachable",
			world:  &world{repeats: 2, targets: catalogWithFallback(), step: appleDropped},
			target: "mask", address: "17.248.180.10", port: 443, transport: "quic", verdict: VerdictUnreachable, suspected: MethodQUICTimeout,
		},
		{
			name: "a handshake reset whatever the name, with control hosts verifying, is tls.reset",
			world: &world{step: func(s *stepCtx) {
				if s.o.Step == measurements.StepTLS && s.t.Group == "push" {
					s.fail(failReset, "tls_handshake")
				}
			}},
			target: "api-push", address: "17.188.128.10", port: 2197, transport: "tls", verdict: VerdictBlocked, method: MethodTLSReset,
		},
		{
			name: "connects refused everywhere, control hosts included, failed",
			world: &world{step: func(s *stepCtx) {
				switch s.o.Step {
				case measurements.StepTCP:
					s.fail(failRefused, "connect")
				case measurements.StepQUIC:
					s.fail(failRefused, "quic_handshake")
				case measurements.StepUDP:
					s.fail(failRefused, "read")
				}
			}},
			target: "identity-ess", address: "17.32.194.5", port: 443, transport: "tls", verdict: VerdictFailed,
		},
		{
			name: "STUN silence while no other UDP gets through is inconclusive",
			world: &world{step: func(s *stepCtx) {
				switch s.o.Step {
				case measurements.StepQUIC:
					s.fail(failTimeout, "quic_handshake")
				case measurements.StepUDP:
					s.fail(failTimeout, "read")
				}
			}},
			target: "facetime-relay", address: "17.173.254.10", port: 3478, transport: "udp", verdict: VerdictInconclusive,
		},
		{
			name: "IPv6 silence with no IPv6 control to compare is inconclusive",
			world: &world{ipv6: true, ipv6Route: true, step: func(s *stepCtx) {
				if s.addr.Is6() && s.o.Step == measurements.StepTCP {
					s.fail(failTimeout, "connect")
				}
			}},
			target: "courier-1", address: "2620:149:a44::20", port: 443, transport: "tls", verdict: VerdictInconclusive,
		},
		{
			name: "port 5223 silent while 443 answers on the same address is port filtering",
			world: &world{step: func(s *stepCtx) {
				if forApple(s) && s.o.Port == 5223 && s.o.Step == measurements.StepTCP {
					s.fail(failTimeout, "connect")
				}
			}},
			target: "courier-17", address: "17.57.146.53", port: 5223, transport: "tls", verdict: VerdictBlocked, method: MethodPortFiltering,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Analyze(tt.world.build())
			e := findEndpoint(t, rep, tt.target, tt.address, tt.port, tt.transport)
			if e.Verdict != tt.verdict || e.Method != tt.method || e.Suspected != tt.suspected {
				t.Errorf("verdict = %s %q (suspected %q), want %s %q (suspected %q)\nevidence: %s", e.Verdict, e.Method, e.Suspected, tt.verdict, tt.method, tt.suspected, e.Evidence)
			}
			if tt.suspected != "" && e.Suspected != tt.suspected {
				t.Errorf("suspected = %q, want %q", e.Suspected, tt.suspected)
			}
			if tt.verdict == VerdictOK && e.Successes != tt.successes {
				t.Errorf("successes = %d, want %d", e.Successes, tt.successes)
			}
		})
	}
}

// sharedRelayAddress puts Private Relay's TCP fallback on the QUIC
// server's address, as one server answering both would be.
func sharedRelayAddress(l *lookup) {
	if l.t.Name == "mask-h2" && l.qtype == "A" {
		l.answer("17.248.180.10")
	}
}

// TestBrokenIPv6IsNotBlocking checks that IPv6 failing everywhere, control
// hosts included, while IPv4 works leaves every service ok.
func TestBrokenIPv6IsNotBlocking(t *testing.T) {
	w := &world{ipv6: true, ipv6Route: true, step: func(s *stepCtx) {
		if s.addr.Is6() {
			op := map[measurements.Step]string{measurements.StepTCP: "connect", measurements.StepQUIC: "quic_handshake", measurements.StepUDP: "read"}[s.o.Step]
			s.fail(failTimeout, op)
		}
	}}
	rep := Analyze(w.build())
	assertNothingBlocked(t, rep)
	for _, svc := range Services {
		if v := serviceVerdict(rep, svc); v != VerdictOK {
			t.Errorf("service %s = %s, want ok", svc, v)
		}
	}
}

func TestCertRules(t *testing.T) {
	cas()
	privateApple := newTestCA(4, "Apple Server Authentication CA", "Apple Inc.")
	fakeApple := newTestCA(5, "Apple Public Server ECC CA 1 - G1", "Apple Inc.")
	tests := []struct {
		name      string
		world     *world
		verdict   string
		method    string
		suspected string
		network   string
		issuer    string
	}{
		{
			name: "Apple's own chain for another name is not interception",
			world: &world{step: func(s *stepCtx) {
				if s.o.Step == measurements.StepTLS && s.t.Group == "push" && !s.o.Control {
					s.present([][]byte{privateApple.leaf("other.push.apple.com")}, measurements.AnchorApple, failSSLHostname, "x509: certificate is valid for other.push.apple.com")
				}
			}},
			verdict: VerdictOK, network: NetworkOK, issuer: "Apple Server Authentication CA (Apple Inc.)",
		},
		{
			name: "an Apple-named authority no known key signed, with no verified path, is only suspected",
			world: &world{step: func(s *stepCtx) {
				if s.o.Step == measurements.StepTLS && s.t.Group == "push" && s.o.TLS.PeerCertificates != nil {
					s.chain(privateApple.leaf("courier.push.apple.com"), failSSLAuthority, "x509: certificate signed by unknown authority")
				}
			}},
			verdict: VerdictInconclusive, suspected: MethodTLSInterception, network: NetworkOK, issuer: "Apple Server Authentication CA (Apple Inc.)",
		},
		{
			name: "an Apple-named authority no known key signed, where the name verifies elsewhere, is interception",
			world: &world{repeats: 3, step: func(s *stepCtx) {
				if targetTLSAt(s, "17.57.146.20", 443) || targetTLSAt(s, "17.188.128.10", 443) {
					s.chain(privateApple.leaf(s.t.ServerName), failSSLAuthority, "x509: certificate signed by unknown authority")
				}
			}},
			verdict: VerdictBlocked, method: MethodTLSInterception, network: NetworkOK, issuer: "Apple Server Authentication CA (Apple Inc.)",
		},
		{
			name: "the same leaf without its intermediate, where it verifies elsewhere, is not interception",
			world: &world{repeats: 3, step: func(s *stepCtx) {
				c := chainFixtures()
				if s.o.Step == measurements.StepTLS && !s.o.Control && s.t.Name == "courier-1" {
					chain := [][]byte{issue(c.appleMid, "courier.push.apple.com", 1), c.appleMid.cert.Raw}
					if targetTLSAt(s, "17.57.146.20", 443) {
						s.present(chain[:1], "", failSSLAuthority, "x509: certificate signed by unknown authority")
					} else {
						s.present(chain, measurements.AnchorApple, "", "")
					}
				}
			}},
			verdict: VerdictOK, network: NetworkOK, issuer: "Apple Server Authentication CA (Apple Inc.)",
		},
		{
			name: "a certificate the SNI swap's address made for the control name is interception",
			world: &world{step: func(s *stepCtx) {
				if s.o.Step == measurements.StepTLS && s.t.Group == "push" {
					s.present([][]byte{interceptCA.leaf(serverNameOf(s))}, "", failSSLAuthority, "x509: certificate signed by unknown authority")
				}
			}},
			verdict: VerdictBlocked, method: MethodTLSInterception, network: NetworkOK, issuer: "Network Security Certificate (National Network Authority)",
		},
		{
			name: "a shared front's certificate for the control name, under a root this computer lacks, proves nothing",
			world: func() *world {
				// The couriers served from a CDN outside the catalog's
				// networks, whose authority's root a stale store lacks;
				// the same front holds a genuine certificate for the
				// control name.
				w := &world{targets: testCatalog(), step: func(s *stepCtx) {
					if s.o.Step == measurements.StepTLS && s.t.Group == "push" {
						c := chainFixtures()
						s.present([][]byte{issue(c.publicNew, serverNameOf(s), 1), c.publicNew.cert.Raw}, "", failSSLAuthority, "x509: certificate signed by unknown authority")
					}
				}}
				for i := range w.targets {
					if w.targets[i].Group == "push" {
						w.targets[i].Networks = nil
					}
				}
				return w
			}(),
			verdict: VerdictInconclusive, suspected: MethodTLSInterception, network: NetworkOK, issuer: "Example Public CA R2 (Example Trust Services)",
		},
		{
			name: "a certificate made for a control name that is Apple's proves nothing",
			world: func() *world {
				const appleControl = "www.icloud.com"
				w := &world{targets: testCatalog(), step: func(s *stepCtx) {
					if s.o.Step == measurements.StepTLS && s.t.Group == "push" {
						name := s.t.ServerName
						if s.o.Control {
							name = appleControl
							s.o.TLS.ServerName = appleControl
						}
						s.present([][]byte{interceptCA.leaf(name)}, "", failSSLAuthority, "x509: certificate signed by unknown authority")
					}
				}}
				for i := range w.targets {
					w.targets[i].ControlServerName = appleControl
				}
				return w
			}(),
			verdict: VerdictInconclusive, suspected: MethodTLSInterception, network: NetworkOK, issuer: "Network Security Certificate (National Network Authority)",
		},
		{
			name: "an impersonated Apple authority is interception",
			world: &world{repeats: 3, step: func(s *stepCtx) {
				if targetTLSAt(s, "17.57.146.20", 443) || targetTLSAt(s, "17.188.128.10", 443) {
					s.chain(fakeApple.leaf(s.t.ServerName), failSSLAuthority, "x509: certificate signed by unknown authority")
				}
			}},
			verdict: VerdictBlocked, method: MethodTLSInterception, network: NetworkOK, issuer: "Apple Public Server ECC CA 1 - G1 (Apple Inc.)",
		},
		{
			name: "a national authority where the name verifies elsewhere is interception",
			world: &world{repeats: 3, step: func(s *stepCtx) {
				if targetTLSAt(s, "17.57.146.20", 443) || targetTLSAt(s, "17.188.128.10", 443) {
					s.chain(interceptCA.leaf(s.t.ServerName), failSSLAuthority, "x509: certificate signed by unknown authority")
				}
			}},
			verdict: VerdictBlocked, method: MethodTLSInterception, network: NetworkOK, issuer: "Network Security Certificate (National Network Authority)",
		},
		{
			name: "every chain unknown, control hosts included, is not called interception",
			world: &world{step: func(s *stepCtx) {
				if s.o.Step == measurements.StepTLS && s.o.TLS.PeerCertificates != nil {
					f, why := failSSLAuthority, "x509: certificate signed by unknown authority"
					if s.o.Control {
						f = failSSLHostname
					}
					s.chain(interceptCA.leaf(serverNameOf(s)), f, why)
				}
			}},
			verdict: VerdictInconclusive, network: NetworkPartial, issuer: "Network Security Certificate (National Network Authority)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Analyze(tt.world.build())
			e := findEndpoint(t, rep, "courier-1", "17.57.146.20", 443, "tls")
			if e.Verdict != tt.verdict || e.Method != tt.method || e.Suspected != tt.suspected {
				t.Errorf("verdict = %s %q (suspected %q), want %s %q (suspected %q)\nevidence: %s", e.Verdict, e.Method, e.Suspected, tt.verdict, tt.method, tt.suspected, e.Evidence)
			}
			if e.Issuer != tt.issuer {
				t.Errorf("issuer = %q, want %q", e.Issuer, tt.issuer)
			}
			if rep.Network.Status != tt.network {
				t.Errorf("network = %s (%s), want %s", rep.Network.Status, rep.Network.Reason, tt.network)
			}
			if tt.verdict != VerdictBlocked {
				assertNothingBlocked(t, rep)
			}
		})
	}
}

func TestNoEndpointWithoutEvidence(t *testing.T) {
	for _, sc := range scenarios() {
		rep := Analyze(sc.world().build())
		for _, e := range rep.Endpoints {
			if strings.TrimSpace(e.Evidence) == "" {
				t.Errorf("%s: endpoint %s %s:%d has no evidence", sc.name, e.Target, e.Address, e.Port)
			}
			if (e.Verdict == VerdictBlocked) != (e.Method != "") {
				t.Errorf("%s: endpoint %s %s:%d: verdict %s with method %q", sc.name, e.Target, e.Address, e.Port, e.Verdict, e.Method)
			}
		}
	}
}
