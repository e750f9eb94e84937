package dnsprobe

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
)

// fuzzQuery is the query the response fuzzer answers.
func fuzzQuery() *dns.Msg {
	q := newQuery("courier.push.test", dns.TypeA)
	q.Id = 0x1234
	return q
}

func TestCNAMEChainLoop(t *testing.T) {
	q := fuzzQuery()
	resp := new(dns.Msg).SetReply(q)
	resp.Answer = []dns.RR{
		&dns.CNAME{Hdr: dns.RR_Header{Name: "courier.push.test.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET}, Target: "b.test."},
		&dns.CNAME{Hdr: dns.RR_Header{Name: "B.test.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET}, Target: "courier.push.test."},
	}
	want := []string{"b.test.", "courier.push.test."}
	if got := cnameChain(q.Question[0].Name, resp); !slices.Equal(got, want) {
		t.Errorf("cnameChain = %q, want %q", got, want)
	}
}

func TestResponseError(t *testing.T) {
	q := fuzzQuery()
	withA := new(dns.Msg).SetReply(q)
	withA.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "courier.push.test.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(17, 0, 0, 1)}}
	rcode := func(rc int, truncated bool) *dns.Msg {
		m := new(dns.Msg).SetRcode(q, rc)
		m.Truncated = truncated
		return m
	}
	tests := []struct {
		name string
		resp *dns.Msg
		want string
	}{
		{"answer", withA, ""},
		{"nodata", rcode(dns.RcodeSuccess, false), failure.DNSNoAnswer},
		{"truncated nodata is not a failure", rcode(dns.RcodeSuccess, true), ""},
		{"nxdomain", rcode(dns.RcodeNameError, false), failure.DNSNXDomain},
		{"truncated nxdomain", rcode(dns.RcodeNameError, true), failure.DNSNXDomain},
		{"refused", rcode(dns.RcodeRefused, false), failure.DNSRefused},
		{"servfail", rcode(dns.RcodeServerFailure, false), failure.DNSServfail},
		{"notimp", rcode(dns.RcodeNotImplemented, false), failure.DNSServerMisbehaving},
		{"formerr", rcode(dns.RcodeFormatError, false), failure.DNSServerMisbehaving},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := failure.Classify(responseError(tt.resp, dns.TypeA)); got != tt.want {
				t.Errorf("failure = %q, want %q", got, tt.want)
			}
		})
	}
	if got := rcodeName(3841); got != "RCODE3841" {
		t.Errorf("rcodeName(3841) = %q, want RCODE3841", got)
	}
}

func FuzzParseResponse(f *testing.F) {
	q := fuzzQuery()
	answer := new(dns.Msg).SetReply(q)
	answer.Answer = []dns.RR{
		&dns.CNAME{Hdr: dns.RR_Header{Name: "courier.push.test.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: "e1.test."},
		&dns.A{Hdr: dns.RR_Header{Name: "e1.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 20}, A: net.IPv4(17, 0, 0, 1)},
		&dns.AAAA{Hdr: dns.RR_Header{Name: "e1.test.", Rrtype: dns.TypeAAAA, Class: dns.ClassINET}, AAAA: net.ParseIP("2620:149:a44::1")},
		&dns.TXT{Hdr: dns.RR_Header{Name: "e1.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{"x"}},
	}
	truncated := new(dns.Msg).SetReply(q)
	truncated.Truncated = true
	for _, m := range []*dns.Msg{answer, truncated, new(dns.Msg).SetRcode(q, dns.RcodeRefused), q} {
		wire, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire)
		f.Add(wire[:len(wire)-3])
	}
	f.Add([]byte{0x12, 0x34, 0x82, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}) // bare header, TC set
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, ok := parseResponse(q, b)
		if !ok {
			return
		}
		if resp.Id != q.Id || !resp.Response {
			t.Fatalf("accepted id %d response %v", resp.Id, resp.Response)
		}
		obs := newObservation("courier.push.test", measurements.EngineUDP, "127.0.0.1:53", "udp", dns.TypeA)
		recordFirst(obs, q, resp, b)
		late := lateResponse(q.Question[0].Name, resp, b, 0)
		if len(obs.DNS.CNAMEs) > len(resp.Answer) || len(obs.DNS.Answers) > len(resp.Answer) {
			t.Fatalf("%d cnames and %d answers from %d records", len(obs.DNS.CNAMEs), len(obs.DNS.Answers), len(resp.Answer))
		}
		if !slices.Equal(late.Answers, obs.DNS.Answers) || late.Rcode != obs.DNS.Rcode {
			t.Fatal("late and first recordings of one response differ")
		}
		if (obs.Failure == "") != (obs.Operation == "") {
			t.Fatalf("failure %q operation %q", obs.Failure, obs.Operation)
		}
		if !slices.Equal(obs.DNS.RawResponse, b) {
			t.Fatal("RawResponse is not the bytes received")
		}
		addrs := Addresses([]*measurements.Observation{obs})
		checkSelection(t, obs, addrs)
	})
}

// checkSelection states what Addresses promises about the addresses it
// chose from obs: at most the cap per family, none off the CNAME chain,
// and every address of the answer either chosen or marked unused.
func checkSelection(t *testing.T, obs *measurements.Observation, addrs []netip.Addr) {
	t.Helper()
	perFamily := map[bool]int{}
	for _, a := range addrs {
		if perFamily[a.Is4()]++; perFamily[a.Is4()] > measurements.MaxAddressesPerFamily {
			t.Fatalf("Addresses chose more than %d addresses of a family: %v", measurements.MaxAddressesPerFamily, addrs)
		}
	}
	for _, a := range obs.DNS.Answers {
		if a.Type != "A" && a.Type != "AAAA" {
			continue
		}
		chosen := slices.ContainsFunc(addrs, func(ip netip.Addr) bool { return ip.String() == a.Data })
		switch {
		case a.Unused == measurements.UnusedOffChain && chosen:
			t.Fatalf("off-chain answer %+v was chosen", a)
		case a.Unused == "" && obs.Succeeded() && !chosen:
			t.Fatalf("answer %+v neither chosen nor marked unused", a)
		}
	}
}
