package dnsprobe

import (
	"context"
	"net"
	"slices"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// goResolverFor is a system resolver whose every query goes to s, as
// the runner builds in tests.
func goResolverFor(s *probetest.DNSServer) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, s.Addr())
		},
	}
}

func TestLookupSystem(t *testing.T) {
	s := startServer(t)
	r := &Resolver{System: goResolverFor(s)}
	tests := []struct {
		name                 string
		host                 string
		silence              bool
		wantFailA, wantFail6 string
		wantA, want6         []string
	}{
		{"both families", "courier.push.test", false, "", "",
			[]string{"courier.push.test 0 A 17.57.146.20", "courier.push.test 0 A 17.57.146.21"},
			[]string{"courier.push.test 0 AAAA 2620:149:a44::1"}},
		{"ipv4 only is no answer, not nxdomain", "v4only.test", false, "", failure.DNSNoAnswer,
			[]string{"v4only.test 0 A 17.0.0.4"}, nil},
		{"nxdomain", "absent.test", false, failure.DNSNXDomain, failure.DNSNXDomain, nil, nil},
		{"servfail", "servfail.test", false, failure.DNSServerMisbehaving, failure.DNSServerMisbehaving, nil, nil},
		{"silence", "silent.test", true, failure.GenericTimeout, failure.GenericTimeout, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.silence {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, testSilenceTimeout)
				defer cancel()
			}
			obs := r.LookupSystem(ctx, tt.host)
			if len(obs) != 2 {
				t.Fatalf("got %d observations, want A and AAAA", len(obs))
			}
			for i, want := range []struct {
				qtype, failure string
				answers        []string
			}{{"A", tt.wantFailA, tt.wantA}, {"AAAA", tt.wantFail6, tt.want6}} {
				o := obs[i]
				checkCommon(t, o, tt.host, measurements.EngineSystem, "", "", want.qtype)
				if o.Failure != want.failure {
					t.Errorf("%s: Failure = %q, want %q", want.qtype, o.Failure, want.failure)
				}
				if got := answerStrings(o.DNS.Answers); !slices.Equal(got, want.answers) {
					t.Errorf("%s: answers %q, want %q", want.qtype, got, want.answers)
				}
			}
		})
	}
}
