//go:build !linux

package pathprobe

import (
	"context"
	"net"
	"syscall"
	"time"
)

type prober interface {
	probe(ctx context.Context, ttl int, wait time.Duration) (Hop, error)
	close()
}

type errNoRecvErr struct{ err error }

func (e errNoRecvErr) Error() string { return "IP_RECVERR unavailable: " + e.err.Error() }

// newProber fails everywhere but Linux: no ordinary socket there reads
// the ICMP errors of its packets with their sender.
func newProber(ctx context.Context, f Flow) (prober, error) { return nil, errUnsupported }

func setConnTTL(conn *net.TCPConn, v6 bool, ttl int) error { return errUnsupported }

func pinConnFlowLabel(rc syscall.RawConn) error { return errUnsupported }
