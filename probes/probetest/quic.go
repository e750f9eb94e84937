package probetest

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"
)

// QUICServer is a QUIC server that completes handshakes and holds each
// connection open until the client closes it. It sends no application
// data: it exists to be handshaken with.
type QUICServer struct {
	udp    *net.UDPConn
	tr     *quic.Transport
	ln     *quic.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// accepted counts completed handshakes.
	accepted atomic.Int64
}

// StartQUIC listens for QUIC on addr ("127.0.0.1:0", "0.0.0.0:443",
// "[::1]:0"), presenting cert and accepting the ALPN protocols alpn
// (["h3"] when empty).
//
// Bound to an unspecified address, it answers from the address each
// client wrote to, even when a whole prefix is routed locally
// (ip route add local 17.0.0.0/8 dev lo): the UDP socket is handed to
// quic-go as a *net.UDPConn, which enables its packet-info handling.
func StartQUIC(addr string, cert tls.Certificate, alpn []string) (*QUICServer, error) {
	if len(alpn) == 0 {
		alpn = []string{"h3"}
	}
	udp, err := listenUDPFamily(addr)
	if err != nil {
		return nil, err
	}
	tr := &quic.Transport{Conn: udp}
	ln, err := tr.Listen(&tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   alpn,
		MinVersion:   tls.VersionTLS13,
	}, &quic.Config{})
	if err != nil {
		tr.Close()
		udp.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &QUICServer{udp: udp, tr: tr, ln: ln, cancel: cancel}
	s.wg.Add(1)
	go s.accept(ctx)
	return s, nil
}

// accept completes handshakes until the listener closes, and holds each
// connection until its client closes it or the server stops.
func (s *QUICServer) accept(ctx context.Context) {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept(ctx)
		if err != nil {
			return
		}
		s.accepted.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			select {
			case <-conn.Context().Done():
			case <-ctx.Done():
				_ = conn.CloseWithError(0, "server closing")
			}
		}()
	}
}

// Addr returns the address the server listens on.
func (s *QUICServer) Addr() netip.AddrPort {
	return s.udp.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Accepted returns how many handshakes the server has completed.
func (s *QUICServer) Accepted() int { return int(s.accepted.Load()) }

// Close stops the server, closing any connection still open, and waits
// for its goroutines.
func (s *QUICServer) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.wg.Wait()
	err = errors.Join(err, s.tr.Close(), s.udp.Close())
	return err
}
