package main

import (
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

func TestTracePayload(t *testing.T) {
	flow := func(network, payload string) measurements.TraceFlow {
		return measurements.TraceFlow{Network: network, Payload: payload}
	}
	tests := []struct {
		test, control measurements.TraceFlow
		want          string
	}{
		{flow("udp", ""), flow("tcp", ""), ""},
		{flow("udp", "quic_v1"), flow("tcp", ""), " of quic_v1"},
		{flow("udp", "quic_v1"), flow("udp", "quic_v1"), " of quic_v1"},
		{flow("udp", "stun"), flow("udp", "quic_reserved_version"), " of stun (control quic_reserved_version)"},
	}
	for _, tt := range tests {
		if got := tracePayload(&measurements.TraceDetails{Test: tt.test, Control: tt.control}); got != tt.want {
			t.Errorf("tracePayload(%+v, %+v) = %q, want %q", tt.test, tt.control, got, tt.want)
		}
	}
}
