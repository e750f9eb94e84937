package analysis

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// group builds n endpoints of one group, the first candidates of them
// showing method after tries tries. Each endpoint is its own server (its
// own /24) unless shared puts them all in one /24.
func group(n, candidates, tries int, method string, lossLike, shared bool) []*judged {
	var out []*judged
	for i := 0; i < n; i++ {
		addr := netip.AddrFrom4([4]byte{17, 57, byte(i), 10})
		if shared {
			addr = netip.AddrFrom4([4]byte{17, 57, 146, byte(10 + i)})
		}
		r := &judged{
			v:       EndpointVerdict{Target: fmt.Sprintf("t%d", i), Group: "push", Address: addr.String(), Port: 443, Attempts: tries, Verdict: VerdictOK},
			e:       &endpointObs{key: endpointKey{kind: transportTLS, address: addr.String()}, addr: addr},
			counted: true,
			tries:   tries,
		}
		if i < candidates {
			r.candidate, r.lossLike, r.v.Verdict = method, lossLike, ""
		}
		out = append(out, r)
	}
	return out
}

func TestCorroborate(t *testing.T) {
	tests := []struct {
		name        string
		n, cands    int
		tries       int
		method      string
		lossLike    bool
		shared      bool
		unstable    bool
		lossRate    float64
		wantBlocked int
		wantVerdict string // of the first endpoint, when set
	}{
		{"confirmed, independent servers agree", 6, 2, 2, MethodSNIFiltering, false, false, false, 0, 2, VerdictBlocked},
		{"one pass only, independent servers agree: not enough", 6, 2, 1, MethodSNIFiltering, false, false, false, 0, 0, VerdictInconclusive},
		{"confirmed on one server alone among independent ones: not enough", 6, 1, 3, MethodSNIFiltering, false, false, false, 0, 0, VerdictInconclusive},
		{"confirmed, every server in one /24: confirmation stands in", 4, 4, 2, MethodSNIFiltering, false, true, false, 0, 4, VerdictBlocked},
		{"confirmed, every server in one /24, two of six show it", 6, 2, 2, MethodSNIFiltering, false, true, false, 0, 2, VerdictBlocked},
		{"refusals on one cluster, confirmed: a server problem", 4, 4, 2, MethodTCPRefused, false, true, false, 0, 0, VerdictFailed},
		{"refusals on independent servers, confirmed", 4, 3, 2, MethodTCPRefused, false, false, false, 0, 3, VerdictBlocked},
		{"bare silence everywhere, confirmed: unreachable", 4, 4, 2, MethodTCPTimeout, true, false, false, 0, 0, VerdictUnreachable},
		{"confirmed silence on a minority", 6, 3, 2, MethodSNIFiltering, true, false, false, 0, 0, VerdictInconclusive},
		{"confirmed silence on a majority", 6, 4, 2, MethodSNIFiltering, true, false, false, 0, 4, VerdictBlocked},
		{"lossy, silence everywhere but too few tries", 4, 4, 2, MethodSNIFiltering, true, false, true, 0.2, 0, VerdictInconclusive},
		{"lossy, silence everywhere in enough tries", 4, 4, 3, MethodSNIFiltering, true, false, true, 0.2, 4, VerdictBlocked},
		{"lossy, silence on most but not all", 6, 5, 3, MethodSNIFiltering, true, false, true, 0.2, 0, VerdictInconclusive},
		{"lossy, resets corroborated", 6, 2, 3, MethodSNIFiltering, false, false, true, 0.2, 2, VerdictBlocked},
		{"lossy, a lone reset", 6, 1, 3, MethodSNIFiltering, false, false, true, 0.2, 0, VerdictInconclusive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := group(tt.n, tt.cands, tt.tries, tt.method, tt.lossLike, tt.shared)
			corroborate(rs, &netState{unstable: tt.unstable, lossRate: tt.lossRate}, true)
			blocked := 0
			for _, r := range rs {
				if r.v.Verdict == VerdictBlocked {
					blocked++
				}
				if r.candidate != "" && r.v.Verdict != VerdictBlocked && r.v.Suspected != r.candidate {
					t.Errorf("%s endpoint suspects %q, want %q", r.v.Verdict, r.v.Suspected, r.candidate)
				}
			}
			if blocked != tt.wantBlocked {
				t.Errorf("blocked = %d, want %d", blocked, tt.wantBlocked)
			}
			if got := rs[0].v.Verdict; got != tt.wantVerdict {
				t.Errorf("first endpoint = %s (%s), want %s", got, rs[0].v.Evidence, tt.wantVerdict)
			}
		})
	}
}

func TestLossChance(t *testing.T) {
	tests := []struct {
		rate  float64
		tries int
		ok    bool // below maxLossChance
	}{
		{0.2, 8, false},
		{0.2, 9, true},
		{0.01, 4, false}, // the floor: a low estimate is not trusted
		{0.01, 5, true},
		{0.5, 19, false},
		{0.5, 20, true},
	}
	for _, tt := range tests {
		if got := lossChance(tt.rate, tt.tries) <= maxLossChance; got != tt.ok {
			t.Errorf("lossChance(%v, %d) = %g: below the bound %v, want %v", tt.rate, tt.tries, lossChance(tt.rate, tt.tries), got, tt.ok)
		}
	}
}

func targets(verdicts ...string) []*targetJudgement {
	var out []*targetJudgement
	for i, v := range verdicts {
		tj := &targetJudgement{t: &measurements.Target{Name: fmt.Sprintf("t%d", i), Host: fmt.Sprintf("h%d.example", i)}}
		tj.tv = TargetVerdict{Target: tj.t.Name, Host: tj.t.Host, Verdict: v, Reason: "r"}
		switch v {
		case VerdictBlocked, VerdictDegraded:
			tj.tv.Method = MethodSNIFiltering
		case "absent":
			tj.tv.Verdict, tj.absent = VerdictFailed, true
		}
		out = append(out, tj)
	}
	return out
}

func TestJudgeService(t *testing.T) {
	steady := &netState{status: NetworkOK}
	tests := []struct {
		name     string
		targets  []*targetJudgement
		ns       *netState
		repeats  int
		want     string
		wantConf string
	}{
		{"all ok", targets("ok", "ok", "ok"), steady, 3, VerdictOK, "high"},
		{"all ok, measured once", targets("ok", "ok", "ok"), steady, 1, VerdictOK, "medium"},
		{"most blocked, one working", targets("blocked", "blocked", "ok"), steady, 1, VerdictBlocked, "medium"},
		{"one of three blocked", targets("blocked", "ok", "ok"), steady, 1, VerdictDegraded, "medium"},
		{"a degraded host", targets("degraded", "ok"), steady, 1, VerdictDegraded, "medium"},
		{"all blocked, repeated", targets("blocked", "blocked"), steady, 3, VerdictBlocked, "high"},
		{"blocked minority, rest undecided", targets("blocked", "inconclusive", "inconclusive"), steady, 1, VerdictInconclusive, "low"},
		{"names that do not exist are left out", targets("absent", "ok"), steady, 1, VerdictOK, "medium"},
		{"only names that do not exist", targets("absent", "absent"), steady, 1, VerdictInconclusive, "low"},
		{"all failing: an outage", targets("failed", "failed"), steady, 1, VerdictFailed, "low"},
		{"no connectivity: never blocked", targets("blocked", "blocked"), &netState{status: NetworkNoConnectivity, noConnectivity: true}, 1, VerdictInconclusive, "low"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sv := judgeService(measurements.GroupPush, tt.targets, tt.ns, tt.repeats)
			if sv.Verdict != tt.want || sv.Confidence.Level != tt.wantConf {
				t.Errorf("verdict = %s (confidence %s, %s), want %s (confidence %s)", sv.Verdict, sv.Confidence.Level, sv.Reason, tt.want, tt.wantConf)
			}
			if (sv.Verdict == VerdictBlocked || sv.Verdict == VerdictDegraded) != (len(sv.Methods) > 0) {
				t.Errorf("verdict %s with methods %v", sv.Verdict, sv.Methods)
			}
		})
	}
}

func TestJudgeApps(t *testing.T) {
	svc := func(pairs ...string) []ServiceVerdict {
		var out []ServiceVerdict
		for i := 0; i+1 < len(pairs); i += 2 {
			out = append(out, ServiceVerdict{Service: pairs[i], Title: serviceTitles[pairs[i]], Verdict: pairs[i+1], Reason: "r",
				Methods: []string{MethodUDPTimeout}})
		}
		return out
	}
	tests := []struct {
		name               string
		services           []ServiceVerdict
		imessage, facetime string
	}{
		{"all ok", svc("push", "ok", "identity", "ok", "call", "ok"), AppWorking, AppWorking},
		{"calls blocked (the Russian pattern)", svc("push", "ok", "identity", "ok", "call", "blocked"), AppWorking, AppBlocked},
		{"push degraded", svc("push", "degraded", "identity", "ok", "call", "ok"), AppDegraded, AppDegraded},
		{"identity failing", svc("push", "ok", "identity", "failed", "call", "ok"), AppDown, AppDown},
		{"blocked outranks down", svc("push", "blocked", "identity", "failed", "call", "ok"), AppBlocked, AppBlocked},
		{"calls undecided", svc("push", "ok", "identity", "ok", "call", "inconclusive"), AppWorking, AppInconclusive},
		{"calls not measured", svc("push", "ok", "identity", "ok"), AppWorking, AppInconclusive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apps := judgeApps(tt.services)
			if len(apps) != 2 || apps[0].Verdict != tt.imessage || apps[1].Verdict != tt.facetime {
				t.Errorf("apps = %+v, want imessage %s, facetime %s", apps, tt.imessage, tt.facetime)
			}
		})
	}
}
