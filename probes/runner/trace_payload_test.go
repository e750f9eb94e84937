package runner

import (
	"net/netip"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/arrival"
)

// TestPayloadKind: each arrival kind's datagram is recorded by its name;
// zeros and random bytes as nothing.
func TestPayloadKind(t *testing.T) {
	target := netip.MustParseAddrPort("17.133.234.20:3478")
	for _, tt := range []struct {
		kind arrival.Kind
		want string
	}{
		{arrival.KindSTUN, measurements.ArrivalSTUN},
		{arrival.KindQUICReserved, measurements.ArrivalQUICReserved},
		{arrival.KindQUICv1, measurements.ArrivalQUICv1},
	} {
		b, err := arrival.Wire(tt.kind, target)
		if err != nil {
			t.Fatal(err)
		}
		if got := payloadKind(b); got != tt.want {
			t.Errorf("payloadKind(%s) = %q, want %q", tt.kind, got, tt.want)
		}
	}
	if got := payloadKind(make([]byte, 32)); got != "" {
		t.Errorf("payloadKind(zeros) = %q, want \"\"", got)
	}
}

// TestPayloadFlows: a payload trace's test flow carries the kind, its
// same-address control the reserved Initial on the same port, and the
// control address gets the kind; an unknown kind makes no trace.
func TestPayloadFlows(t *testing.T) {
	tr := TraceRequest{Test: netip.MustParseAddrPort("17.133.234.20:3478"), Control: netip.MustParseAddr("104.22.40.3"), Payload: measurements.ArrivalSTUN}
	test, same, control, ok := payloadFlows(tr)
	if !ok {
		t.Fatal("no flows")
	}
	if test.Network != "udp" || test.Dst != tr.Test || payloadKind(test.Payload) != measurements.ArrivalSTUN {
		t.Errorf("test flow %+v", test)
	}
	if same.Network != "udp" || same.Dst != tr.Test || payloadKind(same.Payload) != measurements.ArrivalQUICReserved {
		t.Errorf("same-address control %+v", same)
	}
	if payloadKind(control) != measurements.ArrivalSTUN {
		t.Errorf("control payload is %q", payloadKind(control))
	}
	tr.Payload = "nonsense"
	if _, _, _, ok := payloadFlows(tr); ok {
		t.Error("flows for an unknown kind")
	}
}

// TestQUICPayloads: a QUIC endpoint's trace carries QUIC v1 Initials,
// toward the control too; none for the control when there is none.
func TestQUICPayloads(t *testing.T) {
	mask := &measurements.Target{Name: "mask", ServerName: "mask.icloud.com", ALPN: []string{"h3"}}
	ctl := &measurements.Target{Name: "control-google-quic", ServerName: "www.google.com", ALPN: []string{"h3"}}
	test, control := quicPayloads(mask, ctl)
	if payloadKind(test) != measurements.ArrivalQUICv1 || payloadKind(control) != measurements.ArrivalQUICv1 || len(test) != arrival.DatagramSize {
		t.Errorf("payloads %q (%d bytes), %q", payloadKind(test), len(test), payloadKind(control))
	}
	if _, control := quicPayloads(mask, nil); control != nil {
		t.Error("a control payload without a control target")
	}
}
