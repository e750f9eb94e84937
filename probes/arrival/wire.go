package arrival

import "net/netip"

// Wire returns one datagram of kind k for target, DatagramSize bytes, as
// Probe sends it: for a trace whose probes must be what a filter of that
// kind drops (probes/pathprobe's Flow.Payload).
func Wire(k Kind, target netip.AddrPort) ([]byte, error) {
	d, err := newDatagram(k, target, Config{})
	return d.wire, err
}
