package probetest

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/probes/stunprobe"
)

// testSTUNWait bounds a wait for a reply that should come at once over
// loopback, and is how long silence is listened to.
const testSTUNWait = 300 * time.Millisecond

// stunRoundTrip sends a Binding request from conn to to and returns the
// request and the parsed reply with its source address.
func stunRoundTrip(t *testing.T, conn net.PacketConn, to netip.AddrPort) (stunprobe.Message, stunprobe.Message, netip.AddrPort, error) {
	t.Helper()
	req, wire := stunprobe.NewBindingRequest()
	if _, err := conn.WriteTo(wire, net.UDPAddrFromAddrPort(to)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(testSTUNWait))
	buf := make([]byte, 1500)
	n, from, err := conn.ReadFrom(buf)
	if err != nil {
		return req, stunprobe.Message{}, netip.AddrPort{}, err
	}
	resp, err := stunprobe.ParseMessage(buf[:n])
	if err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	return req, resp, from.(*net.UDPAddr).AddrPort(), nil
}

func TestSTUNServerModes(t *testing.T) {
	tests := []struct {
		name      string
		mode      STUNMode
		host      string
		wantClass stunprobe.Class
		silent    bool
	}{
		{"answer ipv4", STUNAnswer, "127.0.0.1", stunprobe.ClassSuccess, false},
		{"answer ipv6", STUNAnswer, "::1", stunprobe.ClassSuccess, false},
		{"reject", STUNReject, "127.0.0.1", stunprobe.ClassError, false},
		{"silent", STUNSilent, "127.0.0.1", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := StartSTUNPorts(tt.host, []int{0}, tt.mode)
			if err != nil {
				t.Skipf("cannot listen on %s: %v", tt.host, err)
			}
			defer srv.Close()
			client, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(srv.Addr().Addr(), 0)))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			req, resp, from, err := stunRoundTrip(t, client, srv.Addr())
			if tt.silent {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("silent server: read error = %v, want a timeout", err)
				}
				if got := srv.Requests(); got != 1 {
					t.Errorf("Requests() = %d, want 1", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			if from != srv.Addr() {
				t.Errorf("reply from %s, want %s", from, srv.Addr())
			}
			if resp.TransactionID != req.TransactionID || resp.Class() != tt.wantClass || resp.Method() != stunprobe.MethodBinding {
				t.Errorf("reply id %x class %v method %#x, want id %x, %v Binding", resp.TransactionID, resp.Class(), resp.Method(), req.TransactionID, tt.wantClass)
			}
			if _, ok := resp.Get(stunprobe.AttrFingerprint); !ok {
				t.Error("reply has no FINGERPRINT")
			}
			mapped, err := resp.XORMappedAddress()
			switch tt.wantClass {
			case stunprobe.ClassSuccess:
				if want := client.LocalAddr().(*net.UDPAddr).AddrPort(); err != nil || mapped != want {
					t.Errorf("XORMappedAddress() = %v, %v, want %v", mapped, err, want)
				}
			case stunprobe.ClassError:
				if code, _, err := resp.ErrorCode(); err != nil || code != 400 {
					t.Errorf("ErrorCode() = %d, %v, want 400", code, err)
				}
			}
			if got := srv.Requests(); got != 1 {
				t.Errorf("Requests() = %d, want 1", got)
			}
		})
	}
}

// TestSTUNServerReplyFromQueriedAddress: bound to the wildcard, the server
// answers from the address each request was sent to, as the lab's
// locally routed prefix needs. 127.0.0.2 is local on Linux's loopback; an
// answer from the default source would come from 127.0.0.1.
func TestSTUNServerReplyFromQueriedAddress(t *testing.T) {
	if probe, err := net.ListenPacket("udp4", "127.0.0.2:0"); err != nil {
		t.Skipf("127.0.0.2 is not local here: %v", err)
	} else {
		probe.Close()
	}
	srv, err := StartSTUN("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for _, dst := range []string{"127.0.0.2", "127.0.0.1"} {
		t.Run(dst, func(t *testing.T) {
			to := netip.AddrPortFrom(netip.MustParseAddr(dst), srv.Addr().Port())
			_, _, from, err := stunRoundTrip(t, client, to)
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			if from != to {
				t.Errorf("reply from %s, want %s", from, to)
			}
		})
	}
}

// TestSTUNServerIgnoresNonRequests: datagrams that are not Binding
// requests get no answer and are not counted.
func TestSTUNServerIgnoresNonRequests(t *testing.T) {
	srv, err := StartSTUN("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_, request := stunprobe.NewBindingRequest()
	success := append([]byte(nil), request...)
	success[0], success[1] = 0x01, 0x01
	short := request[:19]
	rfc3489 := append([]byte(nil), request...)
	rfc3489[4] = 0
	for _, b := range [][]byte{[]byte("hello"), short, success, rfc3489} {
		if _, err := client.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	// The first reply must answer the valid request sent last.
	req, wire := stunprobe.NewBindingRequest()
	if _, err := client.Write(wire); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(testSTUNWait))
	buf := make([]byte, 1500)
	n, err := client.Read(buf)
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	resp, err := stunprobe.ParseMessage(buf[:n])
	if err != nil || resp.TransactionID != req.TransactionID {
		t.Errorf("first reply = %x (%v), want the answer to transaction %x", buf[:n], err, req.TransactionID)
	}
	if got := srv.Requests(); got != 1 {
		t.Errorf("Requests() = %d, want 1", got)
	}
}

func TestStartSTUNPorts(t *testing.T) {
	// Find two free ports, then serve both.
	var ports []int
	for range 2 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, c.LocalAddr().(*net.UDPAddr).Port)
		c.Close()
	}
	srv, err := StartSTUNPorts("127.0.0.1", ports, STUNAnswer)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	addrs := srv.Addrs()
	if len(addrs) != len(ports) {
		t.Fatalf("Addrs() = %v, want %d addresses", addrs, len(ports))
	}
	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for i, a := range addrs {
		if int(a.Port()) != ports[i] {
			t.Errorf("Addrs()[%d] = %s, want port %d", i, a, ports[i])
		}
		if _, _, _, err := stunRoundTrip(t, client, a); err != nil {
			t.Errorf("port %d: no reply: %v", ports[i], err)
		}
	}
	if got := srv.Requests(); got != len(ports) {
		t.Errorf("Requests() = %d, want %d", got, len(ports))
	}
}

func TestStartSTUNErrors(t *testing.T) {
	taken, err := StartSTUN("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name  string
		start func() (*STUNServer, error)
	}{
		{"no ports", func() (*STUNServer, error) { return StartSTUNPorts("127.0.0.1", nil, STUNAnswer) }},
		{"host name", func() (*STUNServer, error) { return StartSTUN("localhost:0") }},
		{"no port", func() (*STUNServer, error) { return StartSTUN("127.0.0.1") }},
		{"port taken", func() (*STUNServer, error) { return StartSTUN(taken.Addr().String()) }},
		{"second port taken", func() (*STUNServer, error) {
			return StartSTUNPorts("127.0.0.1", []int{0, int(taken.Addr().Port())}, STUNSilent)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := tt.start()
			if err == nil {
				srv.Close()
				t.Fatal("started, want an error")
			}
		})
	}
}
