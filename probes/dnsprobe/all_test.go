package dnsprobe

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

func TestLookupAll(t *testing.T) {
	s1, s2 := startServer(t), startServer(t)
	url, pool := startDoH(t, probetest.NewDoHHandler(testZone()))
	r := &Resolver{
		Nameservers:  []string{s1.Addr(), s2.Addr()},
		System:       goResolverFor(s1),
		RootCAs:      pool,
		ListenWindow: -1,
	}
	obs := r.LookupAll(context.Background(), "courier.push.test", []string{url})
	var got []string
	for _, o := range obs {
		if !o.Succeeded() {
			t.Errorf("%s %s %s failed: %s", o.DNS.Engine, o.DNS.Resolver, o.DNS.QueryType, o.Failure)
		}
		got = append(got, o.DNS.Engine+" "+o.DNS.Resolver+" "+o.DNS.QueryType)
	}
	want := []string{
		"system  A", "system  AAAA",
		"udp " + s1.Addr() + " A", "udp " + s1.Addr() + " AAAA",
		"udp " + s2.Addr() + " A", "udp " + s2.Addr() + " AAAA",
		"doh " + url + " A", "doh " + url + " AAAA",
	}
	if !slices.Equal(got, want) {
		t.Errorf("observations:\n got  %q\n want %q", got, want)
	}
	wantAddrs := []netip.Addr{
		netip.MustParseAddr("17.57.146.20"), netip.MustParseAddr("17.57.146.21"), netip.MustParseAddr("2620:149:a44::1"),
	}
	if got := Addresses(obs); !slices.Equal(got, wantAddrs) {
		t.Errorf("Addresses = %v, want %v", got, wantAddrs)
	}
}

func TestAddresses(t *testing.T) {
	ok := func(answers ...measurements.DNSAnswer) *measurements.Observation {
		return &measurements.Observation{Step: measurements.StepDNS, DNS: &measurements.DNSDetails{Answers: answers}}
	}
	a := func(typ, data string) measurements.DNSAnswer {
		return measurements.DNSAnswer{Name: "x.test.", Type: typ, Data: data}
	}
	failed := ok(a("A", "10.0.0.1"))
	failed.Failure, failed.Operation = failure.DNSNoAnswer, failure.OpResolve
	late := ok(a("A", "17.0.0.1"))
	late.DNS.Late = []measurements.DNSResponse{{Rcode: "NOERROR", Answers: []measurements.DNSAnswer{a("A", "203.0.113.1")}}}
	tests := []struct {
		name string
		obs  []*measurements.Observation
		want []string
	}{
		{"none", nil, nil},
		{"sorted and distinct, ipv4 first", []*measurements.Observation{
			ok(a("AAAA", "2620:149:a44::1"), a("A", "17.0.0.2")),
			ok(a("A", "17.0.0.2"), a("A", "17.0.0.1")),
		}, []string{"17.0.0.1", "17.0.0.2", "2620:149:a44::1"}},
		{"cnames and junk skipped", []*measurements.Observation{
			ok(a("CNAME", "y.test."), a("A", "not-an-ip"), a("A", "17.0.0.3")),
		}, []string{"17.0.0.3"}},
		{"failed lookups skipped", []*measurements.Observation{failed}, nil},
		{"late responses skipped", []*measurements.Observation{late}, []string{"17.0.0.1"}},
		{"other steps skipped", []*measurements.Observation{{Step: measurements.StepTCP}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, ip := range Addresses(tt.obs) {
				got = append(got, ip.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Addresses = %q, want %q", got, tt.want)
			}
		})
	}
}
