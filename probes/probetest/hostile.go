package probetest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// DNSScript answers one query the way a hostile network may: send writes
// one response (wire bytes) to the client and fails once the client is
// gone. Over TCP each send is one framed response. done closes when the
// server closes; a long script should stop then.
type DNSScript func(req *dns.Msg, transport string, send func([]byte) error, done <-chan struct{})

// HostileDNS is a DNS server on loopback, UDP and TCP on one port, that
// answers every query as its script says: floods, thousands of records,
// records for other names. It is what an on-path censor can send, for the
// tests that check the probe stays bounded whatever arrives.
type HostileDNS struct {
	udp, tcp  *dns.Server
	addr      string
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// StartHostileDNS starts a server at addr (port 0 picks one) answering
// with script. Close stops it.
func StartHostileDNS(addr string, script DNSScript) (*HostileDNS, error) {
	pc, ln, err := listenDNS(addr)
	if err != nil {
		return nil, err
	}
	s := &HostileDNS{addr: pc.LocalAddr().String(), done: make(chan struct{})}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		if len(req.Question) != 1 {
			return
		}
		send := func(b []byte) error { _, err := w.Write(b); return err }
		script(req, w.LocalAddr().Network(), send, s.done)
	})
	s.udp = &dns.Server{PacketConn: pc, Handler: handler, UDPSize: 65535}
	s.tcp = &dns.Server{Listener: ln, Handler: handler}
	if err := serveDNSPair(s.udp, s.tcp); err != nil {
		close(s.done)
		return nil, fmt.Errorf("starting hostile DNS server: %w", err)
	}
	return s, nil
}

// Addr is the server's "host:port", the same for UDP and TCP.
func (s *HostileDNS) Addr() string { return s.addr }

// Close stops the server and waits for its scripts.
func (s *HostileDNS) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.closeErr = errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
	})
	return s.closeErr
}

// FloodScript answers an A query over UDP with addrs (the genuine answer),
// then for d sends further responses with the query's ID as fast as it
// can, each padded to size bytes (at most 65,507, the largest UDP
// payload) with a TXT record in the additional section: an injector
// flooding the listening window. Over TCP, and to other queries, it
// answers once with addrs of the family. It returns how many it sent
// through sent, when not nil.
func FloodScript(addrs []netip.Addr, size int, d time.Duration, sent *atomic.Int64) DNSScript {
	return func(req *dns.Msg, transport string, send func([]byte) error, done <-chan struct{}) {
		q := req.Question[0]
		resp := newResponse(req)
		resp.Answer = addressRecords(q.Name, q.Qtype, DefaultTTL, addrs)
		first, err := resp.Pack()
		if err != nil || send(first) != nil || transport != "udp" || q.Qtype != dns.TypeA {
			return
		}
		flood, err := PaddedResponse(resp, size)
		if err != nil {
			return
		}
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			select {
			case <-done:
				return
			default:
			}
			if send(flood) != nil {
				return
			}
			if sent != nil {
				sent.Add(1)
			}
		}
	}
}

// PaddedResponse packs resp with a TXT record added to its additional
// section so that the message is size bytes long, or a little less.
func PaddedResponse(resp *dns.Msg, size int) ([]byte, error) {
	m := resp.Copy()
	m.Compress = true
	base, err := m.Pack()
	if err != nil {
		return nil, err
	}
	// A TXT record costs its owner (a pointer, 2 bytes) and header (10),
	// then a length byte and up to 255 bytes per string.
	room := size - len(base) - 12
	var strs []string
	for room > 1 {
		n := min(room-1, 255)
		strs = append(strs, strings.Repeat("f", n))
		room -= n + 1
	}
	m.Extra = append(m.Extra, &dns.TXT{Hdr: header(resp.Question[0].Name, dns.TypeTXT, DefaultTTL), Txt: strs})
	return m.Pack()
}

// FanOutScript answers A queries over UDP with an empty truncated
// response, sending the client to TCP, and over TCP with n A records for
// the query name (consecutive addresses from first) followed by A records
// for offChainName with offChain addresses: the 64 KB answer that would
// make a probe connect to thousands of hosts, and records a resolver has
// no business giving. AAAA queries get an empty NOERROR. A 64 KB message
// holds 4094 records for a short name ("f.test"); when n records do not
// fit, the TCP query gets no answer.
func FanOutScript(first netip.Addr, n int, offChainName string, offChain []netip.Addr) DNSScript {
	return func(req *dns.Msg, transport string, send func([]byte) error, _ <-chan struct{}) {
		q := req.Question[0]
		resp := newResponse(req)
		if q.Qtype == dns.TypeA {
			switch transport {
			case "udp":
				resp.Truncated = true
			default:
				a := first
				for range n {
					resp.Answer = append(resp.Answer, &dns.A{Hdr: header(q.Name, dns.TypeA, DefaultTTL), A: a.AsSlice()})
					a = a.Next()
				}
				resp.Answer = append(resp.Answer, addressRecords(dns.Fqdn(offChainName), dns.TypeA, DefaultTTL, offChain)...)
			}
		}
		// No EDNS record: 4094 records for a short name fill 64 KB to the
		// last few bytes.
		resp.Extra = nil
		resp.Compress = true
		b, err := resp.Pack()
		if err != nil {
			return
		}
		_ = send(b)
	}
}

// StartHugeStatusLine starts a TLS server at addr that answers every
// HTTP request with a malformed status line of n bytes ("HTTP/1.1 xxx...",
// no status code): a DoH server whose error text would be megabytes long. It serves cert and HTTP/1.1 only. The
// returned function stops it.
func StartHugeStatusLine(addr string, cert tls.Certificate, n int) (netip.AddrPort, func(), error) {
	ln, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return netip.AddrPort{}, nil, err
	}
	line := []byte("HTTP/1.1 " + strings.Repeat("x", max(n-11, 0)) + "\r\n\r\n")
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 4096)
				if _, err := c.Read(buf); err != nil {
					return
				}
				_, _ = c.Write(line)
			})
		}
	})
	stop := func() {
		ln.Close()
		wg.Wait()
	}
	return ln.Addr().(*net.TCPAddr).AddrPort(), stop, nil
}
