package analysis

import (
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// Golden cases for answers the classifier keeps apart: a server's TLS
// alert, a middlebox's HTTP page, this machine's own firewall, ICMP
// errors on the call ports, and captive portals.

// portalPage is what the synthetic captive portal answers a ClientHello
// with.
const portalPage = "HTTP/1.1 302 Found\r\nLocation: http://portal.example/login\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

// blockPage is what the synthetic censor's middlebox answers with.
const blockPage = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\n\r\n<html><body>\x1b[31mAccess denied</body></html>"

// portalAddr is the captive portal's address: private, as hotel and
// airport portals' often are.
const portalAddr = "10.255.0.1"

func classifyScenarios() []scenario {
	return []scenario{
		{name: "identity_tls_alert", world: func() *world {
			// Both names get a handshake_failure alert from the server:
			// a server problem, not blocking.
			return &world{step: func(s *stepCtx) {
				if s.o.Step == measurements.StepTLS && s.t.Group == "identity" {
					s.fail(failSSLHandshake, "tls_handshake")
					s.o.TLS.Alert = "handshake_failure"
				}
			}}
		}, want: expectation{network: "ok", services: allOK("identity", "failed"),
			apps: map[string]string{"imessage": "down", "facetime": "down"}, noBlocked: true}},
		{name: "identity_block_page", world: func() *world {
			// A middlebox answers the ClientHello naming Apple's identity
			// servers with a block page; the control name on the same
			// address completes its handshake.
			return &world{step: func(s *stepCtx) {
				if s.o.Step == measurements.StepTLS && !s.o.Control && s.t.Group == "identity" {
					s.fail(failHTTPToTLS, "tls_handshake")
					s.o.TLS.ServerBytes = []byte(blockPage)
				}
			}}
		}, want: expectation{network: "ok", services: allOK("identity", "blocked"), methods: map[string]string{"identity": MethodSNIFiltering},
			apps: map[string]string{"imessage": "blocked", "facetime": "blocked"}, blockedOnly: "identity"}},
		{name: "call_local_firewall", world: func() *world {
			// This computer's own firewall drops UDP to the call ports:
			// the send fails with EPERM.
			return &world{step: func(s *stepCtx) {
				if forApple(s) && s.o.Step == measurements.StepUDP {
					s.fail(failLocalFirewall, "write")
					s.o.STUN.Attempts, s.o.Duration = 0, stepDuration
				}
			}}
		}, want: expectation{network: "ok", services: allOK("call", "failed"),
			apps: map[string]string{"imessage": "working", "facetime": "down"}, noBlocked: true}},
		{name: "call_port_unreachable", world: func() *world {
			// Nothing listens on Apple's call ports: the host answers
			// ICMP port unreachable from its own address.
			return &world{step: func(s *stepCtx) {
				if forApple(s) && s.o.Step == measurements.StepUDP {
					portUnreachable(s, true)
				}
			}}
		}, want: expectation{network: "ok", services: allOK(), apps: working, noBlocked: true}},
		{name: "call_port_unreachable_unread", world: func() *world {
			// The same, stored by a probe that did not read where the
			// ICMP came from.
			return &world{step: func(s *stepCtx) {
				if forApple(s) && s.o.Step == measurements.StepUDP {
					portUnreachable(s, true)
					s.o.STUN.ICMP = nil
				}
			}}
		}, want: expectation{network: "ok", services: allOK("call", "inconclusive"),
			apps: map[string]string{"imessage": "working", "facetime": "inconclusive"}, noBlocked: true}},
		{name: "call_udp_rejected", world: func() *world {
			// A firewall on the path rejects UDP to Apple's call ports
			// with ICMP administratively prohibited; the control STUN
			// server answers.
			return &world{step: func(s *stepCtx) {
				if forApple(s) && s.o.Step == measurements.StepUDP {
					s.fail(failAdminProhib, "read")
					s.o.STUN.Attempts, s.o.Duration = 1, stepDuration
					s.o.STUN.ICMP = &measurements.ICMPDetails{Type: 3, Code: 13}
				}
			}}
		}, want: expectation{network: "ok", services: allOK("call", "blocked"), methods: map[string]string{"call": MethodUDPRejected},
			apps: map[string]string{"imessage": "working", "facetime": "blocked"}, blockedOnly: "call"}},
		{name: "udp_rejected_everywhere", world: func() *world {
			// The network rejects all UDP but DNS, the control's too:
			// its policy for every destination, not a block of Apple.
			return &world{step: func(s *stepCtx) {
				switch s.o.Step {
				case measurements.StepUDP:
					s.fail(failAdminProhib, "read")
					s.o.STUN.Attempts, s.o.Duration = 1, stepDuration
					s.o.STUN.ICMP = &measurements.ICMPDetails{Type: 3, Code: 13}
				case measurements.StepQUIC:
					s.fail(failAdminProhib, "quic_handshake")
				}
			}}
		}, want: expectation{services: map[string]string{"push": "ok", "identity": "ok"}, noBlocked: true}},
		{name: "captive_portal_dns", world: func() *world {
			// The portal's resolver answers every name with the portal;
			// encrypted DNS meets the portal's page.
			return &world{resolve: func(l *lookup) {
				if l.engine == measurements.EngineDoH {
					l.o.DNS.Rcode, l.o.DNS.Answers = "", nil
					l.o.Failure, l.o.Operation = failHTTPToTLS, "resolve"
					return
				}
				l.answer(portalAddr)
			}}
		}, want: expectation{network: NetworkCaptivePortal,
			services: map[string]string{"push": "inconclusive", "identity": "inconclusive", "call": "inconclusive", "quic": "inconclusive"},
			apps:     map[string]string{"imessage": "inconclusive", "facetime": "inconclusive"}, noBlocked: true}},
		{name: "captive_portal_https", world: func() *world {
			// DNS is left alone, but the portal takes every TCP
			// connection and answers the ClientHello with its redirect;
			// UDP goes nowhere.
			return &world{resolve: func(l *lookup) {
				if l.engine == measurements.EngineDoH {
					l.o.DNS.Rcode, l.o.DNS.Answers = "", nil
					l.o.Failure, l.o.Operation = failHTTPToTLS, "resolve"
				}
			}, step: func(s *stepCtx) {
				switch s.o.Step {
				case measurements.StepTLS:
					s.fail(failHTTPToTLS, "tls_handshake")
					s.o.TLS.ServerBytes = []byte(portalPage)
				case measurements.StepQUIC:
					s.fail(failTimeout, "quic_handshake")
				case measurements.StepUDP:
					s.fail(failTimeout, "read")
				}
			}}
		}, want: expectation{network: NetworkCaptivePortal,
			services: map[string]string{"push": "inconclusive", "identity": "inconclusive", "call": "inconclusive", "quic": "inconclusive"},
			apps:     map[string]string{"imessage": "inconclusive", "facetime": "inconclusive"}, noBlocked: true}},
		{name: "captive_portal_cert", world: func() *world {
			// A portal that takes every TCP connection and completes the
			// handshake with its own certificate, whatever the name.
			return &world{resolve: func(l *lookup) {
				if l.engine == measurements.EngineDoH {
					l.o.DNS.Rcode, l.o.DNS.Answers = "", nil
					l.o.Failure, l.o.Operation = failSSLHostname, "resolve"
				}
			}, step: func(s *stepCtx) {
				switch s.o.Step {
				case measurements.StepTLS:
					cas()
					s.chain(publicCA.leaf("portal.example"), failSSLHostname, "x509: certificate is valid for portal.example")
				case measurements.StepQUIC:
					s.fail(failTimeout, "quic_handshake")
				case measurements.StepUDP:
					s.fail(failTimeout, "read")
				}
			}}
		}, want: expectation{network: NetworkCaptivePortal,
			services: map[string]string{"push": "inconclusive", "identity": "inconclusive", "call": "inconclusive", "quic": "inconclusive"},
			apps:     map[string]string{"imessage": "inconclusive", "facetime": "inconclusive"}, noBlocked: true}},
	}
}

// portUnreachable makes a STUN step end in an ICMP port unreachable.
func portUnreachable(s *stepCtx, fromTarget bool) {
	s.fail(failRefused, "read")
	s.o.STUN.Attempts, s.o.Duration = 1, stepDuration
	s.o.STUN.ICMP = &measurements.ICMPDetails{Type: 3, Code: 3, FromTarget: fromTarget}
}

// TestClassifyGoldenWords checks what the golden expectations cannot:
// the words that say why.
func TestClassifyGoldenWords(t *testing.T) {
	byName := map[string]scenario{}
	for _, sc := range classifyScenarios() {
		byName[sc.name] = sc
	}
	analyze := func(name string) Report { return Analyze(byName[name].world().build()) }

	t.Run("block page bytes are evidence, escaped", func(t *testing.T) {
		rep := analyze("identity_block_page")
		found := false
		for _, e := range rep.Endpoints {
			if e.Group != "identity" || e.Verdict != VerdictBlocked {
				continue
			}
			found = true
			if !strings.Contains(e.Evidence, `"HTTP/1.1 403 Forbidden\r\n`) {
				t.Errorf("evidence %q does not quote the page", e.Evidence)
			}
			if strings.ContainsAny(e.Evidence, "\x1b\r\n") {
				t.Errorf("evidence %q carries the page's bytes raw", e.Evidence)
			}
		}
		if !found {
			t.Error("no identity endpoint is blocked")
		}
	})
	t.Run("local firewall says whose policy", func(t *testing.T) {
		rep := analyze("call_local_firewall")
		for _, s := range rep.Services {
			if s.Service == "call" && !strings.Contains(s.Reason, "this machine's policy") {
				t.Errorf("call reason %q does not say it is this machine's policy", s.Reason)
			}
		}
	})
	t.Run("port unreachable from the target is arrival", func(t *testing.T) {
		rep := analyze("call_port_unreachable")
		for _, e := range rep.Endpoints {
			if e.Group == "call" && (e.Verdict != VerdictOK || !strings.Contains(e.Evidence, "the datagram reached")) {
				t.Errorf("endpoint %s:%d = %s (%s), want ok: the datagram reached the host", e.Address, e.Port, e.Verdict, e.Evidence)
			}
		}
	})
	t.Run("captive portal says log in", func(t *testing.T) {
		for _, name := range []string{"captive_portal_dns", "captive_portal_https"} {
			rep := analyze(name)
			if !strings.Contains(rep.Network.Reason, "captive portal") {
				t.Errorf("%s: network reason %q", name, rep.Network.Reason)
			}
			for _, a := range rep.Apps {
				if !strings.Contains(a.Reason, "log in to this network first") {
					t.Errorf("%s: app %s reason %q", name, a.App, a.Reason)
				}
			}
		}
	})
}
