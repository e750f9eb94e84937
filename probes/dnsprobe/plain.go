package dnsprobe

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/reachprobe/reachprobe/measurements"
)

// maxUDPResponse is the read buffer size: the largest UDP payload, so an
// injected response larger than the EDNS0 size asked is still read whole.
const maxUDPResponse = 65535

// aLongTimeAgo is a deadline in the past, to interrupt a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// LookupPlain asks server ("host:port") for host's records of qtype
// (dns.TypeA, dns.TypeAAAA) with one UDP query and returns its
// observation, Engine "udp". The first response with the query's ID and
// question is the answer; further ones arriving within the listening
// window go into DNSDetails.Late (the first measurements.MaxLateResponses
// whole, the others counted in LateDropped and LateDroppedBytes), and
// responses with another ID are ignored.
// Duration runs to the first response (the window is not counted), and
// when no response comes the lookup ends with generic_timeout_error after
// LookupTimeout or at ctx's deadline, whichever is first. When the first
// response is truncated, the same query over TCP adds a second
// observation, Engine "tcp". LookupPlain listens for the whole window;
// Start's lookups can end it early.
func (r *Resolver) LookupPlain(ctx context.Context, server, host string, qtype uint16) []*measurements.Observation {
	p := r.startPlain(ctx, server, host, qtype)
	<-p.done
	return p.observations()
}

// plainLookup is one plain query in flight: its first response comes
// first (with the TCP lookup a truncated one brings), its listening
// window after.
type plainLookup struct {
	obs *measurements.Observation
	tcp *measurements.Observation // set before first closes, after truncation
	win window
	// first closes once obs holds the first response (or the failure)
	// and any TCP lookup is done; done once the listening is over too and
	// obs holds the late responses.
	first, done chan struct{}
}

// observations are the lookup's observations: UDP, then TCP if any.
func (p *plainLookup) observations() []*measurements.Observation {
	out := []*measurements.Observation{p.obs}
	if p.tcp != nil {
		out = append(out, p.tcp)
	}
	return out
}

// startPlain starts a plain lookup (see LookupPlain) and returns at once.
func (r *Resolver) startPlain(ctx context.Context, server, host string, qtype uint16) *plainLookup {
	p := &plainLookup{
		obs:   newObservation(host, measurements.EngineUDP, server, "udp", qtype),
		first: make(chan struct{}),
		done:  make(chan struct{}),
	}
	query := newQuery(host, qtype)
	p.obs.DNS.TransactionID = query.Id
	go func() {
		defer close(p.done)
		answered := false
		r.exchangeUDP(ctx, p.obs, server, query, &p.win, func(first *dns.Msg) {
			answered = true
			if !first.Truncated {
				close(p.first)
				return
			}
			// Over TCP while the UDP socket keeps listening, so the
			// fallback does not add the listening window to the lookup.
			go func() {
				p.tcp = r.lookupTCP(ctx, server, host, qtype)
				close(p.first)
			}()
		})
		if !answered {
			close(p.first)
		}
		<-p.first // the TCP lookup, if any, is part of the lookup
	}()
	return p
}

// window is the listening window of one plain query, which another
// goroutine may end early (end).
type window struct {
	mu   sync.Mutex
	conn net.Conn // while listening
	cut  string   // why the window was ended early
	at   time.Time
	over bool
}

// end ends the window now for reason, unless it is over.
func (w *window) end(reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.over || w.cut != "" {
		return
	}
	w.cut, w.at = reason, time.Now()
	if w.conn != nil {
		_ = w.conn.SetReadDeadline(aLongTimeAgo)
	}
}

// listen arms the window on conn until deadline; false when it was
// ended before it began.
func (w *window) listen(conn net.Conn, deadline time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cut != "" {
		return false
	}
	w.conn = conn
	_ = conn.SetReadDeadline(deadline)
	return true
}

// close marks the window over and returns why it was cut ("" when it
// ran out or ctx ended) and when.
func (w *window) close() (string, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.over, w.conn = true, nil
	return w.cut, w.at
}

// exchangeUDP sends query to server, fills obs from the first response
// and calls onFirst with it, then listens for late responses until the
// window runs out or win is ended.
func (r *Resolver) exchangeUDP(ctx context.Context, obs *measurements.Observation, server string, query *dns.Msg, win *window, onFirst func(*dns.Msg)) {
	started := time.Now()
	wire, err := query.Pack()
	if err != nil {
		obs.Duration = time.Since(started)
		fail(obs, err)
		return
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		obs.Duration = time.Since(started)
		fail(obs, err)
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(aLongTimeAgo) })
	defer stop()

	if _, err := conn.Write(wire); err != nil {
		obs.Duration = time.Since(started)
		fail(obs, err)
		return
	}
	sent := time.Now()
	buf := make([]byte, maxUDPResponse)
	first, raw, err := readResponse(ctx, conn, buf, query, started.Add(LookupTimeout))
	obs.Duration = time.Since(started)
	if err != nil {
		fail(obs, err)
		return
	}
	recordFirst(obs, query, first, raw)
	window := r.listenWindow()
	if window <= 0 {
		win.close()
		onFirst(first)
		return
	}
	// The late responses are kept apart until the window is over: the
	// caller reads obs meanwhile.
	late := &measurements.DNSDetails{}
	qname := query.Question[0].Name
	listening := time.Now()
	deadline := listening.Add(window)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	armed := win.listen(conn, deadline)
	onFirst(first)
	// Checked after arming: a cancellation that fired before is seen
	// here, one after it ends the read.
	for armed && ctx.Err() == nil {
		n, err := conn.Read(buf)
		if err != nil {
			break // the window ran out or was ended, or ctx ended
		}
		if resp, ok := parseResponse(query, buf[:n]); ok {
			addLate(late, qname, resp, buf[:n], time.Since(sent))
		}
	}
	cut, at := win.close()
	ended := time.Now()
	if cut != "" && ctx.Err() == nil {
		ended = at
		// What arrived before the cut and is still queued is heard too.
		_ = conn.SetReadDeadline(time.Time{})
		drain(conn, buf, func(b []byte) {
			if resp, ok := parseResponse(query, b); ok {
				addLate(late, qname, resp, b, time.Since(sent))
			}
		})
	}
	obs.DNS.Late, obs.DNS.LateDropped, obs.DNS.LateDroppedBytes = late.Late, late.LateDropped, late.LateDroppedBytes
	obs.DNS.Listened = max(ended.Sub(listening), 0)
	obs.DNS.ListenCut = cut
}

// addLate records a late response in d: whole while d holds fewer than
// measurements.MaxLateResponses, counted after that.
func addLate(d *measurements.DNSDetails, qname string, resp *dns.Msg, raw []byte, delay time.Duration) {
	if len(d.Late) < measurements.MaxLateResponses {
		d.Late = append(d.Late, lateResponse(qname, resp, raw, delay))
		return
	}
	d.LateDropped++
	d.LateDroppedBytes += int64(len(raw))
}

// readResponse reads from conn until a response to query arrives, the
// deadline passes or ctx ends. The bytes returned alias buf.
func readResponse(ctx context.Context, conn net.Conn, buf []byte, query *dns.Msg, deadline time.Time) (*dns.Msg, []byte, error) {
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetReadDeadline(deadline)
	for {
		// Checked after setting the deadline: a cancellation that
		// fired before it is seen here, one after it ends the read.
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		n, err := conn.Read(buf)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, nil, ctxErr
			}
			return nil, nil, err
		}
		if resp, ok := parseResponse(query, buf[:n]); ok {
			return resp, buf[:n], nil
		}
	}
}

// parseResponse unpacks b and reports whether it answers query. Garbage
// and responses to other queries are not answers.
func parseResponse(query *dns.Msg, b []byte) (*dns.Msg, bool) {
	resp := new(dns.Msg)
	if err := resp.Unpack(b); err != nil {
		// A truncated response may end mid-record; its header still
		// says to retry over TCP.
		if len(b) < 12 || !resp.Truncated {
			return nil, false
		}
	}
	return resp, matches(query, resp)
}

// lookupTCP asks server for host over TCP, after a truncated UDP response.
func (r *Resolver) lookupTCP(ctx context.Context, server, host string, qtype uint16) *measurements.Observation {
	obs := newObservation(host, measurements.EngineTCP, server, "tcp", qtype)
	query := newQuery(host, qtype)
	obs.DNS.TransactionID = query.Id
	started := time.Now()
	resp, raw, err := exchangeTCP(ctx, server, query)
	obs.Duration = time.Since(started)
	if err != nil {
		fail(obs, err)
		return obs
	}
	recordFirst(obs, query, resp, raw)
	return obs
}

// exchangeTCP sends query over a new TCP connection and reads one
// response (RFC 1035 section 4.2.2 framing).
func exchangeTCP(ctx context.Context, server string, query *dns.Msg) (*dns.Msg, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, LookupTimeout)
	defer cancel()
	wire, err := query.Pack()
	if err != nil {
		return nil, nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	ctxErr := func(err error) error {
		if e := ctx.Err(); e != nil {
			return e
		}
		return err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	framed := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(wire)), uint16(len(wire)))
	if _, err := conn.Write(append(framed, wire...)); err != nil {
		return nil, nil, ctxErr(err)
	}
	var length [2]byte
	if _, err := io.ReadFull(conn, length[:]); err != nil {
		return nil, nil, ctxErr(err)
	}
	raw := make([]byte, binary.BigEndian.Uint16(length[:]))
	if _, err := io.ReadFull(conn, raw); err != nil {
		return nil, nil, ctxErr(err)
	}
	resp, err := streamResponse(query, raw)
	if err != nil {
		return nil, nil, err
	}
	return resp, raw, nil
}
