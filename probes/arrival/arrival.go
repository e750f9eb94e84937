// Package arrival tells whether UDP datagrams reach a host, with evidence
// that needs no particular answer from it. To one address and port it
// sends several kinds of datagram of one size (DatagramSize): a STUN
// binding request, a QUIC Initial with a reserved version, a QUIC v1
// Initial shaped like FaceTime's relay client's (ALPN h3, the IP address
// as server name) and random bytes, and records per kind what came back:
// any answer, a validated QUIC Version Negotiation, an ICMP port
// unreachable sent by the target itself (the datagram arrived at the
// host), one sent by another host (a firewall's REJECT: no arrival), or
// silence.
//
// # Design
//
// Each kind has its own connected UDP socket with IP_RECVERR, so an ICMP
// error is read from the error queue with its sender (errqueue) and tied
// to the kind that drew it. Kinds run at once and a kind stops sending as
// soon as it has evidence, so the first round costs the target one
// datagram per kind: hosts rate-limit their ICMP errors per destination
// (Linux: a burst of about 6), and retransmissions would make later kinds
// look silent. Where IP_RECVERR is unavailable the ICMP evidence is
// skipped (Result.ICMPSkipped) and answers are still read.
//
// The package does not decide whether silence is blocking, nor compare a
// target with its control: analysis does, from the Results of both.
package arrival

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/reachprobe/reachprobe/probes/errqueue"
	"github.com/reachprobe/reachprobe/probes/failure"
	"github.com/reachprobe/reachprobe/probes/stunprobe"
)

// Kind names one kind of datagram.
type Kind string

// The datagram kinds, all DatagramSize bytes.
const (
	// KindSTUN is a STUN binding request (RFC 5389) padded with a
	// PADDING attribute (RFC 5780). A server that does not know PADDING
	// answers with an error response, which still proves arrival.
	KindSTUN Kind = "stun"
	// KindQUICReserved is a QUIC Initial with a reserved version
	// 0x?a?a?a?a, which a QUIC server answers with Version Negotiation.
	KindQUICReserved Kind = "quic_reserved_version"
	// KindQUICv1 is a QUIC v1 Initial with a ClientHello offering h3 and
	// the target's IP address as server name, the kind FaceTime sends.
	KindQUICv1 Kind = "quic_v1"
	// KindRandom is random bytes.
	KindRandom Kind = "random"
)

// Kinds lists every kind, in the order results list them.
var Kinds = []Kind{KindSTUN, KindQUICReserved, KindQUICv1, KindRandom}

// Attempts is how many datagrams of one kind are sent while it draws no
// evidence: three, so one or two lost datagrams do not read as silence.
const Attempts = 3

// AttemptInterval is the wait for evidence after each datagram: several
// times an intercontinental round trip, and long enough that a host's
// ICMP rate limit (Linux: one token a second after the burst) refills one
// token between two datagrams of a kind.
const AttemptInterval = time.Second

// ProbeTimeout bounds one Probe: the Attempts waits and a margin.
const ProbeTimeout = Attempts*AttemptInterval + 500*time.Millisecond

// maxAnswers caps the datagrams counted per kind: the network chooses how
// many it sends.
const maxAnswers = 16

// maxDatagram is the read buffer; a longer answer is truncated, and its
// size recorded as the buffer's.
const maxDatagram = 2048

// Evidence of one kind, strongest first.
const (
	// EvidenceAnswer: a datagram came back from the target address.
	EvidenceAnswer = "answer"
	// EvidencePortUnreachable: the target itself sent an ICMP port
	// unreachable (its address is the offender): the datagram arrived.
	EvidencePortUnreachable = "port_unreachable_from_target"
	// EvidenceICMPFromTarget: another ICMP destination unreachable from
	// the target address (e.g. administratively prohibited by the host's
	// own firewall): the datagram arrived at the host.
	EvidenceICMPFromTarget = "icmp_from_target"
	// EvidenceICMPFromOther: an ICMP error from another address, e.g. a
	// firewall's REJECT on the path: not arrival.
	EvidenceICMPFromOther = "icmp_from_other_host"
	// EvidenceSilence: nothing came back.
	EvidenceSilence = "silence"
)

// Config says what to send.
type Config struct {
	// Kinds to send; nil means Kinds.
	Kinds []Kind
	// ServerName is the QUIC v1 Initial's SNI; empty means the target's
	// IP address, as FaceTime's relay client sends it.
	ServerName string
	// ALPN of the QUIC v1 Initial; nil means ["h3"].
	ALPN []string
}

// Result is what one Probe found.
type Result struct {
	Target   netip.AddrPort `json:"-"`
	Started  time.Time      `json:"-"`
	Duration time.Duration  `json:"duration"`
	// ICMPSkipped says why ICMP errors could not be read (no
	// IP_RECVERR): then silence and an ICMP error look alike.
	ICMPSkipped string       `json:"icmp_skipped,omitempty"`
	Kinds       []KindResult `json:"kinds"`
}

// Arrived reports whether any kind proved that a datagram reached the
// target host.
func (r *Result) Arrived() bool {
	for _, k := range r.Kinds {
		if k.Arrived() {
			return true
		}
	}
	return false
}

// KindResult is what one kind of datagram drew.
type KindResult struct {
	Kind Kind `json:"kind"`
	Sent int  `json:"sent"` // datagrams sent
	Size int  `json:"size"` // bytes of each
	// Evidence is the strongest Evidence* seen.
	Evidence string `json:"evidence"`
	// Answers counts datagrams from the target, ignored Version
	// Negotiations included (at most maxAnswers);
	// AnswerBytes is the size of the first (at most maxDatagram).
	Answers     int `json:"answers,omitempty"`
	AnswerBytes int `json:"answer_bytes,omitempty"`
	// STUNClass is "success" or "error" when a STUN response with our
	// transaction ID came back.
	STUNClass string `json:"stun_class,omitempty"`
	// VersionNegotiation is a VN* verdict when an answer parsed as QUIC
	// Version Negotiation; VNVersions lists what it offered (capped).
	VersionNegotiation string   `json:"version_negotiation,omitempty"`
	VNVersions         []uint32 `json:"vn_versions,omitempty"`
	// ICMP is the first ICMP error read, if any.
	ICMP *ICMP `json:"icmp,omitempty"`
	// Failure and Operation record a local failure (a socket that could
	// not be made or written), in the failure vocabulary.
	Failure   string `json:"failure,omitempty"`
	Operation string `json:"operation,omitempty"`
}

// Arrived reports whether this kind proved arrival at the target host.
func (k KindResult) Arrived() bool {
	switch k.Evidence {
	case EvidenceAnswer, EvidencePortUnreachable, EvidenceICMPFromTarget:
		return true
	}
	return false
}

// ICMP is one ICMP error a datagram drew.
type ICMP struct {
	Type uint8 `json:"type"`
	Code uint8 `json:"code"`
	// Offender is the address that sent it; FromTarget says it is the
	// target's. Exports must drop Offender: a router near the volunteer
	// identifies them.
	Offender   string `json:"offender"`
	FromTarget bool   `json:"from_target"`
}

// Probe sends the configured kinds to target and returns what each drew.
// Network failures are recorded in the Result; an error is returned only
// for a configuration that cannot make a datagram.
func Probe(ctx context.Context, target netip.AddrPort, cfg Config) (*Result, error) {
	kinds := cfg.Kinds
	if kinds == nil {
		kinds = Kinds
	}
	wires := make([]datagram, len(kinds))
	for i, k := range kinds {
		d, err := newDatagram(k, target, cfg)
		if err != nil {
			return nil, err
		}
		wires[i] = d
	}
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	res := &Result{Target: target, Started: time.Now().UTC(), Kinds: make([]KindResult, len(kinds))}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range kinds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kr, skipped := probeKind(ctx, target, wires[i])
			mu.Lock()
			defer mu.Unlock()
			res.Kinds[i] = kr
			if skipped != "" {
				res.ICMPSkipped = skipped
			}
		}()
	}
	wg.Wait()
	res.Duration = time.Since(res.Started)
	return res, nil
}

// datagram is one kind's bytes and what an answer is checked against.
type datagram struct {
	kind    Kind
	wire    []byte
	stunID  [12]byte // KindSTUN
	initial Initial  // the QUIC kinds
}

// newDatagram builds the datagram of kind k for target.
func newDatagram(k Kind, target netip.AddrPort, cfg Config) (datagram, error) {
	d := datagram{kind: k}
	switch k {
	case KindSTUN:
		m := stunprobe.Message{Type: stunprobe.MessageType(stunprobe.MethodBinding, stunprobe.ClassRequest)}
		copy(m.TransactionID[:], randomBytes(12))
		m.Attributes = []stunprobe.Attribute{{Type: attrPadding, Value: make([]byte, DatagramSize-stunprobe.HeaderSize-4)}}
		d.stunID, d.wire = m.TransactionID, m.Marshal()
	case KindQUICReserved:
		d.initial = NewReservedInitial()
		d.wire = d.initial.Wire
	case KindQUICv1:
		name := cfg.ServerName
		if name == "" {
			name = target.Addr().Unmap().String()
		}
		alpn := cfg.ALPN
		if alpn == nil {
			alpn = []string{"h3"}
		}
		in, err := NewV1Initial(name, alpn)
		if err != nil {
			return d, err
		}
		d.initial, d.wire = in, in.Wire
	case KindRandom:
		d.wire = randomBytes(DatagramSize)
	default:
		return d, errors.New("arrival: unknown datagram kind " + string(k))
	}
	return d, nil
}

// attrPadding is STUN's PADDING attribute (RFC 5780 §7.6).
const attrPadding = 0x0026

// probeKind sends one kind up to Attempts times, until it draws evidence.
// skipped is set when the socket cannot queue ICMP errors.
func probeKind(ctx context.Context, target netip.AddrPort, d datagram) (kr KindResult, skipped string) {
	kr = KindResult{Kind: d.kind, Size: len(d.wire), Evidence: EvidenceSilence}
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "udp", target.String())
	if err != nil {
		kr.Failure, kr.Operation = failure.Classify(err), failure.OpConnect
		return kr, ""
	}
	conn := c.(*net.UDPConn)
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	rc, err := conn.SyscallConn()
	if err != nil {
		kr.Failure, kr.Operation = failure.Classify(err), failure.OpConnect
		return kr, ""
	}
	recvErr := true
	if err := errqueue.Enable(rc, !target.Addr().Unmap().Is4()); err != nil {
		recvErr = false
		skipped = "no IP_RECVERR: " + failure.Scrub(err.Error())
	}
	buf := make([]byte, maxDatagram)
	for kr.Sent < Attempts && ctx.Err() == nil {
		// A write can fail on the ICMP error of the datagram before,
		// which the read below then finds in the queue.
		if _, err := conn.Write(d.wire); err == nil {
			kr.Sent++
		} else if !isICMPErrno(err) {
			kr.Failure, kr.Operation = failure.Classify(err), failure.OpWrite
			return kr, skipped
		}
		_ = conn.SetReadDeadline(time.Now().Add(AttemptInterval))
		for ctx.Err() == nil {
			var ev errqueue.Event
			if recvErr {
				ev, err = errqueue.Read(rc, buf)
			} else {
				ev.N, err = conn.Read(buf)
			}
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) || isICMPErrno(err) {
					break // next attempt; an errno without the queue says nothing of who sent it
				}
				kr.Failure, kr.Operation = failure.Classify(err), failure.OpRead
				return kr, skipped
			}
			if ev.ICMP != nil {
				kr.noteICMP(*ev.ICMP, target.Addr())
			} else {
				kr.noteAnswer(buf[:ev.N], d)
			}
			if kr.Evidence != EvidenceSilence {
				return kr, skipped
			}
		}
	}
	return kr, skipped
}

// isICMPErrno reports the errors a connected UDP socket returns for an
// ICMP error without reading the queue.
func isICMPErrno(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EPROTO)
}

// noteICMP records an ICMP error. Only a destination unreachable from the
// target proves arrival; a time exceeded means a routing loop or a TTL
// too small and proves nothing.
func (kr *KindResult) noteICMP(m errqueue.Message, target netip.Addr) {
	if !m.IsICMP() {
		return // a local error (e.g. EMSGSIZE) is not the network's answer
	}
	fromTarget := m.Offender.IsValid() && m.Offender.Unmap() == target.Unmap()
	if kr.ICMP == nil {
		kr.ICMP = &ICMP{Type: m.Type, Code: m.Code, Offender: m.Offender.Unmap().String(), FromTarget: fromTarget}
	}
	switch {
	case fromTarget && m.PortUnreachable():
		kr.Evidence = EvidencePortUnreachable
	case fromTarget && m.DestUnreachable():
		kr.Evidence = EvidenceICMPFromTarget
	case !fromTarget && m.DestUnreachable():
		kr.Evidence = EvidenceICMPFromOther
	}
}

// noteAnswer records a datagram from the target (the socket is connected,
// so the kernel delivers nothing else) and what it parses as.
func (kr *KindResult) noteAnswer(b []byte, d datagram) {
	if kr.Answers < maxAnswers {
		kr.Answers++
	}
	if kr.AnswerBytes == 0 {
		kr.AnswerBytes = len(b)
	}
	switch d.kind {
	case KindSTUN:
		if m, err := stunprobe.ParseMessage(b); err == nil && m.TransactionID == d.stunID {
			if c := m.Class(); c == stunprobe.ClassSuccess || c == stunprobe.ClassError {
				kr.STUNClass = c.String()
			}
		}
	case KindQUICReserved, KindQUICv1:
		if vn, err := ParseVersionNegotiation(b); err == nil {
			verdict := vn.Check(d.initial.DCID, d.initial.SCID, d.initial.Version)
			if kr.VersionNegotiation != VNValid {
				kr.VersionNegotiation, kr.VNVersions = verdict, vn.Versions
			}
			if verdict != VNValid {
				return // ignored (RFC 9000 §6.2, §17.2.1): not evidence
			}
		}
	}
	kr.Evidence = EvidenceAnswer
}
