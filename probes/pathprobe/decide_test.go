package pathprobe

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// Addresses of a made-up path: routers r1..r5, then the destination.
var (
	dst = netip.MustParseAddr("17.0.0.10")
	rej = netip.MustParseAddr("10.9.9.9")
)

func router(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("10.0.%d.1", i)) }

// slots builds records from a compact path description: for each TTL
// from 1, a string of replies, one letter per probe: t (time exceeded
// from router TTL), d (destination), r (reset), u (unreachable from rej),
// '.' silence.
func slots(role string, perTTL ...string) []Hop {
	var hops []Hop
	for i, s := range perTTL {
		ttl := i + 1
		for _, c := range s {
			h := Hop{TTL: ttl, Role: role, Reply: ReplyNone}
			switch c {
			case 't':
				h.Reply, h.From = ReplyTimeExceeded, router(ttl)
			case 'T': // time exceeded from the rejecting router's address
				h.Reply, h.From = ReplyTimeExceeded, rej
			case 'd':
				h.Reply, h.From = ReplyDestination, dst
			case 'r':
				h.Reply = ReplyReset
			case 'u':
				h.Reply, h.From, h.ICMPType, h.ICMPCode = ReplyUnreachable, rej, 3, 13
			}
			hops = append(hops, h)
		}
	}
	return hops
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name          string
		test, control []string
		wantKnown     bool
		wantHop       int
		wantReason    string // a substring of Reason
		// dest is Decide's Destination; the zero value here means a
		// control to the test's address.
		dest *Destination
	}{
		{"drop after hop 2, control passes two more routers",
			[]string{"tt", "tt", "..", "..", ".."}, []string{"tt", "tt", "tt", "tt", "dd"}, true, 2, "passes hop 2", nil},
		{"drop after hop 2, rate-limited slots at hops 1 and 2",
			[]string{".t", "t.", "..", ".."}, []string{"t.", ".t", "tt", "dd"}, true, 2, "", nil},
		{"one control reply at the next hop and one beyond",
			[]string{"tt", "tt", "..", ".."}, []string{"tt", "tt", "t.", ".t", "d"}, true, 2, "", nil},
		{"drop before the first router",
			[]string{"..", "..", ".."}, []string{"tt", "tt", "dd"}, true, 0, "", nil},
		{"single silent slot never counts",
			[]string{"tt", "tt", "."}, []string{"tt", "tt", "tt", "dd"}, false, 0, "one silent slot", nil},
		{"stop at the destination's hop: it may ignore the test flow",
			[]string{"tt", "tt", "..", ".."}, []string{"tt", "tt", "dd", "dd"}, false, 0, "may ignore", nil},
		{"router past the stop sends no ICMP to either flow",
			[]string{"tt", "tt", "..", "..", ".."}, []string{"tt", "tt", "..", "tt", "dd"}, false, 0, "no ICMP", nil},
		{"control seen only once past the stop",
			[]string{"tt", "tt", "..", ".."}, []string{"tt", "tt", "t.", "..", "dd"}, false, 0, "only 1 time", nil},
		{"routers that send no ICMP at all",
			[]string{"..", "..", ".."}, []string{"..", "..", ".."}, false, 0, "no ICMP", nil},
		{"test flow reaches the destination",
			[]string{"tt", "tt", "dd"}, []string{"tt", "tt", "dd"}, false, 0, "reached the destination", nil},
		{"test silent at the true stop's hop in both rounds (rate limit): ends past it",
			[]string{"tt", "..", "tt", "..", ".."}, []string{"tt", "tt", "tt", "tt", "tt", "dd"}, true, 3, "", nil},
		{"test flow drew a reset",
			[]string{"tt", "r"}, []string{"tt", "tt", "dd"}, false, 0, "reset", nil},
		{"router rejects: its hop is where its address expired the TTL",
			[]string{"tt", "TT", "uu", "uu"}, []string{"tt", "TT", "tt", "dd"}, true, 2, "unreachable", nil},
		{"reject from an address never seen as a hop",
			[]string{"tt", "tt", "uu"}, []string{"tt", "tt", "tt", "dd"}, false, 0, "hop number is unknown", nil},
		{"control flow stops too (outage or a block of both)",
			[]string{"tt", "tt", "..", ".."}, []string{"tt", "tt", "..", ".."}, false, 0, "no ICMP", nil},
		{"same address, control never reaches the destination: its hop is unknown",
			[]string{"tt", "..", "..", ".."}, []string{"tt", "tt", "tt", ".."}, false, 0, "never reached the destination", nil},
		{"control to another address, the destination's hop known from another trace",
			[]string{"tt", "tt", "..", "..", ".."}, []string{"tt", "tt", "tt", "tt", "dd"}, true, 2, "", &Destination{Hop: 4}},
		{"control to another address passes routers where the test's destination may be",
			[]string{"tt", "tt", "..", "..", ".."}, []string{"tt", "tt", "tt", "tt", "dd"}, false, 0, "may ignore", &Destination{Hop: 3}},
		{"control to another address, the destination's hop unknown",
			[]string{"tt", "tt", "..", "..", ".."}, []string{"tt", "tt", "tt", "tt", "dd"}, false, 0, "hop is unknown", &Destination{}},
		{"another address's arrival does not mark the test's destination",
			[]string{"tt", "tt", "..", ".."}, []string{"tt", "tt", "tt", "dd"}, false, 0, "hop is unknown", &Destination{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hops := append(slots(RoleTest, tt.test...), slots(RoleControl, tt.control...)...)
			d := Destination{SameAddress: true}
			if tt.dest != nil {
				d = *tt.dest
			}
			got := Decide(hops, d)
			if got.Known != tt.wantKnown || got.Hop != tt.wantHop {
				t.Fatalf("Decide = %+v, want known %v at hop %d", got, tt.wantKnown, tt.wantHop)
			}
			if !strings.Contains(got.Reason, tt.wantReason) {
				t.Errorf("reason %q lacks %q", got.Reason, tt.wantReason)
			}
			if got.Known && got.Hop > 0 && !got.Addr.IsValid() {
				t.Errorf("known stop at hop %d without its address", got.Hop)
			}
			// Order of the records must not matter.
			rev := make([]Hop, len(hops))
			for i, h := range hops {
				rev[len(hops)-1-i] = h
			}
			if again := Decide(rev, d); again != got {
				t.Errorf("Decide(reversed) = %+v, want %+v", again, got)
			}
		})
	}
}

func TestAnnotate(t *testing.T) {
	tr := &Trace{Hops: slots(RoleTest, "t", "."), Stop: Stop{Known: true, Hop: 1, Addr: router(1)}}
	tr.Annotate(func(a netip.Addr) (uint, string) {
		if a == router(1) {
			return 64500, "Example ISP"
		}
		return 0, ""
	})
	if h := tr.Hops[0]; h.ASN != 64500 || h.ASName != "Example ISP" {
		t.Errorf("hop 1 AS %d %q, want 64500 Example ISP", h.ASN, h.ASName)
	}
	if h := tr.Hops[1]; h.ASN != 0 {
		t.Errorf("silent hop has AS %d", h.ASN)
	}
	if tr.Stop.ASN != 64500 {
		t.Errorf("stop AS %d, want 64500", tr.Stop.ASN)
	}
}

func netipPortOf(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
