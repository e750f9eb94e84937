package stunprobe

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// fastSchedule keeps the retransmission pattern with waits short enough
// for tests; the last wait still leaves the server time to read.
var fastSchedule = schedule{initialRTO: 20 * time.Millisecond, maxRTO: 40 * time.Millisecond, attempts: MaxAttempts}

// testTimeout bounds any single exchange in these tests.
const testTimeout = 10 * time.Second

func startSTUN(t *testing.T, mode probetest.STUNMode, addr string) *probetest.STUNServer {
	t.Helper()
	srv, err := probetest.StartSTUNPorts(addr, []int{0}, mode)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// closedPort returns a UDP address on host where nothing listens.
func closedPort(t *testing.T, host string) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		t.Skipf("cannot listen on %s: %v", host, err)
	}
	addr := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	return addr
}

func TestBinding(t *testing.T) {
	tests := []struct {
		name       string
		mode       probetest.STUNMode
		host       string
		wantClass  string
		wantMapped bool
		wantBytes  int
	}{
		// 20 header + 12 XOR-MAPPED-ADDRESS + 8 FINGERPRINT.
		{"success ipv4", probetest.STUNAnswer, "127.0.0.2", "success", true, 40},
		// 20 header + 24 XOR-MAPPED-ADDRESS + 8 FINGERPRINT.
		{"success ipv6", probetest.STUNAnswer, "::1", "success", true, 52},
		// 20 header + 20 ERROR-CODE (400 "Bad Request", padded) + 8 FINGERPRINT.
		{"error response", probetest.STUNReject, "127.0.0.2", "error", false, 48},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSTUN(t, tt.mode, tt.host)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			obs := Binding(ctx, srv.Addr(), true)
			if obs.Step != measurements.StepUDP || obs.Transport != "udp" {
				t.Errorf("Step, Transport = %q, %q, want udp, udp", obs.Step, obs.Transport)
			}
			if obs.Address != srv.Addr().Addr().String() || obs.Port != int(srv.Addr().Port()) {
				t.Errorf("Address, Port = %s, %d, want %s", obs.Address, obs.Port, srv.Addr())
			}
			if obs.Failure != "" || obs.Operation != "" {
				t.Fatalf("Failure = %q (%s), want success", obs.Failure, obs.Operation)
			}
			d := obs.STUN
			if d == nil {
				t.Fatal("STUN details missing")
			}
			if !d.Responded || d.Class != tt.wantClass || d.MappedAddressSeen != tt.wantMapped {
				t.Errorf("Responded, Class, MappedAddressSeen = %v, %q, %v, want true, %q, %v",
					d.Responded, d.Class, d.MappedAddressSeen, tt.wantClass, tt.wantMapped)
			}
			if d.Attempts != 1 || d.ResponseBytes != tt.wantBytes || !d.ExpectAnswer || len(d.TransactionID) != 12 {
				t.Errorf("Attempts, ResponseBytes, ExpectAnswer, len(TransactionID) = %d, %d, %v, %d, want 1, %d, true, 12",
					d.Attempts, d.ResponseBytes, d.ExpectAnswer, len(d.TransactionID), tt.wantBytes)
			}
			if obs.Duration <= 0 || obs.Started.IsZero() || obs.Started.Location() != time.UTC {
				t.Errorf("Started, Duration = %v, %v, want a UTC start and a positive duration", obs.Started, obs.Duration)
			}
		})
	}
}

// TestBindingKeepsPublicAddressOut checks that the address the server saw
// (the probe's public address in the field) appears nowhere in the stored
// observation. The server listens on 127.0.0.2 so that the client's
// address, 127.0.0.1, differs from the target's.
func TestBindingKeepsPublicAddressOut(t *testing.T) {
	srv := startSTUN(t, probetest.STUNAnswer, "127.0.0.2")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	mapped, err := PublicAddress(ctx, srv.Addr())
	if err != nil {
		t.Fatalf("PublicAddress: %v", err)
	}
	if mapped == srv.Addr().Addr() {
		t.Fatalf("mapped address %s equals the server's; the check below would prove nothing", mapped)
	}
	obs := Binding(ctx, srv.Addr(), true)
	if !obs.STUN.MappedAddressSeen {
		t.Fatalf("MappedAddressSeen = false, want true (failure %q)", obs.Failure)
	}
	b, err := json.Marshal(obs)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{mapped.String(), "127.0.0.1"} {
		if strings.Contains(string(b), leak) {
			t.Errorf("observation JSON contains the mapped address %q: %s", leak, b)
		}
	}
}

func TestBindingSilent(t *testing.T) {
	srv := startSTUN(t, probetest.STUNSilent, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	obs := binding(ctx, srv.Addr(), true, fastSchedule)
	if obs.Failure != failure.GenericTimeout || obs.Operation != failure.OpRead {
		t.Errorf("Failure, Operation = %q, %q, want %q, %q", obs.Failure, obs.Operation, failure.GenericTimeout, failure.OpRead)
	}
	d := obs.STUN
	if d.Attempts != MaxAttempts || d.Responded || d.Class != "" || d.MappedAddressSeen || d.ResponseBytes != 0 {
		t.Errorf("details = %+v, want %d attempts and no response", d, MaxAttempts)
	}
	// The schedule waits 20+40+40+40 ms; anything near testTimeout means
	// the schedule was ignored.
	if obs.Duration > 2*time.Second {
		t.Errorf("Duration = %v, want about 140ms", obs.Duration)
	}
	waitRequests(t, srv, MaxAttempts)
}

// waitRequests waits until srv has counted want requests.
func waitRequests(t *testing.T, srv *probetest.STUNServer, want int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for srv.Requests() < want {
		select {
		case <-deadline:
			t.Fatalf("server received %d requests, want %d", srv.Requests(), want)
		case <-tick.C:
		}
	}
	if got := srv.Requests(); got != want {
		t.Errorf("server received %d requests, want %d", got, want)
	}
}

func TestBindingContext(t *testing.T) {
	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		want    string
		maxTime time.Duration
	}{
		{"deadline before silence is called", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, failure.GenericTimeout, 2 * time.Second},
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			return ctx, cancel
		}, failure.Interrupted, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSTUN(t, probetest.STUNSilent, "127.0.0.1")
			ctx, cancel := tt.ctx()
			defer cancel()
			obs := Binding(ctx, srv.Addr(), true)
			if obs.Failure != tt.want || obs.Operation != failure.OpRead {
				t.Errorf("Failure, Operation = %q, %q, want %q, read", obs.Failure, obs.Operation, tt.want)
			}
			if obs.STUN.Attempts != 1 {
				t.Errorf("Attempts = %d, want 1 (the context ends within InitialRTO)", obs.STUN.Attempts)
			}
			if obs.Duration > tt.maxTime {
				t.Errorf("Duration = %v, want under %v", obs.Duration, tt.maxTime)
			}
		})
	}
}

// TestBindingRefused: nothing listens, so loopback answers with ICMP port
// unreachable, which a connected socket reports as ECONNREFUSED.
func TestBindingRefused(t *testing.T) {
	addr := closedPort(t, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	obs := Binding(ctx, addr, false)
	if obs.Failure != failure.ConnectionRefused || obs.Operation != failure.OpRead {
		t.Errorf("Failure, Operation = %q, %q, want %q, read", obs.Failure, obs.Operation, failure.ConnectionRefused)
	}
	if obs.STUN.Attempts != 1 || obs.STUN.Responded || obs.STUN.ExpectAnswer {
		t.Errorf("details = %+v, want 1 attempt, no response, ExpectAnswer false", obs.STUN)
	}
	if obs.Duration > InitialRTO {
		t.Errorf("Duration = %v, want under InitialRTO: the refusal is immediate", obs.Duration)
	}
}

// TestBindingIgnoresStrayDatagrams: garbage, another transaction and a
// request echoed back are skipped; the real response still counts.
func TestBindingIgnoresStrayDatagrams(t *testing.T) {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		n, from, err := pc.ReadFromUDP(buf)
		if err != nil {
			return
		}
		req, err := ParseMessage(buf[:n])
		if err != nil {
			return
		}
		other := req
		other.TransactionID[0] ^= 0xff
		other.Type = MessageType(MethodBinding, ClassSuccess)
		ok := Message{Type: MessageType(MethodBinding, ClassSuccess), TransactionID: req.TransactionID,
			Attributes: []Attribute{{Type: AttrXORMappedAddress, Value: xorAddress(from.AddrPort(), req.TransactionID)}}}
		for _, b := range [][]byte{[]byte("not stun at all"), other.Marshal(), buf[:n], ok.Marshal()} {
			pc.WriteToUDP(b, from)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	obs := Binding(ctx, pc.LocalAddr().(*net.UDPAddr).AddrPort(), true)
	if obs.Failure != "" || !obs.STUN.Responded || !obs.STUN.MappedAddressSeen || obs.STUN.ResponseBytes != 32 {
		t.Errorf("Failure %q, details %+v, want the 32-byte success response", obs.Failure, obs.STUN)
	}
}

func TestPublicAddress(t *testing.T) {
	tests := []struct {
		name    string
		mode    probetest.STUNMode
		host    string
		want    netip.Addr
		wantErr error
	}{
		{"ipv4", probetest.STUNAnswer, "127.0.0.2", netip.MustParseAddr("127.0.0.1"), nil},
		{"ipv6", probetest.STUNAnswer, "::1", netip.MustParseAddr("::1"), nil},
		{"error response", probetest.STUNReject, "127.0.0.1", netip.Addr{}, ErrErrorResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSTUN(t, tt.mode, tt.host)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			got, err := PublicAddress(ctx, srv.Addr())
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("PublicAddress() = %v, %v, want %v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestPublicAddressRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := PublicAddress(ctx, closedPort(t, "127.0.0.1"))
	if got := failure.Classify(err); got != failure.ConnectionRefused {
		t.Errorf("PublicAddress() error %v classifies as %q, want %q", err, got, failure.ConnectionRefused)
	}
}

func TestScheduleMatchesBindingTimeout(t *testing.T) {
	var total time.Duration
	wait := defaultSchedule.initialRTO
	for range defaultSchedule.attempts {
		total += wait
		wait = min(2*wait, defaultSchedule.maxRTO)
	}
	if total != BindingTimeout {
		t.Errorf("the default schedule waits %v in all, BindingTimeout says %v", total, BindingTimeout)
	}
}
