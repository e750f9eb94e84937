package tlsprobe

import (
	"net"
	"sync"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
)

// firstBytesConn keeps the first bytes read from a connection, up to
// failure.MaxEvidenceBytes, so that a handshake answered by something
// other than TLS (a block page, a captive portal) leaves its answer as
// evidence.
type firstBytesConn struct {
	net.Conn
	mu    sync.Mutex
	first []byte
}

func (c *firstBytesConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.record(p[:n])
	return n, err
}

// record keeps what fits of b under the cap.
func (c *firstBytesConn) record(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := failure.MaxEvidenceBytes - len(c.first); room > 0 {
		c.first = append(c.first, b[:min(len(b), room)]...)
	}
}

// bytes returns a copy of what was read first.
func (c *firstBytesConn) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.first) == 0 {
		return nil
	}
	return append([]byte(nil), c.first...)
}

// recordFailure classifies a failed handshake and keeps the evidence the
// peer's answer carries: the alert it sent, or its first bytes when they
// are not TLS.
func recordFailure(obs *measurements.Observation, err error, first []byte) {
	obs.Failure = failure.ClassifyHandshake(err, first)
	obs.Operation = failure.OpTLSHandshake
	obs.TLS.Alert = failure.TLSAlert(err)
	if len(first) > 0 && !failure.LooksLikeTLS(first) {
		obs.TLS.ServerBytes = first
	}
}
