// Package pathprobe finds where on the path a flow's packets stop, with
// TTL-limited probes in the style of Paris traceroute, from an ordinary
// unprivileged socket: the time-exceeded errors routers return are read
// from the socket's error queue (IP_RECVERR, IPV6_RECVERR) with the
// router's address.
//
// # Design
//
// A Trace compares a test flow (the one suspected blocked) with a control
// flow (one that is not: TCP to 443 on the same address, or the same UDP
// port toward a control address). Each flow keeps its 5-tuple constant
// across TTLs, so load balancers keep it on one path: a UDP flow is one
// connected socket whose TTL changes between probes; a TCP flow opens one
// socket per probe, always from the same local port, since a SYN that
// drew an error cannot be sent again. On IPv6 the flow label is pinned to
// zero (IPV6_AUTOFLOWLABEL off), since Linux picks a new label per socket
// and after a retransmission timeout. At each TTL the test and the
// control are probed side by side, every TTL is probed Rounds times, and
// a candidate stop is probed again after a pause that lets routers'
// ICMP rate limits refill. Decide, a pure function, reads the records:
// a stop needs positive evidence beyond it, never one silent slot.
//
// Every probe of a run draws on one Budget, shared by concurrent traces,
// since routers rate-limit the ICMP they send per destination and here
// the destination is the volunteer: the budget paces probes, caps their
// number and the time, and bounds the traces in flight.
//
// RunReset localises a reset triggered by a TLS ClientHello (CenTrace's
// technique): after a normal TCP handshake, the ClientHello leaves with a
// lowered TTL; the smallest TTL that still draws the reset places the
// injector. TCP queues no errors once connected, so it gives the hop's
// number, not its address (a Trace to the same address names it). The
// control ClientHello's first answer gives the server's hop: a reset
// drawn only there is the server's own. A sweep of a path of D hops with
// the injector past hop H sends 2·(H+1) ClientHellos, and the control
// alone up to D after the reset; every silent one costs
// DefaultResetReadTimeout.
//
// Hop addresses are kept as netip.Addr. Trace.Annotate maps them to AS
// numbers through a lookup the caller passes (probes/netid.Lookup), so
// this package does not load the ASN database; keeping the volunteer's
// own hops out of exports is the caller's too. Where IP_RECVERR is
// unavailable (anything but Linux) a trace is recorded as skipped, never
// failed.
//
// Time and cost: a trace of a path of D hops sends at most 2·(D+GapLimit)
// probes in its first round, 2·(S+2) in the second (S: the test flow's
// last hop) and 2 to confirm; every silent test slot costs
// DefaultReplyTimeout. In the namespace lab (4 hops, a drop at hop 2) a
// trace is 18 probes, 9 per flow, in about 8 s.
package pathprobe

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/reachprobe/reachprobe/probes/errqueue"
)

// Reply says what one TTL-limited probe drew.
type Reply string

// Replies.
const (
	// ReplyNone: nothing within the wait. One silent slot proves
	// nothing: routers drop packets and rate-limit their ICMP.
	ReplyNone Reply = "none"
	// ReplyTimeExceeded: a router returned ICMP time exceeded; From is
	// the hop at this TTL.
	ReplyTimeExceeded Reply = "time_exceeded"
	// ReplyDestination: the destination answered (an ICMP error from its
	// address, a UDP datagram, a SYN-ACK): the probe got there.
	ReplyDestination Reply = "destination"
	// ReplyReset: a TCP SYN drew a RST, whose sender TCP does not tell:
	// the destination's closed port, or an injector on the way.
	ReplyReset Reply = "reset"
	// ReplyUnreachable: an ICMP destination unreachable from a host that
	// is not the destination (a router or a firewall's REJECT).
	ReplyUnreachable Reply = "unreachable"
)

// Flow roles in a trace.
const (
	RoleTest    = "test"
	RoleControl = "control"
)

// Hop is the record of one probe.
type Hop struct {
	TTL   int    `json:"ttl"`
	Role  string `json:"role"` // RoleTest or RoleControl
	Reply Reply  `json:"reply"`
	// From is who answered: the ICMP offender or the destination;
	// invalid for silence and for a reset. Exports must drop it (the
	// first hops identify the volunteer) and give AS numbers instead.
	From netip.Addr `json:"from,omitzero"`
	// ASN and ASName are From's network, filled in by Trace.Annotate.
	ASN      uint          `json:"asn,omitempty"`
	ASName   string        `json:"as_name,omitempty"`
	ICMPType uint8         `json:"icmp_type,omitempty"`
	ICMPCode uint8         `json:"icmp_code,omitempty"`
	RTT      time.Duration `json:"rtt,omitempty"`
}

// MinSilentSlots is how many silent test probes the first TTL past a stop
// needs: two, so one lost or rate-limited slot never makes a stop.
const MinSilentSlots = 2

// MinControlEvidence is how many time-exceeded replies the control flow
// must draw from routers past the stop (and before the destination):
// two, so the control's passing is seen repeatedly.
const MinControlEvidence = 2

// Stop is where a test flow's packets stop, as Decide reads the records.
type Stop struct {
	// Known is true when the records place the stop; otherwise Reason
	// says why the place is unknown.
	Known bool `json:"known"`
	// Hop is the TTL of the last router that saw the test flow: its
	// packets go no further than that router. A router that filters in
	// its forwarding path (as Linux's FORWARD chain) is this hop itself;
	// an in-line box sits between it and the next. 0 means the first
	// router never saw it (the volunteer's own machine or link).
	Hop int `json:"hop"`
	// Addr is the address of that router, as the test flow saw it;
	// invalid when Hop is 0.
	Addr netip.Addr `json:"addr,omitzero"`
	// ASN and ASName are Addr's network, filled in by Trace.Annotate.
	ASN    uint   `json:"asn,omitempty"`
	ASName string `json:"as_name,omitempty"`
	// Rejected is true when the stop is a router's ICMP unreachable
	// (a REJECT) rather than silence.
	Rejected bool `json:"rejected,omitempty"`
	// DestinationHop is the hop of the test flow's destination that
	// Decide used: where the control to the same address arrived (or
	// drew a reset), or Destination.Hop; 0 when unknown.
	DestinationHop int    `json:"destination_hop,omitempty"`
	Reason         string `json:"reason"`
}

// Destination tells Decide how far the test flow's destination is, which
// a stop must come before.
type Destination struct {
	// SameAddress says the control flow goes to the test's address, so
	// the control's arrival marks the destination's hop.
	SameAddress bool
	// Hop is the destination's hop found by another trace to the test's
	// address (a control to the same address); 0 when unknown. A trace
	// whose control goes to another address needs it: without it, a
	// control that passes more routers on its own way proves nothing
	// about the test's destination, which may be the next hop and ignore
	// the test flow.
	Hop int
}

// Decide reads the probes of one trace (test and control, in any order)
// and says where the test flow stops. A stop counts only with positive
// evidence beyond it: past the last hop that saw the test flow, the
// control flow draws time exceeded from routers, repeatedly
// (MinControlEvidence, at least once at the very next TTL), where every
// test probe stayed silent (MinSilentSlots at the next TTL), and all of
// that before the test destination's own hop, since a destination may
// simply ignore the test flow. Otherwise the place is unknown.
func Decide(hops []Hop, d Destination) Stop {
	dest := d.Hop
	for _, h := range hops {
		// A reset to the control's SYN is taken for the destination's,
		// which can only bring the destination's hop nearer: the
		// cautious reading.
		arrived := h.Reply == ReplyDestination || h.Reply == ReplyReset
		if d.SameAddress && h.Role == RoleControl && arrived && (dest == 0 || h.TTL < dest) {
			dest = h.TTL
		}
	}
	unknown := func(format string, args ...any) Stop {
		return Stop{DestinationHop: dest, Reason: fmt.Sprintf(format, args...)}
	}

	last := 0               // the highest TTL at which a router saw the test flow
	addrAt := map[int]int{} // index of the test's time-exceeded reply per TTL
	var reject *Hop
	for i, h := range hops {
		if h.Role != RoleTest {
			continue
		}
		switch h.Reply {
		case ReplyDestination:
			return unknown("the test flow reached the destination at TTL %d", h.TTL)
		case ReplyReset:
			return unknown("the test flow drew a reset at TTL %d, from a sender TCP does not name", h.TTL)
		case ReplyTimeExceeded:
			last = max(last, h.TTL)
			if _, ok := addrAt[h.TTL]; !ok {
				addrAt[h.TTL] = i
			}
		case ReplyUnreachable:
			if reject == nil || h.TTL < reject.TTL {
				reject = &hops[i]
			}
		}
	}

	if reject != nil {
		// A REJECT from a router: its hop is where the test flow saw
		// that address expire its TTL.
		for ttl := 1; ttl < reject.TTL; ttl++ {
			if i, ok := addrAt[ttl]; ok && hops[i].From == reject.From {
				return Stop{Known: true, Hop: ttl, Addr: reject.From, Rejected: true, DestinationHop: dest,
					Reason: fmt.Sprintf("hop %d answers the test flow with ICMP unreachable (type %d code %d)", ttl, reject.ICMPType, reject.ICMPCode)}
			}
		}
		return unknown("a router rejects the test flow from TTL %d on, but its hop number is unknown", reject.TTL)
	}

	next := last + 1
	silent, probedNext, controlAny, controlNext, evidence := 0, false, 0, 0, 0
	for _, h := range hops {
		switch {
		case h.Role == RoleTest && h.TTL == next:
			probedNext = true
			silent++ // every test probe past last is silent, by last's definition
		case h.Role == RoleControl && h.TTL > last && h.Reply != ReplyNone:
			controlAny++
			if h.Reply == ReplyTimeExceeded && (dest == 0 || h.TTL < dest) {
				evidence++
				if h.TTL == next {
					controlNext++
				}
			}
		}
	}
	switch {
	case !probedNext:
		return unknown("the test flow was not probed past hop %d", last)
	case silent < MinSilentSlots:
		return unknown("only %d test probe(s) past hop %d: one silent slot proves nothing", silent, last)
	case controlAny == 0:
		return unknown("past hop %d neither flow draws any answer: the routers there may send no ICMP", last)
	case dest == 0 && d.SameAddress:
		return unknown("the control never reached the destination, so the destination's hop is unknown")
	case dest == 0:
		return unknown("the test destination's hop is unknown (the control goes to another address and no trace to the same address gave it)")
	case next >= dest:
		return unknown("the test flow is seen up to hop %d and the destination is hop %d: the destination may ignore it", last, dest)
	case controlNext == 0:
		return unknown("hop %d answers neither flow: it may send no ICMP", next)
	case evidence < MinControlEvidence:
		return unknown("the control flow was seen past hop %d only %d time(s)", last, evidence)
	}
	s := Stop{Known: true, Hop: last, DestinationHop: dest,
		Reason: fmt.Sprintf("the control flow passes hop %d (%d replies past it) where %d test probes stay silent", last, evidence, silent)}
	if i, ok := addrAt[last]; ok {
		s.Addr = hops[i].From
	}
	return s
}

// errUnsupported reports a system whose ordinary sockets cannot read
// their ICMP errors.
var errUnsupported = errqueue.ErrUnsupported
