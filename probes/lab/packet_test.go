//go:build lab

package lab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// These tests need no root: they check the injector's packet handling.
// Their names start with TestLab so that "make lab" runs them.

func testQuery(t testing.TB, name string, qtype uint16) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	wire, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return wire
}

func testPacket(t testing.TB, payload []byte) []byte {
	t.Helper()
	b, err := udpPacket{
		Src: netip.MustParseAddr(clientAddr), Dst: netip.MustParseAddr(ResolverAddr),
		SrcPort: 40000, DstPort: 53, ID: 7, TTL: 63, Payload: payload,
	}.marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLabPacketRoundTrip(t *testing.T) {
	payload := testQuery(t, "1-courier.push.apple.com", dns.TypeA)
	b := testPacket(t, payload)
	p, err := parseUDP4(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Src.String(), clientAddr; got != want {
		t.Errorf("src = %s, want %s", got, want)
	}
	if got, want := p.Dst.String(), ResolverAddr; got != want {
		t.Errorf("dst = %s, want %s", got, want)
	}
	if p.SrcPort != 40000 || p.DstPort != 53 || p.ID != 7 || p.TTL != 63 {
		t.Errorf("ports %d->%d, id %d, ttl %d; want 40000->53, 7, 63", p.SrcPort, p.DstPort, p.ID, p.TTL)
	}
	if !bytes.Equal(p.Payload, payload) {
		t.Errorf("payload differs after a round trip")
	}
	// A correct checksum sums, with the field included, to zero.
	if got := checksum(0, b[:ipv4MinHeader]); got != 0 {
		t.Errorf("IPv4 header checksum does not verify: residue %#04x", got)
	}
	var pseudo [12]byte
	copy(pseudo[0:4], b[12:16])
	copy(pseudo[4:8], b[16:20])
	pseudo[9] = protoUDP
	binary.BigEndian.PutUint16(pseudo[10:12], uint16(len(b)-ipv4MinHeader))
	if got := checksum(sumWords(0, pseudo[:]), b[ipv4MinHeader:]); got != 0 {
		t.Errorf("UDP checksum does not verify: residue %#04x", got)
	}
}

func TestLabPacketParseErrors(t *testing.T) {
	good := testPacket(t, []byte("payload"))
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, errNotIPv4},
		{"ipv6 version", mutate(func(b []byte) []byte { b[0] = 6<<4 | 5; return b }), errNotIPv4},
		{"tcp", mutate(func(b []byte) []byte { b[9] = 6; return b }), errNotUDP},
		{"fragment", mutate(func(b []byte) []byte { b[6] |= 0x20; return b }), errFragment},
		{"total length past the end", mutate(func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], uint16(len(b)+1)); return b }), errShortPacket},
		{"header length too small", mutate(func(b []byte) []byte { b[0] = 4<<4 | 4; return b }), errShortPacket},
		{"udp length too large", mutate(func(b []byte) []byte { binary.BigEndian.PutUint16(b[24:], 200); return b }), errShortPacket},
		{"udp length below its header", mutate(func(b []byte) []byte { binary.BigEndian.PutUint16(b[24:], 4); return b }), errShortPacket},
		{"truncated udp header", good[:ipv4MinHeader+4], errShortPacket},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseUDP4(tt.b)
			if !errors.Is(err, tt.want) {
				t.Errorf("parseUDP4 error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestLabPacketForge(t *testing.T) {
	inj := &Injector{cfg: InjectorConfig{Suffix: "push.apple.com"}, forged: netip.MustParseAddr(InjectedAddr)}
	tests := []struct {
		name  string
		query []byte
		want  bool
	}{
		{"A under the suffix", testQuery(t, "1-courier.push.apple.com", dns.TypeA), true},
		{"A of the suffix itself", testQuery(t, "push.apple.com", dns.TypeA), true},
		{"upper case", testQuery(t, "API.PUSH.Apple.com", dns.TypeA), true},
		{"AAAA is left alone", testQuery(t, "1-courier.push.apple.com", dns.TypeAAAA), false},
		{"another name", testQuery(t, "init.ess.apple.com", dns.TypeA), false},
		{"a name merely ending alike", testQuery(t, "xpush.apple.com", dns.TypeA), false},
		{"not DNS", []byte("hello"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forged, original, ok := inj.forge(testPacket(t, tt.query))
			if ok != tt.want {
				t.Fatalf("forge ok = %v, want %v", ok, tt.want)
			}
			if !ok {
				return
			}
			p, err := parseUDP4(forged)
			if err != nil {
				t.Fatal(err)
			}
			if p.Src.String() != ResolverAddr || p.Dst.String() != clientAddr || p.SrcPort != 53 || p.DstPort != 40000 {
				t.Errorf("forged answer %s:%d -> %s:%d, want %s:53 -> %s:40000", p.Src, p.SrcPort, p.Dst, p.DstPort, ResolverAddr, clientAddr)
			}
			resp := new(dns.Msg)
			if err := resp.Unpack(p.Payload); err != nil {
				t.Fatal(err)
			}
			q := new(dns.Msg)
			if err := q.Unpack(tt.query); err != nil {
				t.Fatal(err)
			}
			if !resp.Response || resp.Id != q.Id || len(resp.Answer) != 1 {
				t.Fatalf("forged answer: response %v, id %d (query %d), %d records; want a response with the query's id and one record", resp.Response, resp.Id, q.Id, len(resp.Answer))
			}
			a, isA := resp.Answer[0].(*dns.A)
			if !isA || a.A.String() != InjectedAddr {
				t.Errorf("forged record %v, want A %s", resp.Answer[0], InjectedAddr)
			}
			o, err := parseUDP4(original)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(o.Payload, tt.query) || o.Dst.String() != ResolverAddr {
				t.Errorf("released query differs from the one captured")
			}
		})
	}
}

func TestLabDNSWireName(t *testing.T) {
	tests := []struct{ name, want string }{
		{"push.apple.com", "|04|push|05|apple|03|com|00|"},
		{"init.ess.apple.com.", "|04|init|03|ess|05|apple|03|com|00|"},
	}
	for _, tt := range tests {
		if got := dnsWireName(tt.name); got != tt.want {
			t.Errorf("dnsWireName(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// FuzzParseUDP4 checks that parsing never panics and that what parses
// survives a rebuild: go test -tags lab -run '^$' -fuzz FuzzParseUDP4.
func FuzzParseUDP4(f *testing.F) {
	f.Add(testPacket(f, testQuery(f, "1-courier.push.apple.com", dns.TypeA)))
	f.Add(testPacket(f, nil))
	f.Add([]byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{0x4f})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseUDP4(b)
		if err != nil {
			return
		}
		again, err := p.marshal()
		if err != nil {
			t.Fatalf("a parsed packet does not marshal: %v", err)
		}
		q, err := parseUDP4(again)
		if err != nil {
			t.Fatalf("a rebuilt packet does not parse: %v", err)
		}
		if q.Src != p.Src || q.Dst != p.Dst || q.SrcPort != p.SrcPort || q.DstPort != p.DstPort || !bytes.Equal(q.Payload, p.Payload) {
			t.Fatalf("rebuild changed the packet: %+v -> %+v", p, q)
		}
	})
}
