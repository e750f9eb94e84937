package dnsprobe

import (
	"fmt"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

func TestLateAddresses(t *testing.T) {
	a := func(data ...string) []measurements.DNSAnswer {
		var out []measurements.DNSAnswer
		for _, d := range data {
			out = append(out, measurements.DNSAnswer{Name: "x.", Type: "A", Data: d})
		}
		return out
	}
	obs := []*measurements.Observation{
		{Step: measurements.StepDNS, DNS: &measurements.DNSDetails{Answers: a("17.0.0.1"), Late: []measurements.DNSResponse{
			{Rcode: "NOERROR", Answers: a("17.0.0.1", "104.16.0.9")},
			{Rcode: "NOERROR", Answers: a("104.16.0.9", "46.82.174.68", "1.0.0.1", "1.0.0.2", "1.0.0.3")},
		}}},
		{Step: measurements.StepDNS, DNS: &measurements.DNSDetails{Answers: a("1.0.0.3")}},
		{Step: measurements.StepTCP},
	}
	got := fmt.Sprint(LateAddresses(obs))
	// 1.0.0.3 came first elsewhere; five others, capped at four.
	if want := "[1.0.0.1 1.0.0.2 46.82.174.68 104.16.0.9]"; got != want {
		t.Errorf("LateAddresses = %s, want %s", got, want)
	}
	if got := LateAddresses(obs[1:]); len(got) != 0 {
		t.Errorf("LateAddresses without late responses = %v, want none", got)
	}
}
