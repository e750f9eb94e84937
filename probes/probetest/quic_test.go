package probetest

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// testQUICTimeout bounds a loopback QUIC handshake.
const testQUICTimeout = 5 * time.Second

func startTestQUIC(t *testing.T, addr string, alpn []string) (*QUICServer, *CA) {
	t.Helper()
	ca, err := NewCA("probetest QUIC CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Leaf("quic.test")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := StartQUIC(addr, cert, alpn)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, ca
}

func dialQUIC(ctx context.Context, ca *CA, to netip.AddrPort, alpn string) (*quic.Conn, error) {
	return quic.DialAddr(ctx, to.String(), &tls.Config{
		ServerName: "quic.test",
		RootCAs:    ca.Pool(),
		NextProtos: []string{alpn},
	}, nil)
}

func TestQUICServerHandshake(t *testing.T) {
	tests := []struct {
		name       string
		listen     string
		serverALPN []string
		clientALPN string
		wantErr    bool
	}{
		{"default h3", "127.0.0.1:0", nil, "h3", false},
		{"ipv6", "[::1]:0", nil, "h3", false},
		{"custom alpn", "127.0.0.1:0", []string{"apns-test", "h3"}, "apns-test", false},
		{"alpn mismatch", "127.0.0.1:0", []string{"h3"}, "other", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, ca := startTestQUIC(t, tt.listen, tt.serverALPN)
			ctx, cancel := context.WithTimeout(context.Background(), testQUICTimeout)
			defer cancel()
			conn, err := dialQUIC(ctx, ca, srv.Addr(), tt.clientALPN)
			if tt.wantErr {
				if err == nil {
					conn.CloseWithError(0, "")
					t.Fatal("handshake succeeded, want an ALPN failure")
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer conn.CloseWithError(0, "")
			state := conn.ConnectionState().TLS
			if state.NegotiatedProtocol != tt.clientALPN || state.Version != tls.VersionTLS13 {
				t.Errorf("ALPN %q, version %#x, want %q over TLS 1.3", state.NegotiatedProtocol, state.Version, tt.clientALPN)
			}
		})
	}
}

// TestQUICServerHoldsConnection: a completed connection stays open until
// the server closes, which it does with its own application close.
func TestQUICServerHoldsConnection(t *testing.T) {
	srv, ca := startTestQUIC(t, "127.0.0.1:0", nil)
	ctx, cancel := context.WithTimeout(context.Background(), testQUICTimeout)
	defer cancel()
	conn, err := dialQUIC(ctx, ca, srv.Addr(), "h3")
	if err != nil {
		t.Fatal(err)
	}
	// The client's handshake completes before the server's: wait for the
	// server to hold the connection, or Close would refuse it unaccepted.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for srv.Accepted() < 1 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("server never accepted the connection")
		}
	}
	select {
	case <-conn.Context().Done():
		t.Fatalf("connection closed before the server did: %v", context.Cause(conn.Context()))
	default:
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case <-conn.Context().Done():
		var appErr *quic.ApplicationError
		if err := context.Cause(conn.Context()); !errors.As(err, &appErr) || !appErr.Remote || appErr.ErrorMessage != "server closing" {
			t.Errorf("connection ended with %v, want the server's application close", err)
		}
	case <-ctx.Done():
		t.Fatal("connection still open after the server closed")
	}
}

// connectedPacketConn makes a connected UDP socket usable by quic-go, as
// a client in another namespace would see the server: the kernel drops
// datagrams from any source but the one connected to. It hides the
// socket's sendmsg methods, which quic-go would call with an address.
type connectedPacketConn struct{ c *net.UDPConn }

var _ net.PacketConn = connectedPacketConn{}

func (p connectedPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, err := p.c.Read(b)
	return n, p.c.RemoteAddr(), err
}

func (p connectedPacketConn) WriteTo(b []byte, _ net.Addr) (int, error) { return p.c.Write(b) }
func (p connectedPacketConn) Close() error                              { return p.c.Close() }
func (p connectedPacketConn) LocalAddr() net.Addr                       { return p.c.LocalAddr() }
func (p connectedPacketConn) SetDeadline(t time.Time) error             { return p.c.SetDeadline(t) }
func (p connectedPacketConn) SetReadDeadline(t time.Time) error         { return p.c.SetReadDeadline(t) }
func (p connectedPacketConn) SetWriteDeadline(t time.Time) error        { return p.c.SetWriteDeadline(t) }

// TestQUICServerReplyFromQueriedAddress: bound to the wildcard, the server
// answers from the address the client wrote to. The client's socket is
// connected to 127.0.0.2 from 127.0.0.1, so an answer from the default
// source (127.0.0.1) would be dropped and the handshake would time out.
func TestQUICServerReplyFromQueriedAddress(t *testing.T) {
	if probe, err := net.ListenPacket("udp4", "127.0.0.2:0"); err != nil {
		t.Skipf("127.0.0.2 is not local here: %v", err)
	} else {
		probe.Close()
	}
	srv, ca := startTestQUIC(t, "0.0.0.0:0", nil)
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), srv.Addr().Port())
	udp, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	tr := &quic.Transport{Conn: connectedPacketConn{udp}}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testQUICTimeout)
	defer cancel()
	conn, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(to), &tls.Config{
		ServerName: "quic.test",
		RootCAs:    ca.Pool(),
		NextProtos: []string{"h3"},
	}, nil)
	if err != nil {
		t.Fatalf("handshake through a connected socket: %v", err)
	}
	conn.CloseWithError(0, "")
}

func TestStartQUICErrors(t *testing.T) {
	ca, err := NewCA("probetest QUIC CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Leaf("quic.test")
	if err != nil {
		t.Fatal(err)
	}
	taken, err := StartQUIC("127.0.0.1:0", cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name string
		addr string
	}{
		{"host name", "localhost:0"},
		{"no port", "127.0.0.1"},
		{"port taken", taken.Addr().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := StartQUIC(tt.addr, cert, nil)
			if err == nil {
				srv.Close()
				t.Fatalf("StartQUIC(%q) succeeded, want an error", tt.addr)
			}
		})
	}
}
