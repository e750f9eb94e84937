package runner

import (
	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/arrival"
)

// quicPayloads returns what each UDP probe of a QUIC endpoint's traces
// carries: a QUIC v1 Initial for the target's server name and ALPN, so a
// filter of QUIC (by address, by version or by server name) drops the
// probes as it drops the handshake; and for the flow toward the control
// address, the same toward the control target's name, so the two flows
// differ only in where they go. control is nil when ctl is. A failure to
// build an Initial leaves the payloads nil: the trace then sends zeros.
func quicPayloads(t, ctl *measurements.Target) (test, control []byte) {
	build := func(t *measurements.Target) []byte {
		alpn := t.ALPN
		if len(alpn) == 0 {
			alpn = []string{"h3"}
		}
		in, err := arrival.NewV1Initial(t.ServerName, alpn)
		if err != nil {
			return nil
		}
		return in.Wire
	}
	test = build(t)
	if ctl != nil && test != nil {
		control = build(ctl)
	}
	return test, control
}
