package dnsprobe

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
)

// newObservation starts the observation of one lookup.
func newObservation(host, engine, resolver, transport string, qtype uint16) *measurements.Observation {
	return &measurements.Observation{
		Step:      measurements.StepDNS,
		Host:      host,
		Transport: transport,
		Started:   time.Now().UTC(),
		DNS: &measurements.DNSDetails{
			Engine:    engine,
			Resolver:  resolver,
			QueryType: dns.Type(qtype).String(),
		},
	}
}

// fail records err as the lookup's failure.
func fail(obs *measurements.Observation, err error) {
	obs.Failure = failure.Classify(err)
	obs.Operation = failure.OpResolve
}

// newQuery builds a recursive query for host with EDNS0. Its ID is random
// (SetQuestion draws it with dns.Id).
func newQuery(host string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(host), qtype)
	m.SetEdns0(ednsBufferSize, false)
	return m
}

// errMismatch is the error of a response over a stream (TCP, DoH) that
// does not answer the query sent.
var errMismatch = errors.New("response does not match the query")

// matches reports whether resp answers query: a response with the query's
// ID whose question, when it has one, is the query's. Some servers send a
// bare header with REFUSED, so an empty question section is accepted.
func matches(query, resp *dns.Msg) bool {
	if !resp.Response || resp.Id != query.Id {
		return false
	}
	if len(resp.Question) == 0 {
		return true
	}
	q, r := query.Question[0], resp.Question[0]
	return len(resp.Question) == 1 && r.Qtype == q.Qtype && r.Qclass == q.Qclass && strings.EqualFold(r.Name, q.Name)
}

// streamResponse unpacks raw, the one response to query read from a stream
// (TCP, DoH): garbage, or an answer to another query, means the server
// misbehaves.
func streamResponse(query *dns.Msg, raw []byte) (*dns.Msg, error) {
	resp := new(dns.Msg)
	if err := resp.Unpack(raw); err != nil {
		return nil, &failure.Error{Failure: failure.DNSServerMisbehaving, Err: err}
	}
	if !matches(query, resp) {
		return nil, &failure.Error{Failure: failure.DNSServerMisbehaving, Err: errMismatch}
	}
	return resp, nil
}

// recordFirst fills obs from the response the lookup uses (raw is its
// wire form) and records the failure it means, if any.
func recordFirst(obs *measurements.Observation, query, resp *dns.Msg, raw []byte) {
	d := obs.DNS
	d.Rcode = rcodeName(resp.Rcode)
	d.Truncated = resp.Truncated
	d.Answers = answers(resp)
	d.CNAMEs = cnameChain(query.Question[0].Name, resp)
	d.RawResponse = slices.Clone(raw)
	if err := responseError(resp, query.Question[0].Qtype); err != nil {
		fail(obs, err)
	}
}

// lateResponse records a further response to the same query.
func lateResponse(resp *dns.Msg, raw []byte, delay time.Duration) measurements.DNSResponse {
	return measurements.DNSResponse{
		Rcode:   rcodeName(resp.Rcode),
		Answers: answers(resp),
		Delay:   delay,
		Raw:     slices.Clone(raw),
	}
}

// responseError is the failure a response means for a query of qtype: its
// rcode, or dns_no_answer for a NOERROR without a record of that type. A
// truncated NOERROR is not a failure: it sends the client to TCP, whose
// observation carries the outcome.
func responseError(resp *dns.Msg, qtype uint16) error {
	switch resp.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return &failure.Error{Failure: failure.DNSNXDomain}
	case dns.RcodeRefused:
		return &failure.Error{Failure: failure.DNSRefused}
	case dns.RcodeServerFailure:
		return &failure.Error{Failure: failure.DNSServfail}
	default:
		return &failure.Error{Failure: failure.DNSServerMisbehaving, Err: fmt.Errorf("rcode %s", rcodeName(resp.Rcode))}
	}
	if resp.Truncated {
		return nil
	}
	for _, rr := range resp.Answer {
		if h := rr.Header(); h.Rrtype == qtype && h.Class == dns.ClassINET {
			return nil
		}
	}
	return &failure.Error{Failure: failure.DNSNoAnswer}
}

// rcodeName is the name of an rcode, "RCODE" and its number when it has
// none.
func rcodeName(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return "RCODE" + strconv.Itoa(rcode)
}

// answers lists the A, AAAA and CNAME records of a response's answer
// section; other types are left out.
func answers(resp *dns.Msg) []measurements.DNSAnswer {
	var out []measurements.DNSAnswer
	for _, rr := range resp.Answer {
		h := rr.Header()
		a := measurements.DNSAnswer{Name: h.Name, TTL: h.Ttl}
		switch v := rr.(type) {
		case *dns.A:
			ip, ok := netip.AddrFromSlice(v.A)
			if !ok {
				continue
			}
			a.Type, a.Data = "A", ip.Unmap().String()
		case *dns.AAAA:
			ip, ok := netip.AddrFromSlice(v.AAAA)
			if !ok {
				continue
			}
			a.Type, a.Data = "AAAA", ip.String()
		case *dns.CNAME:
			a.Type, a.Data = "CNAME", v.Target
		default:
			continue
		}
		out = append(out, a)
	}
	return out
}

// cnameChain follows the CNAME records of a response from qname and
// returns the names it leads to, in order.
func cnameChain(qname string, resp *dns.Msg) []string {
	var chain []string
	name := qname
	// Each CNAME record can be followed at most once, which ends loops.
	for range resp.Answer {
		next := ""
		for _, rr := range resp.Answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, name) {
				next = c.Target
				break
			}
		}
		if next == "" {
			break
		}
		chain = append(chain, next)
		name = next
	}
	return chain
}

// Addresses returns the distinct A and AAAA addresses of the successful
// lookups among obs, sorted (IPv4 first). Only first responses count: a
// late response to a plain query is evidence of injection, kept in
// DNSDetails.Late for analysis; LateAddresses returns its addresses. Pass the
// observations whose addresses should be measured (for example, leave the
// DoH control out to measure what the local resolvers return).
func Addresses(obs []*measurements.Observation) []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for _, o := range obs {
		if o.Step != measurements.StepDNS || o.DNS == nil || !o.Succeeded() {
			continue
		}
		for _, a := range o.DNS.Answers {
			if a.Type != "A" && a.Type != "AAAA" {
				continue
			}
			ip, err := netip.ParseAddr(a.Data)
			if err != nil || seen[ip] {
				continue
			}
			seen[ip] = true
			out = append(out, ip)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
