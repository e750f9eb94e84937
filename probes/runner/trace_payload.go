package runner

import (
	"encoding/binary"
	"net/netip"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/arrival"
	"github.com/reachprobe/reachprobe/probes/pathprobe"
)

// payloadFlows returns the flows of a payload trace (TraceRequest.Payload):
// the test flow carries the datagram kind that drew nothing from Apple's
// host; its control to the same address and port carries a QUIC Initial
// of a reserved version, the kind the host answered, instead of TCP; the
// flow toward the control address carries the test's kind. ok is false
// when a datagram cannot be built (an unknown kind): the trace is not
// made.
func payloadFlows(tr TraceRequest) (test, same pathprobe.Flow, control []byte, ok bool) {
	kind := arrival.Kind(tr.Payload)
	wire, err := arrival.Wire(kind, tr.Test)
	if err != nil {
		return test, same, nil, false
	}
	reserved, err := arrival.Wire(arrival.KindQUICReserved, tr.Test)
	if err != nil {
		return test, same, nil, false
	}
	test = pathprobe.Flow{Network: "udp", Dst: tr.Test, Payload: wire}
	same = pathprobe.Flow{Network: "udp", Dst: tr.Test, Payload: reserved}
	if tr.Control.IsValid() {
		if control, err = arrival.Wire(kind, netip.AddrPortFrom(tr.Control, tr.Test.Port())); err != nil {
			return test, same, nil, false
		}
	}
	return test, same, control, true
}

// stunMagicCookie marks a STUN message (RFC 5389 §6).
const stunMagicCookie = 0x2112A442

// payloadKind names what a trace's UDP probes carried, for the record: a
// datagram kind of the arrival step, or "" for anything else (zeros).
func payloadKind(b []byte) string {
	switch {
	case len(b) >= 20 && b[0]&0xc0 == 0 && binary.BigEndian.Uint32(b[4:8]) == stunMagicCookie:
		return measurements.ArrivalSTUN
	case len(b) < 5 || b[0]&0x80 == 0:
		return ""
	}
	switch v := binary.BigEndian.Uint32(b[1:5]); {
	case v == arrival.QUICv1:
		return measurements.ArrivalQUICv1
	case arrival.IsReservedVersion(v):
		return measurements.ArrivalQUICReserved
	}
	return ""
}
