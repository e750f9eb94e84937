package runner

import (
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/tlsprobe"
)

func TestAppleFor(t *testing.T) {
	custom := &tlsprobe.AppleTrust{}
	tests := []struct {
		name  string
		apple *tlsprobe.AppleTrust
		group string
		want  *tlsprobe.AppleTrust
	}{
		{"push, embedded", nil, measurements.GroupPush, tlsprobe.EmbeddedApple()},
		{"identity, replaced", custom, measurements.GroupIdentity, custom},
		{"quic, replaced", custom, measurements.GroupQUIC, custom},
		{"control, never", custom, measurements.GroupControl, nil},
		{"control, default", nil, measurements.GroupControl, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Runner{Apple: tt.apple}
			if got := r.appleFor(&measurements.Target{Group: tt.group}); got != tt.want {
				t.Errorf("appleFor(%s) = %p, want %p", tt.group, got, tt.want)
			}
		})
	}
}
