//go:build lab

package pathprobe

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/probes/arrival"
)

// udpTCPTraces is the first comparison: UDP on a call port to the
// target vs a SYN to 443 on the same address, and vs the same UDP port
// toward a control address.
func (l *pathLab) udpTCPTraces() labRequest {
	var req labRequest
	test := labFlow{Network: "udp", Dst: fmt.Sprintf("%s:3478", l.target())}
	req.Traces = append(req.Traces,
		labTrace{Test: test, Control: labFlow{Network: "tcp", Dst: fmt.Sprintf("%s:443", l.target())}},
		labTrace{Test: test, Control: labFlow{Network: "udp", Dst: fmt.Sprintf("%s:3478", l.controlAddr())}, UseDestOf: 1},
	)
	return req
}

func logTraces(t *testing.T, res labResult) {
	t.Helper()
	for i, tr := range res.Traces {
		var b strings.Builder
		for _, h := range tr.Hops {
			fmt.Fprintf(&b, " %d%s:%s(%v)", h.TTL, h.Role[:1], h.Reply, h.RTT.Round(time.Millisecond))
		}
		t.Logf("trace %d: %d probes in %v; stop %+v;%s", i, tr.Probes, tr.Duration, tr.Stop, b.String())
	}
	t.Logf("budget: %d probes sent", res.Sent)
}

// TestLabUDPDrop: router 2 of 3 drops UDP to the target. Both controls
// pass it, and router 3 answers them: the stop is hop 2, router 2.
func TestLabUDPDrop(t *testing.T) {
	l := newPathLab(t, 3, false)
	l.iptables(l.router(2), "-A", "FORWARD", "-p", "udp", "-d", l.target().String(), "-j", "DROP")
	res := l.runClient(l.udpTCPTraces())
	logTraces(t, res)
	for i, tr := range res.Traces {
		if tr.Skipped != "" || tr.Failure != "" {
			t.Fatalf("trace %d skipped %q, failed %q", i, tr.Skipped, tr.Failure)
		}
		if !tr.Stop.Known || tr.Stop.Hop != 2 || tr.Stop.Addr != l.routerAddr(2) {
			t.Errorf("trace %d: stop %+v, want hop 2 at %v", i, tr.Stop, l.routerAddr(2))
		}
		if tr.Stop.DestinationHop != 4 {
			t.Errorf("trace %d: destination hop %d, want 4", i, tr.Stop.DestinationHop)
		}
	}
}

// TestLabTCPDrop: router 2 drops SYNs to port 8443; a SYN to 443 passes.
func TestLabTCPDrop(t *testing.T) {
	l := newPathLab(t, 3, false)
	l.startServer()
	l.iptables(l.router(2), "-A", "FORWARD", "-p", "tcp", "--dport", "8443", "-j", "DROP")
	var req labRequest
	req.Traces = append(req.Traces, labTrace{
		Test:    labFlow{Network: "tcp", Dst: fmt.Sprintf("%s:8443", l.target())},
		Control: labFlow{Network: "tcp", Dst: fmt.Sprintf("%s:443", l.target())},
	})
	res := l.runClient(req)
	logTraces(t, res)
	if tr := res.Traces[0]; !tr.Stop.Known || tr.Stop.Hop != 2 || tr.Stop.Addr != l.routerAddr(2) {
		t.Errorf("stop %+v, want hop 2 at %v", tr.Stop, l.routerAddr(2))
	}
}

// TestLabDropAtLastRouter: with the server right behind router 2, a drop
// there cannot be told from a server that ignores the datagrams: the place
// is unknown, and said so.
func TestLabDropAtLastRouter(t *testing.T) {
	l := newPathLab(t, 2, false)
	l.iptables(l.router(2), "-A", "FORWARD", "-p", "udp", "-d", l.target().String(), "-j", "DROP")
	res := l.runClient(l.udpTCPTraces())
	logTraces(t, res)
	for i, tr := range res.Traces {
		if tr.Stop.Known || !strings.Contains(tr.Stop.Reason, "may ignore") {
			t.Errorf("trace %d: stop %+v, want unknown: the destination may ignore the flow", i, tr.Stop)
		}
	}
}

// TestLabNoICMP: routers that send no ICMP leave the place unknown, never
// a wrong hop: router 3 (past the drop) in one case, router 2 (the
// dropping one) in the other.
func TestLabNoICMP(t *testing.T) {
	for _, silent := range []int{2, 3} {
		t.Run(fmt.Sprintf("router %d silent", silent), func(t *testing.T) {
			l := newPathLab(t, 3, false)
			l.iptables(l.router(2), "-A", "FORWARD", "-p", "udp", "-d", l.target().String(), "-j", "DROP")
			l.iptables(l.router(silent), "-A", "OUTPUT", "-p", "icmp", "-j", "DROP")
			res := l.runClient(l.udpTCPTraces())
			logTraces(t, res)
			for i, tr := range res.Traces {
				if tr.Stop.Known {
					t.Errorf("trace %d: stop %+v, want unknown", i, tr.Stop)
				}
			}
		})
	}
}

// TestLabDefaultRateLimits: with the kernel's default ICMP rate limits in
// every router, a trace paced by the default budget finds hop 2; traces
// run at once with pacing far tighter than the default, which exhaust
// the routers' allowance, find hop 2 or nothing, never a wrong hop.
func TestLabDefaultRateLimits(t *testing.T) {
	l := newPathLab(t, 3, true)
	l.iptables(l.router(2), "-A", "FORWARD", "-p", "udp", "-d", l.target().String(), "-j", "DROP")
	t.Run("default pacing", func(t *testing.T) {
		req := l.udpTCPTraces()
		req.Traces = req.Traces[:1]
		res := l.runClient(req)
		logTraces(t, res)
		if tr := res.Traces[0]; !tr.Stop.Known || tr.Stop.Hop != 2 {
			t.Errorf("stop %+v, want hop 2", tr.Stop)
		}
	})
	t.Run("tight pacing, concurrent traces", func(t *testing.T) {
		req := l.udpTCPTraces()
		req.Traces = append(req.Traces, req.Traces...)
		req.Traces = append(req.Traces, req.Traces...) // 8 traces, 3 at a time
		req.IntervalMS = 5
		res := l.runClient(req)
		logTraces(t, res)
		known := 0
		for i, tr := range res.Traces {
			if tr.Stop.Known && tr.Stop.Hop != 2 {
				t.Errorf("trace %d: stop at hop %d, want hop 2 or unknown: %+v", i, tr.Stop.Hop, tr.Stop)
			}
			if tr.Stop.Known {
				known++
			}
		}
		t.Logf("%d of %d traces placed the stop", known, len(res.Traces))
	})
}

// TestLabSNIReset: router 2 resets TCP connections whose ClientHello
// names a server (the censor's iptables rule of REFERENCE §4). The
// ClientHello's TTL technique places the injector at hop 2, in the
// issue's topology (the server right behind router 2).
func TestLabSNIReset(t *testing.T) {
	l := newPathLab(t, 2, false)
	l.startServer()
	const name = "courier.push.apple.com"
	l.iptables(l.router(2), "-A", "FORWARD", "-p", "tcp", "-m", "string", "--algo", "bm", "--string", name,
		"-j", "REJECT", "--reject-with", "tcp-reset")
	req := labRequest{Reset: &struct {
		Dst                 string
		ServerName, Control string
		MaxTTL              int
	}{Dst: fmt.Sprintf("%s:443", l.target()), ServerName: name, Control: "control.example.org", MaxTTL: 6}}
	res := l.runClient(req)
	rt := res.Reset
	t.Logf("reset trace in %v: %+v", rt.Duration, rt)
	if !rt.Known || rt.Hop != 2 || rt.ResetTTL != 3 {
		t.Errorf("reset trace %+v, want the injector at hop 2 (reset from TTL 3)", rt)
	}
}

// TestLabReject: router 2 rejects UDP to the target with ICMP port
// unreachable, as a firewall's REJECT does. The trace places the reject
// at hop 2 from the address that sent it; the arrival probe sees the same
// errno as from a closed port but from another host, so no kind counts as
// arrival, while every kind sent to the control address (a closed port
// on the server) arrives.
func TestLabReject(t *testing.T) {
	l := newPathLab(t, 3, false)
	l.iptables(l.router(2), "-A", "FORWARD", "-p", "udp", "-d", l.target().String(),
		"-j", "REJECT", "--reject-with", "icmp-port-unreachable")
	req := l.udpTCPTraces()
	req.Traces = req.Traces[:1]
	req.Arrival = []string{fmt.Sprintf("%s:3478", l.target()), fmt.Sprintf("%s:3478", l.controlAddr())}
	res := l.runClient(req)
	logTraces(t, res)
	if tr := res.Traces[0]; !tr.Stop.Known || tr.Stop.Hop != 2 || !tr.Stop.Rejected || tr.Stop.Addr != l.routerAddr(2) {
		t.Errorf("stop %+v, want a reject at hop 2 from %v", tr.Stop, l.routerAddr(2))
	}
	rejected, arrived := res.Arrival[0], res.Arrival[1]
	if rejected.Arrived() {
		t.Errorf("arrival through a REJECT: %+v", rejected.Kinds)
	}
	for _, k := range rejected.Kinds {
		if k.Evidence != arrival.EvidenceICMPFromOther || k.ICMP == nil || k.ICMP.Offender != l.routerAddr(2).String() {
			t.Errorf("%s through the REJECT: %+v (ICMP %+v), want an ICMP from %v", k.Kind, k, k.ICMP, l.routerAddr(2))
		}
	}
	for _, k := range arrived.Kinds {
		if k.Evidence != arrival.EvidencePortUnreachable {
			t.Errorf("%s to the control address: evidence %q, want %q", k.Kind, k.Evidence, arrival.EvidencePortUnreachable)
		}
	}
}

// quicV1Match is a u32 match of a UDP datagram that starts with a QUIC
// long header of version 1: the kind of rule that lets only some QUIC
// through.
const quicV1Match = "0>>22&0x3C@8>>24&0xC0=0xC0 && 0>>22&0x3C@9=0x1"

// TestLabQUICv1Dropped: router 2 drops QUIC v1 toward the target and
// nothing else. Arrival shows payload filtering: every kind but the v1
// Initial draws the target's port unreachable. A trace whose test flow
// carries a v1 Initial and whose control carries zeros, on the same port,
// places the drop at hop 2.
func TestLabQUICv1Dropped(t *testing.T) {
	l := newPathLab(t, 3, false)
	l.iptables(l.router(2), "-A", "FORWARD", "-p", "udp", "-d", l.target().String(),
		"-m", "u32", "--u32", quicV1Match, "-j", "DROP")
	in, err := arrival.NewV1Initial(l.target().String(), []string{"h3"})
	if err != nil {
		t.Fatal(err)
	}
	dst := fmt.Sprintf("%s:3478", l.target())
	var req labRequest
	req.Traces = append(req.Traces, labTrace{
		Test:    labFlow{Network: "udp", Dst: dst, Payload: in.Wire},
		Control: labFlow{Network: "udp", Dst: dst, Payload: make([]byte, len(in.Wire))},
	})
	req.Arrival = []string{dst}
	res := l.runClient(req)
	logTraces(t, res)
	if tr := res.Traces[0]; !tr.Stop.Known || tr.Stop.Hop != 2 {
		t.Errorf("stop %+v, want hop 2", tr.Stop)
	}
	for _, k := range res.Arrival[0].Kinds {
		want := arrival.EvidencePortUnreachable
		if k.Kind == arrival.KindQUICv1 {
			want = arrival.EvidenceSilence
		}
		if k.Evidence != want {
			t.Errorf("%s: evidence %q, want %q", k.Kind, k.Evidence, want)
		}
	}
	if qv1 := res.Arrival[0].Kinds[2]; qv1.Kind != arrival.KindQUICv1 || qv1.Sent != arrival.Attempts {
		t.Errorf("silent QUIC v1 kind: %+v, want %d datagrams sent", qv1, arrival.Attempts)
	}
}

// TestLabIPv6: the same drop over IPv6. Routers' ICMPv6 time exceeded
// comes through IPV6_RECVERR with the hop's address; the flow label is
// pinned. Arrival to the control address sees the server's ICMPv6 port
// unreachable.
func TestLabIPv6(t *testing.T) {
	l := newPathLab(t, 3, false)
	l.ip6tables(l.router(2), "-A", "FORWARD", "-p", "udp", "-d", l.target6().String(), "-j", "DROP")
	var req labRequest
	test := labFlow{Network: "udp", Dst: netip.AddrPortFrom(l.target6(), 3478).String()}
	req.Traces = append(req.Traces,
		labTrace{Test: test, Control: labFlow{Network: "tcp", Dst: netip.AddrPortFrom(l.target6(), 443).String()}},
		labTrace{Test: test, Control: labFlow{Network: "udp", Dst: netip.AddrPortFrom(l.controlAddr6(), 3478).String()}, UseDestOf: 1},
	)
	req.Arrival = []string{netip.AddrPortFrom(l.controlAddr6(), 3478).String()}
	res := l.runClient(req)
	logTraces(t, res)
	for i, tr := range res.Traces {
		if !tr.Stop.Known || tr.Stop.Hop != 2 || tr.Stop.Addr != l.routerAddr6(2) {
			t.Errorf("trace %d: stop %+v, want hop 2 at %v", i, tr.Stop, l.routerAddr6(2))
		}
	}
	for _, k := range res.Arrival[0].Kinds {
		if k.Evidence != arrival.EvidencePortUnreachable || k.ICMP == nil || k.ICMP.Offender != l.controlAddr6().String() {
			t.Errorf("%s: %+v (ICMP %+v), want the control address's port unreachable", k.Kind, k, k.ICMP)
		}
	}
}
