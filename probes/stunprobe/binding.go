// Package stunprobe measures UDP reachability with a STUN Binding exchange
// (RFC 5389): one request, retransmitted on silence, and whether a
// response with the same transaction ID comes back. FaceTime relays answer
// STUN on their call ports, so a response proves the UDP path works.
//
// # Design
//
// The codec (message.go) is small and written here rather than imported;
// it parses untrusted bytes and has a fuzz target. An exchange uses a
// connected UDP socket, so that an ICMP port unreachable surfaces as
// ECONNREFUSED ("connection_refused") instead of looking like silence.
// Retransmission follows RFC 5389's doubling RTO, bounded so that a silent
// port costs at most BindingTimeout.
//
// The mapped address in a response is the probe's public address: Binding
// records only that one was present, never the address itself.
// PublicAddress returns it for callers that need it and keep it out of
// stored observations.
//
// The package does not implement STUN authentication, TURN or ICE, and it
// does not decide whether silence is blocking: STUNDetails.ExpectAnswer
// carries what the catalog knows so analysis can.
package stunprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
)

// InitialRTO is the wait for a response to the first request, RFC 5389's
// suggested initial retransmission timeout (section 7.2.1): several times a
// slow intercontinental round trip.
const InitialRTO = 500 * time.Millisecond

// MaxRTO caps the doubling wait. RFC 5389 keeps doubling up to 7 requests
// and almost 40 s; a probe measuring dozens of call ports cannot wait that
// long for each silent one, and a response to any earlier request is still
// accepted (retransmissions reuse the transaction ID).
const MaxRTO = time.Second

// MaxAttempts is how many requests are sent before silence is recorded:
// four, so one or two lost datagrams do not look like blocking.
const MaxAttempts = 4

// BindingTimeout is the longest a silent exchange lasts: the waits after
// each of the MaxAttempts requests, 0.5 + 1 + 1 + 1 s.
const BindingTimeout = 3500 * time.Millisecond

// maxDatagram is the read buffer: larger than any STUN response fitting a
// path MTU; a longer datagram is truncated and then fails to parse.
const maxDatagram = 4096

// ErrNoResponse reports that no response with the request's transaction
// ID arrived after MaxAttempts requests.
var ErrNoResponse = errors.New("stun: no response")

// ErrErrorResponse reports an error response where a success was needed.
var ErrErrorResponse = errors.New("stun: error response")

// schedule says when requests are retransmitted. Tests shorten it; the
// probe uses defaultSchedule.
type schedule struct {
	initialRTO time.Duration
	maxRTO     time.Duration
	attempts   int
}

var defaultSchedule = schedule{initialRTO: InitialRTO, maxRTO: MaxRTO, attempts: MaxAttempts}

// Binding sends a Binding request to addr, retransmitting on silence, and
// returns the observation; a failure is recorded in it, never returned.
// expectAnswer is copied into the details for analysis. The caller fills
// in the catalog fields (Group, Target, Host, Repeat).
func Binding(ctx context.Context, addr netip.AddrPort, expectAnswer bool) *measurements.Observation {
	return binding(ctx, addr, expectAnswer, defaultSchedule)
}

func binding(ctx context.Context, addr netip.AddrPort, expectAnswer bool, s schedule) *measurements.Observation {
	req, wire := NewBindingRequest()
	details := &measurements.STUNDetails{
		TransactionID: append([]byte(nil), req.TransactionID[:]...),
		ExpectAnswer:  expectAnswer,
	}
	obs := &measurements.Observation{
		Step:      measurements.StepUDP,
		Address:   addr.Addr().String(),
		Port:      int(addr.Port()),
		Transport: "udp",
		Started:   time.Now().UTC(),
		STUN:      details,
	}
	res, op, err := exchange(ctx, addr, s, wire, req.TransactionID)
	obs.Duration = time.Since(obs.Started)
	details.Attempts = res.attempts
	if err != nil {
		obs.Failure = failure.Classify(err)
		obs.Operation = op
		var icmp *failure.ICMPError
		if errors.As(err, &icmp) {
			details.ICMP = &measurements.ICMPDetails{IPv6: icmp.IPv6, Type: int(icmp.Type), Code: int(icmp.Code), FromTarget: icmp.FromTarget}
		}
		return obs
	}
	details.Responded = true
	details.Class = res.resp.Class().String()
	details.ResponseBytes = res.size
	details.MappedAddressSeen = hasMappedAddress(res.resp)
	return obs
}

// hasMappedAddress reports whether m carries a decodable mapped address.
func hasMappedAddress(m Message) bool {
	if _, err := m.XORMappedAddress(); err == nil {
		return true
	}
	_, err := m.MappedAddress()
	return err == nil
}

// PublicAddress asks the STUN server at addr which address it sees the
// probe's requests come from: XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from
// an RFC 3489 server. The result identifies the user's network; keep it
// out of stored observations. Errors are the network's (classify them
// with failure.Classify), ErrErrorResponse, or the codec's.
func PublicAddress(ctx context.Context, addr netip.AddrPort) (netip.Addr, error) {
	req, wire := NewBindingRequest()
	res, _, err := exchange(ctx, addr, defaultSchedule, wire, req.TransactionID)
	if err != nil {
		return netip.Addr{}, err
	}
	if res.resp.Class() == ClassError {
		code, reason, _ := res.resp.ErrorCode()
		return netip.Addr{}, fmt.Errorf("%w: %d %s", ErrErrorResponse, code, reason)
	}
	mapped, err := res.resp.XORMappedAddress()
	if errors.Is(err, ErrNoAttribute) {
		mapped, err = res.resp.MappedAddress()
	}
	if err != nil {
		return netip.Addr{}, err
	}
	return mapped.Addr().Unmap(), nil
}

// result is what an exchange got back.
type result struct {
	attempts int     // requests sent
	resp     Message // the first response with our transaction ID
	size     int     // its size in bytes
}

// exchange sends wire to addr over a connected UDP socket, retransmitting
// per s, until a Binding response with transaction ID id arrives. On
// failure it returns the operation that failed and the error: the
// network's, the context's, or a failure.Error for silence.
func exchange(ctx context.Context, addr netip.AddrPort, s schedule, wire []byte, id [12]byte) (result, string, error) {
	var res result
	d := net.Dialer{Control: recvErr}
	conn, err := d.DialContext(ctx, "udp", addr.String())
	if err != nil {
		return res, failure.OpConnect, err
	}
	defer conn.Close()
	// Wake a blocked read when ctx ends; the loop then sees ctx.Err().
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()

	buf := make([]byte, maxDatagram)
	wait := s.initialRTO
	for res.attempts < s.attempts {
		if err := ctx.Err(); err != nil {
			return res, failure.OpWrite, err
		}
		if _, err := conn.Write(wire); err != nil {
			// A refusal on write is the ICMP answer to an earlier
			// request, reported by the next socket call.
			if errors.Is(err, syscall.ECONNREFUSED) {
				return res, failure.OpRead, withICMP(conn, addr.Addr(), err)
			}
			return res, failure.OpWrite, withICMP(conn, addr.Addr(), err)
		}
		res.attempts++
		if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
			return res, failure.OpRead, err
		}
		for {
			// Checked after setting the deadline, so a cancellation that
			// fired before it cannot be overwritten unseen.
			if err := ctx.Err(); err != nil {
				return res, failure.OpRead, err
			}
			n, err := conn.Read(buf)
			if err != nil {
				if ctxErr := ctx.Err(); ctxErr != nil {
					return res, failure.OpRead, ctxErr
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break // retransmit
				}
				return res, failure.OpRead, withICMP(conn, addr.Addr(), err)
			}
			m, err := ParseMessage(buf[:n])
			if err != nil || m.TransactionID != id || m.Method() != MethodBinding {
				continue // not ours: keep listening
			}
			if c := m.Class(); c != ClassSuccess && c != ClassError {
				continue
			}
			res.resp, res.size = m, n
			return res, "", nil
		}
		wait = min(2*wait, s.maxRTO)
	}
	return res, failure.OpRead, &failure.Error{Failure: failure.GenericTimeout, Err: ErrNoResponse}
}
