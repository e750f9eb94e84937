package netid

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		addr     string
		wantASN  uint
		wantName string
		wantCC   string
	}{
		{"8.8.8.8", 15169, "Google LLC", "US"},
		{"::ffff:8.8.8.8", 15169, "Google LLC", "US"},
		{"2001:4860:4860::8888", 15169, "Google LLC", ""}, // countries of anycast addresses vary by release
		{"1.1.1.1", 13335, "Cloudflare Inc", ""},
		{"127.0.0.1", 0, "", "ZZ"},
		{"192.168.1.10", 0, "", "ZZ"},
		{"100.64.0.1", 0, "", "ZZ"},
		{"fe80::1", 0, "", "ZZ"},
		{"203.0.113.77", 0, "", "ZZ"},
		// NAT64 (64:ff9b::/96): the IPv4 address carried.
		{"64:ff9b::808:808", 15169, "Google LLC", "US"},
		{"64:ff9b::c0a8:10a", 0, "", "ZZ"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			asn, name, cc := Lookup(netip.MustParseAddr(tt.addr))
			if asn != tt.wantASN || name != tt.wantName || (tt.wantCC != "" && cc != tt.wantCC) || len(cc) != 2 {
				t.Errorf("Lookup(%s) = %d, %q, %q; want %d, %q, %q", tt.addr, asn, name, cc, tt.wantASN, tt.wantName, tt.wantCC)
			}
		})
	}
	if asn, name, cc := Lookup(netip.Addr{}); asn != 0 || name != "" || cc != "ZZ" {
		t.Errorf("Lookup(invalid) = %d, %q, %q; want 0, \"\", ZZ", asn, name, cc)
	}
}

// startMappingSTUN serves STUN on a loopback port, answering every
// request with mapped as the requester's address.
func startMappingSTUN(t *testing.T, mapped netip.AddrPort) netip.AddrPort {
	t.Helper()
	s, err := probetest.StartMappingSTUN("127.0.0.1:0", mapped)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr()
}

func TestDiscover(t *testing.T) {
	mapping := startMappingSTUN(t, netip.MustParseAddrPort("8.8.4.4:40000"))
	loopback, err := probetest.StartSTUN("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { loopback.Close() })
	silent, err := probetest.StartSilentSTUN("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })

	google := measurements.Identity{ProbeASN: 15169, ProbeNetworkName: "Google LLC", ProbeCC: "US",
		ResolverASN: 15169, ResolverNetworkName: "Google LLC", ResolverCC: "US"}
	unknownProbe := google
	unknownProbe.ProbeASN, unknownProbe.ProbeNetworkName, unknownProbe.ProbeCC = 0, "", "ZZ"
	tests := []struct {
		name     string
		server   string
		resolver netip.Addr
		want     measurements.Identity
	}{
		{"public address", mapping.String(), netip.MustParseAddr("8.8.8.8"), google},
		{"server by name", "localhost:" + portOf(mapping), netip.MustParseAddr("8.8.8.8"), google},
		{"private resolver", mapping.String(), netip.MustParseAddr("192.168.1.1"),
			measurements.Identity{ProbeASN: 15169, ProbeNetworkName: "Google LLC", ProbeCC: "US", ResolverCC: "ZZ"}},
		{"no resolver", mapping.String(), netip.Addr{},
			measurements.Identity{ProbeASN: 15169, ProbeNetworkName: "Google LLC", ProbeCC: "US", ResolverCC: "ZZ"}},
		{"loopback address seen", loopback.Addr().String(), netip.MustParseAddr("8.8.8.8"), unknownProbe},
		{"silent server", silent.Addr().String(), netip.MustParseAddr("8.8.8.8"), unknownProbe},
		{"no port", "127.0.0.1", netip.MustParseAddr("8.8.8.8"), unknownProbe},
		{"empty server", "", netip.MustParseAddr("8.8.8.8"), unknownProbe},
		{"bad port", "localhost:nope", netip.MustParseAddr("8.8.8.8"), unknownProbe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The silent server would cost stunprobe's 3.5 s of
			// retransmissions; a short deadline checks that Discover
			// gives up with it.
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			start := time.Now()
			got := Discover(ctx, tt.server, tt.resolver)
			if got != tt.want {
				t.Errorf("Discover(%q, %v) = %+v, want %+v", tt.server, tt.resolver, got, tt.want)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("Discover took %s, past its context's deadline", took)
			}
		})
	}
}

func portOf(ap netip.AddrPort) string {
	_, port, _ := net.SplitHostPort(ap.String())
	return port
}

func TestAnnotateAnswers(t *testing.T) {
	answers := func(data ...string) []measurements.DNSAnswer {
		var out []measurements.DNSAnswer
		for _, d := range data {
			typ := "A"
			if a, err := netip.ParseAddr(d); err != nil {
				typ = "CNAME"
			} else if a.Is6() {
				typ = "AAAA"
			}
			out = append(out, measurements.DNSAnswer{Name: "example.", Type: typ, Data: d})
		}
		return out
	}
	o := &measurements.Observation{Step: measurements.StepDNS, DNS: &measurements.DNSDetails{
		Answers: answers("dns.google.", "8.8.8.8", "192.168.1.10"),
		Late:    []measurements.DNSResponse{{Rcode: "NOERROR", Answers: answers("2001:4860:4860::8888")}},
	}}
	AnnotateAnswers([]*measurements.Observation{o, {Step: measurements.StepTCP}, nil})
	got := []uint{o.DNS.Answers[0].ASN, o.DNS.Answers[1].ASN, o.DNS.Answers[2].ASN, o.DNS.Late[0].Answers[0].ASN}
	if want := []uint{0, 15169, 0, 15169}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ASNs = %v, want %v (CNAME, public, private, late)", got, want)
	}
	if o.DNS.Answers[1].ASOrgName != "Google LLC" || o.DNS.Answers[2].ASOrgName != "" {
		t.Errorf("AS names = %q, %q; want Google LLC and nothing for a private address", o.DNS.Answers[1].ASOrgName, o.DNS.Answers[2].ASOrgName)
	}

	first := &measurements.Observation{Step: measurements.StepDNS, DNS: &measurements.DNSDetails{
		Answers: answers("8.8.8.8"),
		Late:    []measurements.DNSResponse{{Rcode: "NOERROR", Answers: answers("2001:4860:4860::8888")}},
	}}
	AnnotateFirstAnswers([]*measurements.Observation{first, nil})
	if first.DNS.Answers[0].ASN != 15169 || first.DNS.Late[0].Answers[0].ASN != 0 {
		t.Errorf("AnnotateFirstAnswers: ASNs %d (first) and %d (late), want 15169 and the late one left alone",
			first.DNS.Answers[0].ASN, first.DNS.Late[0].Answers[0].ASN)
	}
}
