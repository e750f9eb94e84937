//go:build lab

package lab

import (
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// u32 matches of a UDP datagram by what it carries (the offset of its
// payload is the IP header's length plus 8).
const (
	// stunMatch: a STUN message, its magic cookie at bytes 4 to 7.
	stunMatch = "0>>22&0x3C@12=0x2112A442"
	// quicV1Match: a QUIC long header of version 1.
	quicV1Match = "0>>22&0x3C@8>>24&0xC0=0xC0 && 0>>22&0x3C@9=0x1"
)

// payloadFilter makes the ISP's router drop STUN and QUIC v1 datagrams
// on FaceTime's ports, toward dst ("" for every destination), and let
// every other datagram through: a QUIC Initial of a reserved version,
// random bytes.
func payloadFilter(l *lab, dst string) {
	for _, match := range []string{stunMatch, quicV1Match} {
		rule := []string{"-p", "udp", "-m", "multiport", "--dports", defaultCallPorts, "-m", "u32", "--u32", match, "-j", "DROP"}
		if dst != "" {
			rule = append([]string{"-d", dst}, rule...)
		}
		l.ispForward(rule...)
	}
}

// payloadPathCases are TestLabPath's scenarios of udp.payload: Apple's
// call hosts answer a QUIC Initial of a reserved version with Version
// Negotiation (the lab's relays do), and the control STUN server on
// 3478 answers STUN.
func payloadPathCases() []pathCase {
	return []pathCase{
		{"path-call-payload-filtered", func(l *lab) { payloadFilter(l, appleBlock) }, func(t *testing.T, s *storedRun, rep *report) {
			wantService(t, rep, call, verdictBlocked, "udp.payload")
			wantEvidence(t, rep, "STUN requests to Apple's call servers are dropped at hop 2, inside AS64500 (Lab ISP, the network you are on)")
			wantPayloadTrace(t, s, 2)
			wantService(t, rep, push, "ok", "")
			wantService(t, rep, identity, "ok", "")
			wantApp(t, rep, "imessage", appWorking)
			wantApp(t, rep, "facetime", appBlocked)
		}},
		{"honest-path-call-payload-filtered-for-all", func(l *lab) { payloadFilter(l, "") }, func(t *testing.T, s *storedRun, rep *report) {
			// The same filter for every destination, the control STUN
			// server's datagrams too: this network's filter.
			wantEvidence(t, rep, "a filter of this network on what datagrams carry, for every destination, not a block aimed at Apple")
			wantService(t, rep, call, "restricted", "")
			wantApp(t, rep, "facetime", "restricted")
			wantApp(t, rep, "imessage", appWorking)
		}},
		{"path-call-payload-filtered-no-icmp", func(l *lab) { payloadFilter(l, appleBlock); noTimeExceeded(l) }, func(t *testing.T, s *storedRun, rep *report) {
			// The Apple-only filter, routers silent: the place is
			// unknown, and without it nothing tells the filter from a
			// host that ignores STUN and QUIC v1.
			wantService(t, rep, call, verdictInconclusive, "")
			wantEvidence(t, rep, "where the datagrams stop is unknown")
			wantApp(t, rep, "imessage", appWorking)
			wantApp(t, rep, "facetime", "inconclusive")
		}},
		{"path-call-payload-filtered-no-path-probes", func(l *lab) {
			// The Apple-only filter, measured with --no-path-probes: no
			// arrival datagram, no trace; STUN silence from hosts not
			// known to answer decides nothing.
			l.args = append(l.args, "--no-path-probes")
			payloadFilter(l, appleBlock)
		}, func(t *testing.T, s *storedRun, rep *report) {
			for _, o := range s.Observations {
				if o.Step == measurements.StepArrival || o.Step == measurements.StepTrace {
					t.Errorf("%s step to %s:%d with --no-path-probes", o.Step, o.Address, o.Port)
					break
				}
			}
			wantService(t, rep, call, verdictInconclusive, "")
			wantApp(t, rep, "imessage", appWorking)
		}},
	}
}

// wantPayloadTrace checks that a call endpoint's payload trace (STUN
// probes against a reserved-version Initial to the same address) placed
// the stop at hop.
func wantPayloadTrace(t *testing.T, s *storedRun, hop int) {
	t.Helper()
	for _, o := range s.Observations {
		if o.Step == measurements.StepTrace && o.Trace != nil && o.Group == call &&
			o.Trace.Test.Payload == measurements.ArrivalSTUN && o.Trace.Control.Payload == measurements.ArrivalQUICReserved {
			if !o.Trace.Stop.Known || o.Trace.Stop.Hop != hop {
				t.Errorf("payload trace of %s:%d: stop %+v, want hop %d", o.Address, o.Port, o.Trace.Stop, hop)
			}
			return
		}
	}
	t.Error("no payload trace")
}
