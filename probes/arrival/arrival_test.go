package arrival

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/reachprobe/reachprobe/probes/probetest"
)

// testTimeout bounds a loopback Probe; every answer here is immediate.
const testTimeout = 10 * time.Second

// ignoredVNWait ends a Probe whose only answers are ignored: long enough
// for a loopback answer, and the verdict does not depend on it.
const ignoredVNWait = 500 * time.Millisecond

// closedUDPPort returns an address on loopback with no UDP socket.
func closedUDPPort(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	return ap
}

func kind(t *testing.T, r *Result, k Kind) KindResult {
	t.Helper()
	for _, kr := range r.Kinds {
		if kr.Kind == k {
			return kr
		}
	}
	t.Fatalf("no result for kind %s in %+v", k, r.Kinds)
	return KindResult{}
}

// TestProbePortUnreachable: every kind to a closed loopback port draws the
// kernel's real ICMP port unreachable, sent by the target address itself.
func TestProbePortUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	target := closedUDPPort(t)
	r, err := Probe(ctx, target, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if r.ICMPSkipped != "" {
		t.Fatalf("ICMP skipped on Linux: %s", r.ICMPSkipped)
	}
	for _, k := range Kinds {
		kr := kind(t, r, k)
		if kr.Evidence != EvidencePortUnreachable || !kr.Arrived() {
			t.Errorf("%s: evidence %q, want %q", k, kr.Evidence, EvidencePortUnreachable)
		}
		if kr.ICMP == nil || kr.ICMP.Offender != "127.0.0.1" || !kr.ICMP.FromTarget {
			t.Errorf("%s: ICMP %+v, want one from 127.0.0.1", k, kr.ICMP)
		}
		if kr.Size != DatagramSize || kr.Sent != 1 {
			t.Errorf("%s: sent %d of %d bytes, want 1 of %d (no retransmission after evidence)", k, kr.Sent, kr.Size, DatagramSize)
		}
	}
	if !r.Arrived() {
		t.Error("Arrived() = false")
	}
}

// TestProbeQUICServer: quic-go, a real QUIC stack, answers the reserved
// version with a Version Negotiation that validates, and the v1 Initial
// with its own packets after decrypting our ClientHello, whose SNI is the
// IP address and whose ALPN is h3.
func TestProbeQUICServer(t *testing.T) {
	ca, err := probetest.LoadTestCA()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Leaf("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	var mu sync.Mutex
	var hellos []*tls.ClientHelloInfo
	tr := &quic.Transport{Conn: udp}
	defer tr.Close()
	ln, err := tr.Listen(&tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h3"},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			mu.Lock()
			hellos = append(hellos, h)
			mu.Unlock()
			return nil, nil
		},
	}, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	target := udp.LocalAddr().(*net.UDPAddr).AddrPort()
	r, err := Probe(ctx, target, Config{Kinds: []Kind{KindQUICReserved, KindQUICv1}})
	if err != nil {
		t.Fatal(err)
	}
	res := kind(t, r, KindQUICReserved)
	if res.Evidence != EvidenceAnswer || res.VersionNegotiation != VNValid {
		t.Errorf("reserved version: evidence %q, VN %q; want an answer with a valid VN", res.Evidence, res.VersionNegotiation)
	}
	hasV1 := false
	for _, v := range res.VNVersions {
		hasV1 = hasV1 || v == QUICv1
	}
	if !hasV1 {
		t.Errorf("VN offers %#x, want version 1 among them", res.VNVersions)
	}
	v1 := kind(t, r, KindQUICv1)
	if v1.Evidence != EvidenceAnswer || v1.VersionNegotiation != "" || v1.AnswerBytes == 0 {
		t.Errorf("v1: %+v, want an answer that is not a VN", v1)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hellos) == 0 {
		t.Fatal("the server never parsed a ClientHello from the v1 Initial")
	}
	if h := hellos[0]; h.ServerName != "127.0.0.1" || len(h.SupportedProtos) != 1 || h.SupportedProtos[0] != "h3" {
		t.Errorf("server saw SNI %q, ALPN %q; want 127.0.0.1, [h3]", h.ServerName, h.SupportedProtos)
	}
}

// TestProbeSTUN: the padded binding request is answered by a STUN server.
func TestProbeSTUN(t *testing.T) {
	srv, err := probetest.StartSTUN("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	r, err := Probe(ctx, srv.Addr(), Config{Kinds: []Kind{KindSTUN}})
	if err != nil {
		t.Fatal(err)
	}
	if kr := kind(t, r, KindSTUN); kr.Evidence != EvidenceAnswer || kr.STUNClass != "success" {
		t.Errorf("STUN: %+v, want a success response", kr)
	}
}

// vnResponder answers every datagram on loopback with the Version
// Negotiation made by answer from the datagram's IDs and version.
func vnResponder(t *testing.T, answer func(dcid, scid []byte, version uint32) []byte) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			b := buf[:n]
			if n < 7 || b[0]&0x80 == 0 {
				continue
			}
			version := uint32(b[1])<<24 | uint32(b[2])<<16 | uint32(b[3])<<8 | uint32(b[4])
			dcid, rest, ok := cutConnID(b[5:])
			if !ok {
				continue
			}
			scid, _, ok := cutConnID(rest)
			if !ok {
				continue
			}
			_, _ = c.WriteToUDPAddrPort(answer(dcid, scid, version), from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestProbeVersionNegotiationResponder(t *testing.T) {
	tests := []struct {
		name         string
		answer       func(dcid, scid []byte, version uint32) []byte
		wantEvidence string
		wantVN       string
	}{
		{"valid", func(d, s []byte, v uint32) []byte { return AppendVersionNegotiation(nil, d, s, 1) },
			EvidenceAnswer, VNValid},
		{"lists the version sent", func(d, s []byte, v uint32) []byte { return AppendVersionNegotiation(nil, d, s, 1, v) },
			EvidenceSilence, VNListsSentVersion},
		{"IDs not echoed", func(d, s []byte, v uint32) []byte { return AppendVersionNegotiation(nil, s, d, 1) },
			EvidenceSilence, VNWrongIDs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := vnResponder(t, tt.answer)
			// An ignored VN leaves the probe waiting for evidence that
			// never comes; the deadline ends it.
			ctx, cancel := context.WithTimeout(context.Background(), ignoredVNWait)
			defer cancel()
			r, err := Probe(ctx, target, Config{Kinds: []Kind{KindQUICReserved}})
			if err != nil {
				t.Fatal(err)
			}
			kr := kind(t, r, KindQUICReserved)
			if kr.Evidence != tt.wantEvidence || kr.VersionNegotiation != tt.wantVN {
				t.Errorf("evidence %q, VN %q; want %q, %q", kr.Evidence, kr.VersionNegotiation, tt.wantEvidence, tt.wantVN)
			}
		})
	}
}

// TestWire: every kind's datagram is DatagramSize bytes, and an unknown
// kind is an error.
func TestWire(t *testing.T) {
	target := netip.MustParseAddrPort("17.133.234.20:3478")
	for _, k := range Kinds {
		b, err := Wire(k, target)
		if err != nil || len(b) != DatagramSize {
			t.Errorf("Wire(%s) = %d bytes, %v; want %d bytes", k, len(b), err, DatagramSize)
		}
	}
	if _, err := Wire("nonsense", target); err == nil {
		t.Error("Wire of an unknown kind: no error")
	}
}
