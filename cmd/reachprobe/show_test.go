package main

import (
	"strings"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

func TestResultSaysHowAWindowEnded(t *testing.T) {
	dns := func(cut string) *measurements.Observation {
		return &measurements.Observation{Step: measurements.StepDNS, DNS: &measurements.DNSDetails{
			Answers:  []measurements.DNSAnswer{{Type: "A", Data: "17.57.144.21"}},
			Listened: 12300 * time.Microsecond, ListenCut: cut,
		}}
	}
	tests := []struct {
		cut, want string
	}{
		{"", "ok 17.57.144.21"},
		{measurements.ListenCutControlAgrees, "ok 17.57.144.21 (listened 12ms: the first answer agrees with encrypted DNS)"},
		{measurements.ListenCutHandshakeVerified, "ok 17.57.144.21 (listened 12ms: a handshake verified at the first answer)"},
		{"\x1b[2Jsomething else", "ok 17.57.144.21 (listened 12ms: cut short)"},
	}
	for _, tt := range tests {
		if got := result(dns(tt.cut)); got != tt.want || strings.ContainsRune(got, 0x1b) {
			t.Errorf("result with ListenCut %q = %q, want %q", tt.cut, got, tt.want)
		}
	}
}
