package probetest

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// DNSBehavior is how a DNS server treats the queries for one name.
type DNSBehavior int

// Behaviours of a zone entry. Over TCP and DoH, where an on-path injector
// cannot race the server and a TC bit has no meaning, DNSTruncate,
// DNSForgeFirst, DNSWrongID and DNSSecondLate give the genuine answer.
const (
	// DNSAnswer answers with the entry's records, or an empty NOERROR
	// (NODATA) when it has none of the type asked.
	DNSAnswer DNSBehavior = iota
	// DNSNXDomain, DNSRefused and DNSServFail answer with that rcode
	// and no records, as a censoring resolver does.
	DNSNXDomain
	DNSRefused
	DNSServFail
	// DNSTruncate answers over UDP with an empty response carrying the TC
	// bit, which sends a client to TCP.
	DNSTruncate
	// DNSSilent never answers (over DoH: holds the request until the
	// client gives up or the server closes).
	DNSSilent
	// DNSForgeFirst, over UDP, sends a response with the Forged addresses
	// first and the genuine one ForgeDelay later: the signature of an
	// on-path injector racing the real resolver.
	DNSForgeFirst
	// DNSWrongID, over UDP, sends a response whose ID is not the query's
	// before and after the genuine one (with the Forged addresses when
	// there are some); a client must ignore both.
	DNSWrongID
	// DNSSecondLate, over UDP, sends the genuine response first and a
	// second one with the Forged addresses ForgeDelay later, as a router
	// forwarding each query to two resolvers and relaying both answers
	// does (or an injector that lost the race).
	DNSSecondLate
	dnsBehaviorEnd // keep last: Validate rejects values from here on
)

// DefaultTTL is the TTL of a zone entry that does not set one: five
// minutes, a typical value for a CDN name.
const DefaultTTL = 300

// DefaultForgeDelay is how long after a forged response DNSForgeFirst
// sends the genuine one: long enough that the forged response always
// arrives first on loopback, short enough to keep tests fast and well
// inside a prober's listening window.
const DefaultForgeDelay = 50 * time.Millisecond

// maxCNAMEDepth bounds the CNAME chain a zone follows, so a loop in a
// test zone ends.
const maxCNAMEDepth = 8

// dohMediaType is the media type of RFC 8484 messages.
const dohMediaType = "application/dns-message"

// ZoneEntry is what a DNS server knows about one name.
type ZoneEntry struct {
	// Addrs answer A queries (IPv4 ones) and AAAA queries (IPv6 ones).
	Addrs []netip.Addr
	// CNAME, when set, makes the name an alias: the answer is a CNAME
	// record followed by the target's records when the zone holds the
	// target. Addrs is then not used.
	CNAME string
	// TTL of the entry's records; 0 means DefaultTTL.
	TTL uint32
	// Behavior is how queries for the name are treated; the zero value
	// answers normally.
	Behavior DNSBehavior
	// Forged are the addresses of the forged response of DNSForgeFirst
	// and DNSWrongID, and of DNSSecondLate's second response; the forged
	// response answers the query name directly with those of the family
	// asked (none: an empty NOERROR).
	Forged []netip.Addr
	// ForgeDelay separates the forged and genuine responses of
	// DNSForgeFirst; 0 means DefaultForgeDelay.
	ForgeDelay time.Duration
}

// Zone maps names to entries. Names are case-insensitive and the trailing
// dot is optional. A name "*.example" answers for every name below
// example that has no entry of its own. A name without an entry gets
// NXDOMAIN.
type Zone map[string]ZoneEntry

// Validate reports the first problem with z: a name or CNAME target that
// is not a domain name, two spellings of one name, an invalid address, an
// unknown behaviour or a negative delay.
func (z Zone) Validate() error {
	seen := map[string]string{}
	for name, e := range z {
		if _, ok := dns.IsDomainName(name); !ok || name == "" {
			return fmt.Errorf("zone: %q is not a domain name", name)
		}
		key := zoneKey(name)
		if prev, dup := seen[key]; dup {
			return fmt.Errorf("zone: %q and %q are the same name", prev, name)
		}
		seen[key] = name
		if e.CNAME != "" {
			if _, ok := dns.IsDomainName(e.CNAME); !ok {
				return fmt.Errorf("zone: %s: CNAME %q is not a domain name", name, e.CNAME)
			}
		}
		for _, a := range slices.Concat(e.Addrs, e.Forged) {
			if !a.IsValid() {
				return fmt.Errorf("zone: %s: invalid address", name)
			}
		}
		if e.Behavior < 0 || e.Behavior >= dnsBehaviorEnd {
			return fmt.Errorf("zone: %s: unknown behaviour %d", name, e.Behavior)
		}
		if e.ForgeDelay < 0 {
			return fmt.Errorf("zone: %s: negative forge delay", name)
		}
	}
	return nil
}

// zoneKey is the canonical spelling of a name: lower case, fully qualified.
func zoneKey(name string) string { return strings.ToLower(dns.Fqdn(name)) }

// DNSQuery is one query a server received.
type DNSQuery struct {
	Name      string // as asked, fully qualified
	Type      string // "A", "AAAA", ...
	Transport string // "udp", "tcp" or "doh"
}

// zoneResponder answers queries from a zone over UDP, TCP and DoH.
type zoneResponder struct {
	done chan struct{} // closed when the server closes; nil for a bare DoH handler

	mu      sync.Mutex
	zone    Zone // canonical keys, slices owned
	queries []DNSQuery
}

func newZoneResponder(z Zone, done chan struct{}) *zoneResponder {
	r := &zoneResponder{done: done}
	r.setZone(z)
	return r
}

func (r *zoneResponder) setZone(z Zone) {
	own := make(Zone, len(z))
	for name, e := range z {
		e.Addrs = slices.Clone(e.Addrs)
		e.Forged = slices.Clone(e.Forged)
		own[zoneKey(name)] = e
	}
	r.mu.Lock()
	r.zone = own
	r.mu.Unlock()
}

// lookup finds the entry of name: its own, else the closest wildcard.
func (r *zoneResponder) lookup(name string) (ZoneEntry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := zoneKey(name)
	if e, ok := r.zone[key]; ok {
		return e, true
	}
	for {
		_, parent, ok := strings.Cut(key, ".")
		if !ok {
			return ZoneEntry{}, false
		}
		if e, ok := r.zone["*."+parent]; ok {
			return e, true
		}
		key = parent
	}
}

func (r *zoneResponder) record(req *dns.Msg, transport string) {
	q := DNSQuery{Transport: transport}
	if len(req.Question) > 0 {
		q.Name = req.Question[0].Name
		q.Type = dns.Type(req.Question[0].Qtype).String()
	}
	r.mu.Lock()
	r.queries = append(r.queries, q)
	r.mu.Unlock()
}

// genuine builds the true response to req and returns the entry of the
// query name (the zero entry when there is none).
func (r *zoneResponder) genuine(req *dns.Msg) (*dns.Msg, ZoneEntry) {
	resp := newResponse(req)
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		return resp, ZoneEntry{}
	}
	q := req.Question[0]
	entry, ok := r.lookup(q.Name)
	switch {
	case !ok, entry.Behavior == DNSNXDomain:
		resp.Rcode = dns.RcodeNameError
		return resp, entry
	case entry.Behavior == DNSRefused:
		resp.Rcode = dns.RcodeRefused
		return resp, entry
	case entry.Behavior == DNSServFail:
		resp.Rcode = dns.RcodeServerFailure
		return resp, entry
	}
	name, e := q.Name, entry
	for range maxCNAMEDepth {
		ttl := cmp.Or(e.TTL, DefaultTTL)
		if e.CNAME == "" {
			resp.Answer = append(resp.Answer, addressRecords(name, q.Qtype, ttl, e.Addrs)...)
			break
		}
		target := dns.Fqdn(e.CNAME)
		resp.Answer = append(resp.Answer, &dns.CNAME{Hdr: header(name, dns.TypeCNAME, ttl), Target: target})
		if q.Qtype == dns.TypeCNAME {
			break
		}
		if e, ok = r.lookup(target); !ok {
			break
		}
		name = target
	}
	return resp, entry
}

// forged builds the injector's response to req: the Forged addresses of
// the family asked, owned by the query name.
func forged(req *dns.Msg, entry ZoneEntry) *dns.Msg {
	resp := newResponse(req)
	q := req.Question[0]
	resp.Answer = addressRecords(q.Name, q.Qtype, cmp.Or(entry.TTL, DefaultTTL), entry.Forged)
	return resp
}

func newResponse(req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg).SetReply(req)
	// Authoritative and RecursionAvailable keep Go's resolver from taking
	// an empty answer for a lame referral.
	resp.Authoritative = true
	resp.RecursionAvailable = true
	if req.IsEdns0() != nil {
		resp.SetEdns0(dns.DefaultMsgSize, false)
	}
	return resp
}

func header(name string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

func addressRecords(name string, qtype uint16, ttl uint32, addrs []netip.Addr) []dns.RR {
	var rrs []dns.RR
	for _, a := range addrs {
		switch {
		case qtype == dns.TypeA && a.Is4():
			rrs = append(rrs, &dns.A{Hdr: header(name, dns.TypeA, ttl), A: a.AsSlice()})
		case qtype == dns.TypeAAAA && a.Is6() && !a.Is4In6():
			rrs = append(rrs, &dns.AAAA{Hdr: header(name, dns.TypeAAAA, ttl), AAAA: a.AsSlice()})
		}
	}
	return rrs
}

// ServeDNS answers one UDP or TCP query.
func (r *zoneResponder) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	transport := w.LocalAddr().Network()
	r.record(req, transport)
	resp, entry := r.genuine(req)
	if entry.Behavior == DNSSilent {
		return
	}
	if transport != "udp" {
		_ = w.WriteMsg(resp)
		return
	}
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > size {
		size = int(opt.UDPSize())
	}
	resp.Truncate(size)
	switch entry.Behavior {
	case DNSTruncate:
		resp.Answer, resp.Ns = nil, nil
		resp.Truncated = true
		_ = w.WriteMsg(resp)
	case DNSForgeFirst:
		_ = w.WriteMsg(forged(req, entry))
		t := time.NewTimer(cmp.Or(entry.ForgeDelay, DefaultForgeDelay))
		defer t.Stop()
		select {
		case <-t.C:
			_ = w.WriteMsg(resp)
		case <-r.done:
		}
	case DNSSecondLate:
		_ = w.WriteMsg(resp)
		t := time.NewTimer(cmp.Or(entry.ForgeDelay, DefaultForgeDelay))
		defer t.Stop()
		select {
		case <-t.C:
			_ = w.WriteMsg(forged(req, entry))
		case <-r.done:
		}
	case DNSWrongID:
		wrong := resp.Copy()
		if len(entry.Forged) > 0 {
			wrong = forged(req, entry)
		}
		wrong.Id = req.Id + 1
		_ = w.WriteMsg(wrong)
		_ = w.WriteMsg(resp)
		_ = w.WriteMsg(wrong)
	default:
		_ = w.WriteMsg(resp)
	}
}

// ServeHTTP answers one RFC 8484 query, POST or GET ?dns=.
func (r *zoneResponder) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	var wire []byte
	switch hr.Method {
	case http.MethodPost:
		if ct := hr.Header.Get("Content-Type"); ct != dohMediaType {
			http.Error(w, "content type must be "+dohMediaType, http.StatusUnsupportedMediaType)
			return
		}
		b, err := io.ReadAll(io.LimitReader(hr.Body, dns.MaxMsgSize+1))
		if err != nil || len(b) > dns.MaxMsgSize {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		wire = b
	case http.MethodGet:
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(hr.URL.Query().Get("dns"), "="))
		if err != nil {
			http.Error(w, "bad dns parameter", http.StatusBadRequest)
			return
		}
		wire = b
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	req := new(dns.Msg)
	if err := req.Unpack(wire); err != nil || req.Response {
		http.Error(w, "not a DNS query", http.StatusBadRequest)
		return
	}
	r.record(req, "doh")
	resp, entry := r.genuine(req)
	if entry.Behavior == DNSSilent {
		select {
		case <-hr.Context().Done():
		case <-r.done:
		}
		// Returning would send an empty 200; aborting closes the
		// connection (HTTP/1) or resets the stream (HTTP/2) unanswered.
		panic(http.ErrAbortHandler)
	}
	out, err := resp.Pack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", dohMediaType)
	_, _ = w.Write(out)
}

// NewDoHHandler returns an RFC 8484 handler (POST application/dns-message
// and GET ?dns=) answering from zone with the same logic as StartDNS's
// server, for httptest.NewTLSServer or a lab's TLS listener. It serves the
// zone as given; call zone.Validate first to catch mistakes.
func NewDoHHandler(zone Zone) http.Handler {
	return newZoneResponder(zone, nil)
}

// DNSServer is a DNS server on loopback (or a lab address) answering from
// a Zone over UDP and TCP on one port.
type DNSServer struct {
	responder *zoneResponder
	udp, tcp  *dns.Server
	addr      string
	closeOnce sync.Once
	closeErr  error
}

// dnsListenAttempts bounds the search for a port free for both UDP and
// TCP when the caller lets the system pick it.
const dnsListenAttempts = 20

// StartDNS starts a server answering from zone at addr, on UDP and TCP on
// the same port; port 0 picks a free one. Bound to a wildcard address, the
// server answers each UDP query from the address it was sent to (miekg/dns
// does this with IP_PKTINFO), so one server can stand for many addresses.
// Close stops it.
func StartDNS(addr string, zone Zone) (*DNSServer, error) {
	if err := zone.Validate(); err != nil {
		return nil, err
	}
	pc, ln, err := listenDNS(addr)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	s := &DNSServer{responder: newZoneResponder(zone, done), addr: pc.LocalAddr().String()}
	s.udp = &dns.Server{PacketConn: pc, Handler: s.responder}
	s.tcp = &dns.Server{Listener: ln, Handler: s.responder}
	if err := serveDNSPair(s.udp, s.tcp); err != nil {
		close(done)
		return nil, fmt.Errorf("starting DNS server: %w", err)
	}
	return s, nil
}

// serveDNSPair starts udp, then tcp, each on its own goroutine, and waits
// until both serve. When either fails to start, both sockets are closed
// and a UDP server that started is shut down.
func serveDNSPair(udp, tcp *dns.Server) error {
	for _, srv := range []*dns.Server{udp, tcp} {
		started := make(chan struct{})
		failed := make(chan error, 1)
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { failed <- srv.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-failed:
			udp.PacketConn.Close()
			tcp.Listener.Close()
			if srv == tcp {
				_ = udp.Shutdown()
			}
			return err
		}
	}
	return nil
}

// listenDNS opens UDP and TCP sockets on the same address and port.
func listenDNS(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	attempts := 1
	if port == "0" {
		attempts = dnsListenAttempts
	}
	var lastErr error
	for range attempts {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		p := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
	}
	return nil, nil, lastErr
}

// Addr is the server's "host:port", the same for UDP and TCP.
func (s *DNSServer) Addr() string { return s.addr }

// SetZone replaces the zone the server (and its DoHHandler) answers from.
func (s *DNSServer) SetZone(zone Zone) error {
	if err := zone.Validate(); err != nil {
		return err
	}
	s.responder.setZone(zone)
	return nil
}

// DoHHandler returns an RFC 8484 handler answering from this server's
// zone and recording into its query log.
func (s *DNSServer) DoHHandler() http.Handler { return s.responder }

// Queries returns the queries received so far, in arrival order.
func (s *DNSServer) Queries() []DNSQuery {
	s.responder.mu.Lock()
	defer s.responder.mu.Unlock()
	return slices.Clone(s.responder.queries)
}

// Close stops the server and waits for its handlers; responses still
// pending (a DNSForgeFirst's genuine one) are dropped.
func (s *DNSServer) Close() error {
	s.closeOnce.Do(func() {
		close(s.responder.done)
		s.closeErr = errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
	})
	return s.closeErr
}
