package analysis

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// update rewrites the golden files (analysis and history):
//
//	go test ./analysis -run TestGolden -update
var update = flag.Bool("update", false, "rewrite testdata/<case>/{observations.json,analysis.json,analysis.txt}")

// scenario is a golden case: a synthetic network and the verdicts a person
// expects of it. The expectations are checked on every run, so a golden
// file cannot quietly encode a wrong verdict.
type scenario struct {
	name  string
	world func() *world
	want  expectation
}

type expectation struct {
	network  string
	services map[string]string // service -> verdict
	methods  map[string]string // service -> first method
	apps     map[string]string // app -> verdict
	// noBlocked says no endpoint, DNS name or service may be blocked.
	noBlocked bool
	// blockedOnly, when set, says no other service may be blocked or
	// degraded and no endpoint of another group blocked.
	blockedOnly string
}

// Step hooks used by several scenarios.
func forApple(s *stepCtx) bool { return s.isApple() && s.real }

// webOnly is a web-only firewall: every connect and datagram but to ports
// 80 and 443 is silent, whatever the destination.
func webOnly(s *stepCtx) {
	if s.o.Port == 443 || s.o.Port == 80 {
		return
	}
	switch s.o.Step {
	case measurements.StepTCP:
		s.fail(failTimeout, "connect")
	case measurements.StepUDP:
		s.fail(failTimeout, "read")
	}
}

func allOK(services ...string) map[string]string {
	m := map[string]string{"push": "ok", "identity": "ok", "call": "ok", "quic": "ok"}
	for i := 0; i+1 < len(services); i += 2 {
		m[services[i]] = services[i+1]
	}
	return m
}

var working = map[string]string{"imessage": "working", "facetime": "working"}

// oneOfNet accepts a network that is ok or unstable: a path that flapped
// may read as either.
const oneOfNet = "ok|unstable"

func scenarios() []scenario {
	return append([]scenario{
		{name: "clean", world: func() *world { return &world{} },
			want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
		{name: "clean_repeat3", world: func() *world { return &world{repeats: 3} },
			want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
		{name: "identity_nxdomain", world: func() *world {
			return &world{resolve: func(l *lookup) {
				if l.t.Group == "identity" && l.engine != measurements.EngineDoH {
					l.rcode("NXDOMAIN", failDNSNXDomain)
				}
			}}
		}, want: expectation{network: "ok", services: allOK("identity", "blocked"), methods: map[string]string{"identity": MethodDNSNXDomain},
			apps: map[string]string{"imessage": "blocked", "facetime": "blocked"}}},
		{name: "push_bogon", world: func() *world {
			return &world{resolve: func(l *lookup) {
				if l.t.Group == "push" && l.engine != measurements.EngineDoH {
					l.answer("127.0.0.1")
				}
			}}
		}, want: expectation{network: "ok", services: allOK("push", "blocked"), methods: map[string]string{"push": MethodDNSBogon},
			apps: map[string]string{"imessage": "blocked", "facetime": "blocked"}}},
		{name: "push_injection", world: func() *world {
			return &world{resolve: func(l *lookup) {
				if l.t.Group == "push" && l.engine != measurements.EngineDoH && l.qtype == "A" {
					real := realAddrs[l.t.Host]
					l.answer("93.46.8.90")
					if l.engine == measurements.EngineUDP {
						l.late(real...)
					}
				}
			}}
		}, want: expectation{network: "ok", services: allOK("push", "blocked"), methods: map[string]string{"push": MethodDNSInjection},
			apps: map[string]string{"imessage": "blocked", "facetime": "blocked"}}},
		{name: "push_5223_rst", world: func() *world {
			// Apple's 5223 refused; port 5223 toward the control hosts is
			// refused too (they listen on no such port, or a firewall
			// rejects it for everyone): which of the two cannot be told.
			return &world{step: func(s *stepCtx) {
				if forApple(s) && s.o.Port == 5223 && s.o.Step == measurements.StepTCP {
					s.fail(failRefused, "connect")
				}
			}}
		}, want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
		{name: "push_5223_drop", world: func() *world {
			// A censor drops 5223 toward Apple only: the control hosts
			// answer on 5223 (with a reset, as a host with no listener
			// does), so the port is open toward other destinations.
			return &world{step: func(s *stepCtx) {
				if forApple(s) && s.o.Port == 5223 && s.o.Step == measurements.StepTCP {
					s.fail(failTimeout, "connect")
				}
			}}
		}, want: expectation{network: "ok", services: allOK("push", "degraded"), methods: map[string]string{"push": MethodPortFiltering},
			apps: map[string]string{"imessage": "degraded", "facetime": "degraded"}}},
		{name: "push_sni_reset", world: func() *world {
			return &world{step: func(s *stepCtx) {
				if s.o.Step == measurements.StepTLS && !s.o.Control && strings.HasSuffix(s.o.TLS.ServerName, "push.apple.com") {
					s.fail(failReset, "tls_handshake")
				}
			}}
		}, want: expectation{network: "ok", services: allOK("push", "blocked"), methods: map[string]string{"push": MethodSNIFiltering},
			apps: map[string]string{"imessage": "blocked", "facetime": "blocked"}}},
		{name: "identity_sni_drop", world: func() *world {
			return &world{step: func(s *stepCtx) {
				if s.o.Step == measurements.StepTLS && !s.o.Control && s.t.Group == "identity" {
					s.fail(failTimeout, "tls_handshake")
				}
			}}
		}, want: expectation{network: "ok", services: allOK("identity", "blocked"), methods: map[string]string{"identity": MethodSNIFiltering},
			apps: map[string]string{"imessage": "blocked", "facetime": "blocked"}}},
		{name: "quic_blocked", world: func() *world {
			// Repeated: the QUIC group has one endpoint, whose silence in a
			// single try would prove nothing.
			return &world{repeats: 3, step: func(s *stepCtx) {
				if forApple(s) && s.o.Step == measurements.StepQUIC {
					s.fail(failTimeout, "quic_handshake")
				}
			}}
		}, want: expectation{network: "ok", services: allOK("quic", "blocked"), methods: map[string]string{"quic": MethodQUICTimeout}, apps: working}},
		{name: "call_udp_dropped", world: func() *world {
			return &world{step: func(s *stepCtx) {
				if forApple(s) && s.o.Step == measurements.StepUDP {
					s.fail(failTimeout, "read")
				}
			}}
		}, want: expectation{network: "ok", services: allOK("call", "blocked"), methods: map[string]string{"call": MethodUDPTimeout},
			apps: map[string]string{"imessage": "working", "facetime": "blocked"}}},
		{name: "identity_interception", world: func() *world {
			// Every path to the identity names meets an authority no known
			// key verifies, and the SNI swap gets the server's own
			// certificate, which differs by nature: nothing shows the
			// chain is not the server's, so interception is only
			// suspected (Apple may use an authority the probe does not
			// know). identity_interception_any_name and
			// identity_forged_apple_issuer are the censors caught.
			return &world{step: func(s *stepCtx) {
				if s.o.Step == measurements.StepTLS && !s.o.Control && s.t.Group == "identity" {
					cas()
					s.chain(interceptCA.leaf(s.t.ServerName), failSSLAuthority, "x509: certificate signed by unknown authority")
				}
			}}
		}, want: expectation{network: "ok", services: allOK("identity", "inconclusive"),
			apps: map[string]string{"imessage": "inconclusive", "facetime": "inconclusive"}, noBlocked: true}},
		{name: "identity_dns_inconsistent", world: func() *world {
			// The resolver sends identity names to a block page server
			// that accepts connections and presents its own certificate.
			return &world{resolve: func(l *lookup) {
				if l.t.Group == "identity" && l.engine != measurements.EngineDoH {
					l.answer("185.51.200.10")
				}
			}, step: func(s *stepCtx) {
				if s.addr.String() != "185.51.200.10" {
					return
				}
				cas()
				switch s.o.Step {
				case measurements.StepTCP:
					s.o.Failure, s.o.Operation, s.o.Duration = "", "", stepDuration
				case measurements.StepTLS:
					s.o.Failure, s.o.Operation, s.o.Duration = "", "", stepDuration
					s.o.TLS = &measurements.TLSDetails{Network: "tcp", ServerName: serverNameOf(s)}
					s.chain(publicCA.leaf("blocked.example.net"), failSSLHostname, "x509: certificate is valid for blocked.example.net")
				}
			}}
		}, want: expectation{network: "ok", services: allOK("identity", "blocked"), methods: map[string]string{"identity": MethodDNSInconsistent},
			apps: map[string]string{"imessage": "blocked", "facetime": "blocked"}}},
		{name: "apple_blackhole", world: func() *world {
			// Bare silence toward all of Apple, confirmed after a pause:
			// a censor's drop and an outage of the path to Apple look
			// the same, so the words say unreachable, not blocked.
			return &world{step: appleDropped}
		}, want: expectation{network: "ok",
			services: map[string]string{"push": "unreachable", "identity": "unreachable", "call": "unreachable", "quic": "unreachable"},
			apps:     map[string]string{"imessage": "unreachable", "facetime": "unreachable"}, noBlocked: true}},
		{name: "link_down", world: func() *world {
			// The router's cache still answers; nothing beyond it does.
			return &world{resolve: func(l *lookup) {
				if l.engine == measurements.EngineDoH {
					l.timeout()
				}
			}, step: func(s *stepCtx) {
				op := map[measurements.Step]string{measurements.StepTCP: "connect", measurements.StepQUIC: "quic_handshake", measurements.StepUDP: "read"}[s.o.Step]
				s.fail(failTimeout, op)
			}}
		}, want: expectation{network: "no_connectivity",
			services:  map[string]string{"push": "inconclusive", "identity": "inconclusive", "call": "inconclusive", "quic": "inconclusive"},
			apps:      map[string]string{"imessage": "inconclusive", "facetime": "inconclusive"},
			noBlocked: true}},
		{name: "loss_20pct_repeat3", world: func() *world { return lossyWorld(3, 1) },
			want: expectation{network: "unstable", noBlocked: true}},
		{name: "push_sni_reset_loss_repeat3", world: func() *world {
			// The censor of push_sni_reset on the lossy link of
			// loss_20pct_repeat3: resets still show through the loss.
			w := lossyWorld(3, 3)
			lossy := w.step
			w.step = func(s *stepCtx) {
				if s.o.Step == measurements.StepTLS && !s.o.Control && strings.HasSuffix(s.o.TLS.ServerName, "push.apple.com") {
					s.fail(failReset, "tls_handshake")
				}
				lossy(s)
			}
			return w
		}, want: expectation{network: "unstable", services: map[string]string{"push": "blocked"}, methods: map[string]string{"push": MethodSNIFiltering},
			blockedOnly: "push"}},
		{name: "ipv6_no_route", world: func() *world { return &world{ipv6: true} },
			want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
		{name: "identity_outage", world: func() *world {
			return &world{step: func(s *stepCtx) {
				if s.o.Step == measurements.StepTLS && s.t.Group == "identity" {
					s.fail(failSSLHandshake, "tls_handshake")
				}
			}}
		}, want: expectation{network: "ok", services: allOK("identity", "failed"),
			apps: map[string]string{"imessage": "down", "facetime": "down"}, noBlocked: true}},
		{name: "call_stun_not_expected", world: func() *world {
			w := &world{targets: testCatalog()}
			for i := range w.targets {
				if w.targets[i].Group == "call" {
					w.targets[i].STUNAnswers = false
				}
			}
			return w
		}, want: expectation{network: "ok", services: allOK("call", "inconclusive"),
			apps: map[string]string{"imessage": "working", "facetime": "inconclusive"}, noBlocked: true}},
		{name: "resolver_down_repeat2", world: func() *world {
			// The network's resolver answers no name, control names
			// included; encrypted DNS finds the servers and they answer.
			// Apps cannot look anything up: broken, not blocked.
			return &world{repeats: 2, resolve: func(l *lookup) {
				if l.engine != measurements.EngineDoH {
					l.timeout()
				}
			}}
		}, want: expectation{network: "partial",
			services:  map[string]string{"push": "failed", "identity": "failed", "call": "failed", "quic": "failed"},
			apps:      map[string]string{"imessage": "down", "facetime": "down"},
			noBlocked: true}},
		{name: "apple_dropped_repeat2", world: func() *world {
			// Everything to Apple's addresses dropped, Private Relay's TCP
			// fallback included; the controls answer over TCP, QUIC and
			// STUN. Repeated, still bare silence: unreachable.
			return &world{repeats: 2, targets: catalogWithFallback(), step: appleDropped}
		}, want: expectation{network: "ok",
			services: map[string]string{"push": "unreachable", "identity": "unreachable", "call": "unreachable", "quic": "unreachable"},
			apps:     map[string]string{"imessage": "unreachable", "facetime": "unreachable"}, noBlocked: true}},
		{name: "quic_dropped_fallback_works", world: func() *world {
			// QUIC to Apple dropped; Private Relay falls back to TCP.
			return &world{repeats: 2, targets: catalogWithFallback(), step: func(s *stepCtx) {
				if forApple(s) && s.o.Step == measurements.StepQUIC {
					s.fail(failTimeout, "quic_handshake")
				}
			}}
		}, want: expectation{network: "ok", services: allOK("quic", "degraded"), methods: map[string]string{"quic": MethodQUICTimeout},
			apps: working, blockedOnly: "quic"}},
		{name: "flap_during_one_try", world: func() *world {
			// The path to Apple flaps for a few seconds in the first pass
			// and is back when the confirmation pass measures again.
			return &world{step: func(s *stepCtx) {
				if !s.confirm {
					appleDropped(s)
				}
			}}
		}, want: expectation{network: oneOfNet, services: allOK(), apps: working, noBlocked: true}},
		{name: "courier_cluster_maintenance", world: func() *world {
			// One courier cluster (every courier is in 17.57.146.0/24)
			// refuses every connection, in both passes: a server problem.
			return &world{step: func(s *stepCtx) {
				if s.o.Step == measurements.StepTCP && strings.HasPrefix(s.o.Address, "17.57.146.") {
					s.fail(failRefused, "connect")
				}
			}}
		}, want: expectation{network: "ok", services: allOK("push", "failed"), apps: map[string]string{"imessage": "down", "facetime": "down"}, noBlocked: true}},
		{name: "push_sni_reset_no_confirmation", world: func() *world {
			// A run stored before the confirmation pass existed: the
			// censor's pattern in one pass only claims less.
			return &world{noConfirm: true, step: func(s *stepCtx) {
				if s.o.Step == measurements.StepTLS && !s.o.Control && strings.HasSuffix(s.o.TLS.ServerName, "push.apple.com") {
					s.fail(failReset, "tls_handshake")
				}
			}}
		}, want: expectation{network: "ok", services: allOK("push", "inconclusive"),
			apps: map[string]string{"imessage": "inconclusive", "facetime": "inconclusive"}, noBlocked: true}},
		{name: "identity_nxdomain_no_confirmation", world: func() *world {
			// A run stored before the confirmation pass: one NXDOMAIN per
			// name, which a moment's resolver glitch also gives.
			return &world{noConfirm: true, resolve: func(l *lookup) {
				if l.t.Group == "identity" && l.engine != measurements.EngineDoH {
					l.rcode("NXDOMAIN", failDNSNXDomain)
				}
			}}
		}, want: expectation{network: "ok", services: allOK("identity", "inconclusive"),
			apps: map[string]string{"imessage": "inconclusive", "facetime": "inconclusive"}, noBlocked: true}},
		{name: "web_only_firewall", world: func() *world {
			// A hotel firewall lets only TCP and UDP 80 and 443 out, for
			// every destination: 5223, the STUN control's 3478 and the
			// call ports are dropped alike.
			return &world{step: webOnly, portCheck: func(s *stepCtx) { s.fail(failTimeout, "connect") }}
		}, want: expectation{network: "ok|partial|unstable", services: allOK("call", "restricted"),
			apps: map[string]string{"imessage": "working", "facetime": "restricted"}, noBlocked: true}},
		{name: "quic_dropped_everywhere", world: func() *world {
			// QUIC dropped for every destination, the control's too:
			// nothing shows Apple is targeted.
			return &world{repeats: 2, targets: catalogWithFallback(), step: func(s *stepCtx) {
				if s.o.Step == measurements.StepQUIC {
					s.fail(failTimeout, "quic_handshake")
				}
			}}
		}, want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
	}, append(append(classifyScenarios(), certScenarios()...), append(arrivalScenarios(), append(traceScenarios(), append(quicTraceScenarios(), append(payloadScenarios(), traceTCPScenarios()...)...)...)...)...)...)
}

// appleDropped drops every step to Apple's addresses: connects, QUIC and
// STUN time out.
func appleDropped(s *stepCtx) {
	if !forApple(s) {
		return
	}
	switch s.o.Step {
	case measurements.StepTCP:
		s.fail(failTimeout, "connect")
	case measurements.StepQUIC:
		s.fail(failTimeout, "quic_handshake")
	case measurements.StepUDP:
		s.fail(failTimeout, "read")
	}
}

func serverNameOf(s *stepCtx) string {
	if s.o.Control {
		return controlName
	}
	return s.t.ServerName
}

// lossyWorld drops a share of every step at random, as a link losing
// packets does: timeouts scattered over targets and controls alike.
func lossyWorld(repeats int, seed uint64) *world {
	const loss = 0.2
	w := &world{repeats: repeats, rng: mrand.New(mrand.NewPCG(seed, 7))}
	w.resolve = func(l *lookup) {
		if w.rng.Float64() < loss {
			l.timeout()
		}
	}
	w.step = func(s *stepCtx) {
		if w.rng.Float64() >= loss {
			return
		}
		op := map[measurements.Step]string{measurements.StepTCP: "connect", measurements.StepTLS: "tls_handshake",
			measurements.StepQUIC: "quic_handshake", measurements.StepUDP: "read"}[s.o.Step]
		s.fail(failTimeout, op)
	}
	return w
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return append(b, '\n')
}

func TestGolden(t *testing.T) {
	for _, sc := range append(scenarios(), dnsQuirkScenarios()...) {
		t.Run(sc.name, func(t *testing.T) {
			dir := filepath.Join("testdata", sc.name)
			in := sc.world().build()
			inJSON := marshal(t, in)
			if *update {
				rep := Analyze(in)
				var txt bytes.Buffer
				if err := rep.WriteText(&txt); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for name, b := range map[string][]byte{"observations.json": inJSON, "analysis.json": marshal(t, rep), "analysis.txt": txt.Bytes()} {
					if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			stored := readFile(t, filepath.Join(dir, "observations.json"))
			if !bytes.Equal(stored, inJSON) {
				t.Errorf("observations.json differs from what the scenario generates: %s\nrun: go test ./analysis -run TestGolden -update", firstDiff(stored, inJSON))
			}
			// Analyse what is stored, as the CLI would after a round trip.
			var got Input
			if err := json.Unmarshal(stored, &got); err != nil {
				t.Fatalf("decoding observations.json: %v", err)
			}
			rep := Analyze(got)
			if want := readFile(t, filepath.Join(dir, "analysis.json")); !bytes.Equal(marshal(t, rep), want) {
				t.Errorf("analysis.json: %s\nreview, then run: go test ./analysis -run TestGolden -update", firstDiff(want, marshal(t, rep)))
			}
			var txt bytes.Buffer
			if err := rep.WriteText(&txt); err != nil {
				t.Fatal(err)
			}
			if want := readFile(t, filepath.Join(dir, "analysis.txt")); !bytes.Equal(txt.Bytes(), want) {
				t.Errorf("analysis.txt: %s", firstDiff(want, txt.Bytes()))
			}
			checkExpectation(t, rep, sc.want)
		})
	}
}

func checkExpectation(t *testing.T, rep Report, want expectation) {
	t.Helper()
	if want.network != "" && !slices.Contains(strings.Split(want.network, "|"), rep.Network.Status) {
		t.Errorf("network status = %q (%s), want %q", rep.Network.Status, rep.Network.Reason, want.network)
	}
	services := map[string]ServiceVerdict{}
	for _, s := range rep.Services {
		services[s.Service] = s
	}
	for svc, v := range want.services {
		if got := services[svc]; got.Verdict != v {
			t.Errorf("service %s = %q (%s), want %q", svc, got.Verdict, got.Reason, v)
		}
	}
	for svc, m := range want.methods {
		if got := services[svc].Methods; len(got) == 0 || got[0] != m {
			t.Errorf("service %s methods = %v, want %s first", svc, got, m)
		}
	}
	for _, a := range rep.Apps {
		if v, ok := want.apps[a.App]; ok && a.Verdict != v {
			t.Errorf("app %s = %q (%s), want %q", a.App, a.Verdict, a.Reason, v)
		}
	}
	if want.noBlocked {
		assertNothingBlocked(t, rep)
	}
	if g := want.blockedOnly; g != "" {
		for _, s := range rep.Services {
			if s.Service != g && (s.Verdict == VerdictBlocked || s.Verdict == VerdictDegraded) {
				t.Errorf("service %s is %s (%s), want only %s touched", s.Service, s.Verdict, s.Reason, g)
			}
		}
		for _, e := range rep.Endpoints {
			if e.Group != g && e.Verdict == VerdictBlocked {
				t.Errorf("endpoint %s %s:%d is blocked (%s), want only %s touched", e.Target, e.Address, e.Port, e.Evidence, g)
			}
		}
	}
}

// assertNothingBlocked fails on any blocked verdict, at any level.
func assertNothingBlocked(t *testing.T, rep Report) {
	t.Helper()
	for _, s := range rep.Services {
		if s.Verdict == VerdictBlocked || s.Verdict == VerdictDegraded {
			t.Errorf("service %s is %s (%s)", s.Service, s.Verdict, s.Reason)
		}
	}
	for _, a := range rep.Apps {
		if a.Verdict == AppBlocked {
			t.Errorf("app %s is blocked (%s)", a.App, a.Reason)
		}
	}
	for _, d := range rep.DNS {
		if d.Verdict == VerdictBlocked {
			t.Errorf("DNS of %s is blocked (%s)", d.Host, d.Evidence)
		}
	}
	for _, e := range rep.Endpoints {
		if e.Verdict == VerdictBlocked {
			t.Errorf("endpoint %s %s:%d is blocked (%s)", e.Target, e.Address, e.Port, e.Evidence)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run: go test ./analysis -run TestGolden -update)", err)
	}
	return b
}

// firstDiff describes the first line where want and got differ.
func firstDiff(want, got []byte) string {
	wl, gl := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n  want: %s\n  got:  %s", i+1, w, g)
		}
	}
	return "no line differs (lengths differ)"
}
