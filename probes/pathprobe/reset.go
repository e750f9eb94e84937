package pathprobe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/reachprobe/reachprobe/probes/failure"
)

// Defaults of a reset trace.
const (
	// DefaultResetReadTimeout is the wait for the answer to a
	// TTL-limited ClientHello. Below the injector nothing comes back
	// (TCP retransmits the ClientHello with the same TTL meanwhile, so a
	// lost one is sent again): the wait is the price of each TTL.
	DefaultResetReadTimeout = 1500 * time.Millisecond
	// DefaultResetMaxTTL is the farthest TTL tried when the caller does
	// not know the destination's hop from a trace.
	DefaultResetMaxTTL = 16
	// resetConnectTimeout bounds each try's TCP handshake.
	resetConnectTimeout = 5 * time.Second
	// maxHelloAnswer caps what is read of an answer: one byte tells that
	// the server answered.
	maxHelloAnswer = 64
	// DefaultResidualWait is the pause before a control try is made again
	// when it met what looks like a residual block (its connection failed
	// or was reset): censors keep blocking a server for a while after a
	// trigger, here possibly the run's own confirmation handshake.
	// CenTrace waited such blocks out between tries; 15 s outlasts short
	// ones and, with MaxResidualWaits, keeps a trace within the run's
	// DefaultMaxDuration.
	DefaultResidualWait = 15 * time.Second
	// MaxResidualWaits bounds the pauses of one reset trace; a block that
	// outlasts them leaves the place unknown (DecideReset says why).
	MaxResidualWaits = 2
)

// Outcomes of one ClientHello try.
const (
	OutcomeReset   = "reset"   // the connection was reset
	OutcomeEOF     = "eof"     // closed with a FIN
	OutcomeData    = "data"    // bytes came back: the ClientHello reached a server
	OutcomeSilence = "silence" // nothing within the wait
	// OutcomeConnectFailed: the TCP handshake itself failed (a residual
	// block after an earlier reset looks like this).
	OutcomeConnectFailed = "connect_failed"
)

// ResetConfig is one reset trace.
type ResetConfig struct {
	Dst netip.AddrPort
	// Hello is the TLS record carrying the ClientHello that draws the
	// reset (the target's server name); ControlHello the same with a
	// control server name. See ClientHello.
	Hello, ControlHello []byte
	// MaxTTL is the last TTL tried; set it to the destination's hop from
	// a Trace when known. 0 means DefaultResetMaxTTL.
	MaxTTL int
	// Budget is the run's; nil gives the trace one of its own.
	Budget *Budget
	// ReadTimeout is DefaultResetReadTimeout when zero.
	ReadTimeout time.Duration
	// ResidualWait is DefaultResidualWait when zero, no wait when
	// negative.
	ResidualWait time.Duration
}

// ResetTry is one TTL-limited ClientHello.
type ResetTry struct {
	TTL     int    `json:"ttl"`
	Role    string `json:"role"` // RoleTest or RoleControl
	Outcome string `json:"outcome"`
	// Failure is the connect's failure for OutcomeConnectFailed.
	Failure string        `json:"failure,omitempty"`
	After   time.Duration `json:"after"` // from the ClientHello to the outcome
}

// ResetTrace is the record of one reset trace.
type ResetTrace struct {
	Tries []ResetTry `json:"tries"`
	// Known, ResetTTL and Hop come from DecideReset.
	Known bool `json:"known"`
	// ResetTTL is the smallest TTL whose ClientHello drew the reset.
	ResetTTL int `json:"reset_ttl,omitempty"`
	// Hop is the last router the ClientHello passed before the injector,
	// ResetTTL-1, numbered as Stop.Hop: an injector in a router's
	// forwarding path (Linux's FORWARD chain) is that router itself.
	Hop int `json:"hop,omitempty"`
	// ServerTTL is the smallest TTL at which the control ClientHello drew
	// the server's answer: the server's hop (0: never seen). After the
	// test's reset the control alone goes on until it does, since a
	// control ClientHello triggers nothing.
	ServerTTL int           `json:"server_ttl,omitempty"`
	Reason    string        `json:"reason"`
	Duration  time.Duration `json:"duration"`
	Skipped   string        `json:"skipped,omitempty"`
	// Failure is an interruption, in failure's vocabulary; BudgetSpent
	// says the run's Budget ran out before the sweep ended.
	Failure     string `json:"failure,omitempty"`
	BudgetSpent bool   `json:"budget_spent,omitempty"`
}

// RunReset sends, at increasing TTLs, the control ClientHello and then
// the test one, each on a new TCP connection made with the normal TTL,
// and stops at the first TTL where the test draws a reset, or where the
// control reaches the server without the test drawing one (farther TTLs
// reach the same server). The control goes first, so that a residual
// block set off by the test's reset cannot spoil it; after the reset only
// control ClientHellos go on, to find the server's hop (ServerTTL). A
// control that meets what looks like a residual block is sent again after
// ResidualWait. A failure is recorded, never returned.
func RunReset(ctx context.Context, cfg ResetConfig) *ResetTrace {
	start := time.Now()
	rt := &ResetTrace{}
	defer func() { rt.Duration = time.Since(start) }()
	if cfg.Budget == nil {
		cfg.Budget = NewDefaultBudget()
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = DefaultResetMaxTTL
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultResetReadTimeout
	}
	if cfg.ResidualWait == 0 {
		cfg.ResidualWait = DefaultResidualWait
	}
	release, err := cfg.Budget.acquire(ctx)
	if err != nil {
		rt.Failure, rt.Reason = failure.Classify(err), "not traced"
		return rt
	}
	defer release()
	sw := &sweep{cfg: cfg, rt: rt}
	for ttl := 1; ttl <= cfg.MaxTTL; ttl++ {
		ctl, ok := sw.send(ctx, RoleControl, ttl)
		if !ok {
			return rt
		}
		test, ok := sw.send(ctx, RoleTest, ttl)
		if !ok {
			return rt
		}
		if ctl.Outcome == OutcomeData && rt.ServerTTL == 0 {
			rt.ServerTTL = ttl
		}
		if test.Outcome == OutcomeReset {
			// The server's hop, if not reached yet: the control alone
			// goes on (it triggers nothing) until the server answers.
			for next := ttl + 1; rt.ServerTTL == 0 && next <= cfg.MaxTTL; next++ {
				c, ok := sw.send(ctx, RoleControl, next)
				if !ok {
					return rt
				}
				if c.Outcome == OutcomeData {
					rt.ServerTTL = next
				}
			}
			break
		}
		if rt.ServerTTL != 0 {
			// Both reached the server and the name drew no reset: farther
			// TTLs reach the same server.
			break
		}
	}
	rt.decide()
	return rt
}

// sweep sends the ClientHellos of one reset trace.
type sweep struct {
	cfg   ResetConfig
	rt    *ResetTrace
	waits int
}

// send sends role's ClientHello at ttl and records it; a control that met
// a residual block is sent again after ResidualWait, up to
// MaxResidualWaits times a trace. It returns false when the trace ends
// (the budget, ctx, or a system that cannot set the TTL), rt then
// decided.
func (sw *sweep) send(ctx context.Context, role string, ttl int) (ResetTry, bool) {
	cfg, rt := sw.cfg, sw.rt
	for {
		if err := cfg.Budget.take(ctx); err != nil {
			if errors.Is(err, ErrBudgetExhausted) {
				rt.BudgetSpent = true
			} else {
				rt.Failure = failure.Classify(err)
			}
			rt.decide()
			return ResetTry{}, false
		}
		hello := cfg.Hello
		if role == RoleControl {
			hello = cfg.ControlHello
		}
		try, err := helloTry(ctx, cfg.Dst, hello, ttl, cfg.ReadTimeout)
		if errors.Is(err, errUnsupported) {
			rt.Skipped, rt.Reason = SkipNoRecvErr, "not traced: the TTL of a connected socket cannot be set here"
			return ResetTry{}, false
		}
		try.Role = role
		rt.Tries = append(rt.Tries, try)
		if role != RoleControl || !residual(try) || cfg.ResidualWait <= 0 || sw.waits >= MaxResidualWaits {
			return try, true
		}
		// A residual block: wait it out, then the control again.
		sw.waits++
		if err := sleep(ctx, cfg.ResidualWait); err != nil {
			rt.Failure = failure.Classify(err)
			rt.decide()
			return ResetTry{}, false
		}
	}
}

// residual reports a control try that met what a residual block does:
// a failed connection, or a reset of the control server name.
func residual(t ResetTry) bool {
	return t.Outcome == OutcomeConnectFailed || t.Outcome == OutcomeReset
}

func (rt *ResetTrace) decide() {
	d := DecideReset(rt.Tries)
	rt.Known, rt.ResetTTL, rt.Hop, rt.Reason = d.Known, d.ResetTTL, d.Hop, d.Reason
}

// DecideReset reads the tries of a reset trace: the injector is placed
// when the smallest TTL at which the test ClientHello drew a reset is one
// at which the control ClientHello, sent just before, did not, and no
// smaller TTL reset the test.
func DecideReset(tries []ResetTry) ResetTrace {
	first := 0
	for _, t := range tries {
		if t.Role == RoleTest && t.Outcome == OutcomeReset && (first == 0 || t.TTL < first) {
			first = t.TTL
		}
	}
	if first == 0 {
		return ResetTrace{Reason: "no TTL-limited ClientHello drew a reset"}
	}
	// The control's last try at that TTL: an earlier one may have met a
	// residual block that was then waited out.
	var ctl *ResetTry
	for i, t := range tries {
		if t.Role == RoleControl && t.TTL == first {
			ctl = &tries[i]
		}
	}
	if ctl != nil {
		t := *ctl
		switch t.Outcome {
		case OutcomeReset:
			return ResetTrace{Reason: fmt.Sprintf("the control ClientHello is reset too at TTL %d: not triggered by the server name", first)}
		case OutcomeConnectFailed:
			return ResetTrace{Reason: fmt.Sprintf("the control's connection failed at TTL %d (a residual block?)", first)}
		}
		return ResetTrace{Known: true, ResetTTL: first, Hop: first - 1,
			Reason: fmt.Sprintf("the ClientHello draws a reset from TTL %d on, the control's does not: the injector is past hop %d", first, first-1)}
	}
	return ResetTrace{Reason: fmt.Sprintf("no control ClientHello at TTL %d to compare with", first)}
}

// helloTry connects to dst with the normal TTL, lowers it to ttl and
// sends hello, and records what came back within wait.
func helloTry(ctx context.Context, dst netip.AddrPort, hello []byte, ttl int, wait time.Duration) (ResetTry, error) {
	try := ResetTry{TTL: ttl}
	v6 := !dst.Addr().Unmap().Is4()
	d := net.Dialer{Timeout: resetConnectTimeout}
	if v6 {
		// The path must stay one across tries: pin the flow label.
		d.Control = func(_, _ string, rc syscall.RawConn) error { return pinConnFlowLabel(rc) }
	}
	c, err := d.DialContext(ctx, "tcp", dst.String())
	if err != nil {
		try.Outcome, try.Failure = OutcomeConnectFailed, failure.Classify(err)
		return try, nil
	}
	conn := c.(*net.TCPConn)
	defer func() {
		_ = conn.SetLinger(0) // a reset: no TIME_WAIT, no FIN to the injector
		conn.Close()
	}()
	if err := setConnTTL(conn, v6, ttl); err != nil {
		return try, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	start := time.Now()
	_ = conn.SetDeadline(start.Add(wait))
	_, err = conn.Write(hello)
	if err == nil {
		var buf [maxHelloAnswer]byte
		var n int
		n, err = conn.Read(buf[:])
		if n > 0 {
			try.Outcome, try.After = OutcomeData, time.Since(start)
			return try, nil
		}
	}
	try.After = time.Since(start)
	switch {
	case err == nil:
		try.Outcome = OutcomeSilence
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		try.Outcome = OutcomeReset
	case errors.Is(err, io.EOF):
		try.Outcome = OutcomeEOF
	case errors.Is(err, os.ErrDeadlineExceeded):
		try.Outcome = OutcomeSilence
	default:
		try.Outcome, try.Failure = OutcomeSilence, failure.Classify(err)
	}
	return try, nil
}

// ClientHello returns the first TLS record crypto/tls sends for a
// handshake with serverName offering alpn: the bytes a ResetConfig sends.
// serverName travels in clear, which is what an SNI filter matches.
func ClientHello(ctx context.Context, serverName string, alpn []string) ([]byte, error) {
	client, server := net.Pipe()
	defer server.Close()
	tc := tls.Client(client, &tls.Config{ServerName: serverName, NextProtos: alpn, InsecureSkipVerify: true})
	go func() {
		_ = tc.HandshakeContext(ctx) // fails once the pipe closes
		client.Close()
	}()
	// A record header, then its body.
	head := make([]byte, 5)
	if _, err := io.ReadFull(server, head); err != nil {
		return nil, err
	}
	body := make([]byte, int(head[3])<<8|int(head[4]))
	if _, err := io.ReadFull(server, body); err != nil {
		return nil, err
	}
	return append(head, body...), nil
}
