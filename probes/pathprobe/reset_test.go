package pathprobe

import (
	"strings"
	"testing"
)

func TestDecideReset(t *testing.T) {
	try := func(ttl int, role, outcome string) ResetTry {
		return ResetTry{TTL: ttl, Role: role, Outcome: outcome}
	}
	tests := []struct {
		name      string
		tries     []ResetTry
		wantKnown bool
		wantTTL   int
		wantHop   int
		reason    string
	}{
		{"reset from TTL 3, control silent", []ResetTry{
			try(1, RoleControl, OutcomeSilence), try(1, RoleTest, OutcomeSilence),
			try(2, RoleControl, OutcomeSilence), try(2, RoleTest, OutcomeSilence),
			try(3, RoleControl, OutcomeSilence), try(3, RoleTest, OutcomeReset),
		}, true, 3, 2, "past hop 2"},
		{"control reset too: the server or an IP block", []ResetTry{
			try(1, RoleControl, OutcomeReset), try(1, RoleTest, OutcomeReset),
		}, false, 0, 0, "control ClientHello is reset too"},
		{"control's connect failed at that TTL", []ResetTry{
			try(1, RoleControl, OutcomeSilence), try(1, RoleTest, OutcomeSilence),
			try(2, RoleControl, OutcomeConnectFailed), try(2, RoleTest, OutcomeReset),
		}, false, 0, 0, "residual"},
		{"no reset at all", []ResetTry{
			try(1, RoleControl, OutcomeSilence), try(1, RoleTest, OutcomeSilence),
			try(2, RoleControl, OutcomeData), try(2, RoleTest, OutcomeData),
		}, false, 0, 0, "no TTL-limited"},
		{"the smallest resetting TTL counts", []ResetTry{
			try(4, RoleControl, OutcomeSilence), try(4, RoleTest, OutcomeReset),
			try(2, RoleControl, OutcomeSilence), try(2, RoleTest, OutcomeReset),
		}, true, 2, 1, ""},
		{"a residual block on the control, waited out", []ResetTry{
			try(1, RoleControl, OutcomeConnectFailed), try(1, RoleControl, OutcomeSilence), try(1, RoleTest, OutcomeSilence),
			try(2, RoleControl, OutcomeReset), try(2, RoleControl, OutcomeData), try(2, RoleTest, OutcomeReset),
		}, true, 2, 1, "past hop 1"},
		{"a residual block that outlasts the waits", []ResetTry{
			try(1, RoleControl, OutcomeData), try(1, RoleControl, OutcomeConnectFailed), try(1, RoleTest, OutcomeReset),
		}, false, 0, 0, "residual"},
		{"no control at the resetting TTL", []ResetTry{
			try(2, RoleTest, OutcomeReset),
		}, false, 0, 0, "no control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DecideReset(tt.tries)
			if got.Known != tt.wantKnown || got.ResetTTL != tt.wantTTL || got.Hop != tt.wantHop {
				t.Fatalf("DecideReset = %+v, want known %v, TTL %d, hop %d", got, tt.wantKnown, tt.wantTTL, tt.wantHop)
			}
			if !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("reason %q lacks %q", got.Reason, tt.reason)
			}
		})
	}
}
