package runner

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/dnsprobe"
	"github.com/reachprobe/reachprobe/probes/failure"
)

// windows ends the listening windows of one target's plain lookups as
// soon as the evidence makes injection moot: once the first response is
// shown to be the name's, a response after it is not what applications
// use. It is shown so when the encrypted control gave the same for the
// same query type (measurements.ListenCutControlAgrees), or when a
// handshake for the target's server name verified at each of its
// addresses the control did not give (ListenCutHandshakeVerified).
//
// An injector that wins the race makes its forged answer the first one:
// the control never gave it and no handshake for the name verifies there,
// so that window runs full and the genuine answer behind it is heard. A
// first response that denies the name, or sends the probe to TCP, keeps
// its window too.
type windows struct {
	lookups    *dnsprobe.Lookups
	serverName string

	mu sync.Mutex
	// open are the lookups still listening that a verified handshake
	// may vouch for, each with the addresses nothing has vouched for yet.
	open []openWindow
}

type openWindow struct {
	o      *measurements.Observation
	unseen []netip.Addr
}

// controlAnswer is what the encrypted control gave for one query type.
type controlAnswer struct {
	answered bool
	addrs    []netip.Addr
}

// newWindows ends at once the windows of first's plain lookups whose
// first response agrees with the control's, and keeps the others open
// for a handshake to vouch for.
func newWindows(t *measurements.Target, lookups *dnsprobe.Lookups, first []*measurements.Observation) *windows {
	w := &windows{lookups: lookups, serverName: t.ServerName}
	control := map[string]*controlAnswer{}
	for _, o := range first {
		if o.DNS == nil || !o.Control && o.DNS.Engine != measurements.EngineDoH || o.DNS.Rcode != "NOERROR" {
			continue
		}
		if o.Failure != "" && o.Failure != failure.DNSNoAnswer {
			continue
		}
		c := control[o.DNS.QueryType]
		if c == nil {
			c = &controlAnswer{}
			control[o.DNS.QueryType] = c
		}
		c.answered = true
		c.addrs = append(c.addrs, measurements.AnswerAddrs(o.DNS.Answers)...)
	}
	for _, o := range first {
		if o.DNS == nil || o.DNS.Engine != measurements.EngineUDP || o.DNS.Rcode != "NOERROR" || o.DNS.Truncated {
			continue
		}
		if o.Failure != "" && o.Failure != failure.DNSNoAnswer {
			continue
		}
		addrs := measurements.AnswerAddrs(o.DNS.Answers)
		c := control[o.DNS.QueryType]
		if c != nil && c.answered && (len(addrs) > 0 || len(c.addrs) == 0) {
			var unseen []netip.Addr
			for _, a := range addrs {
				if !slices.Contains(c.addrs, a) {
					unseen = append(unseen, a)
				}
			}
			if len(unseen) == 0 {
				lookups.EndWindow(o, measurements.ListenCutControlAgrees)
				continue
			}
			addrs = unseen
		}
		if len(addrs) > 0 {
			w.open = append(w.open, openWindow{o: o, unseen: addrs})
		}
	}
	return w
}

// saw takes every observation of the target's endpoints before it is
// recorded: a handshake for the target's server name that verified at an
// address vouches for it.
func (w *windows) saw(o *measurements.Observation) {
	if o == nil || o.Control || o.Step != measurements.StepTLS && o.Step != measurements.StepQUIC {
		return
	}
	if !o.Succeeded() || o.TLS == nil || !o.TLS.Verified || o.TLS.ServerName != w.serverName || w.serverName == "" {
		return
	}
	addr, err := netip.ParseAddr(o.Address)
	if err != nil {
		return
	}
	addr = addr.Unmap()
	w.mu.Lock()
	defer w.mu.Unlock()
	open := w.open[:0]
	for _, ow := range w.open {
		ow.unseen = slices.DeleteFunc(ow.unseen, func(a netip.Addr) bool { return a == addr })
		if len(ow.unseen) == 0 {
			w.lookups.EndWindow(ow.o, measurements.ListenCutHandshakeVerified)
			continue
		}
		open = append(open, ow)
	}
	w.open = open
}
