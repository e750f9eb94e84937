package probetest

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Timeouts of the TLS test server's connections.
const (
	// clientHelloTimeout bounds the wait for a client's ClientHello. A
	// client on loopback or in the lab sends it at once; the bound only
	// frees the goroutine of a client that connected and went quiet.
	clientHelloTimeout = 10 * time.Second
	// tlsConnTimeout bounds a TLSValid connection after the handshake. The
	// probe closes right after its handshake; the bound only frees
	// connections a client forgot to close.
	tlsConnTimeout = 30 * time.Second
)

// greeting is what a TLSValid server writes after a handshake.
const greeting = "reachprobe test server\n"

// TLS record layer constants (RFC 8446 section 5.1).
const (
	recordHeaderLen     = 5
	recordTypeHandshake = 22
	// maxRecordLen is the largest record body a peer may send: 2^14 bytes
	// of plaintext plus the 2048 bytes of expansion TLS 1.2 allows.
	maxRecordLen = 1<<14 + 2048
)

// TLSMode is how a TLSServer treats each connection.
type TLSMode int

// TLS server modes.
const (
	// TLSValid completes the handshake with the server's certificate
	// whatever the SNI, writes a short line, and reads and discards what
	// the client sends until it closes.
	TLSValid TLSMode = iota
	// TLSResetAfterClientHello reads the ClientHello record, then resets
	// the connection (RST instead of FIN), as an SNI-filtering censor does.
	TLSResetAfterClientHello
	// TLSStall accepts TCP, reads the ClientHello and never answers, as a
	// censor dropping the rest of the flow does. The connection is held
	// until the server closes.
	TLSStall
	// TLSCloseAfterClientHello reads the ClientHello and closes the
	// connection with a FIN, as a server (or a middlebox) that hangs up
	// does.
	TLSCloseAfterClientHello
	// TLSAlertAfterClientHello reads the ClientHello and answers with a
	// fatal handshake_failure alert, as a server refusing the handshake
	// does.
	TLSAlertAfterClientHello
	// TLSHTTPRedirect reads the ClientHello and answers with PortalResponse
	// in plaintext, then closes: a captive portal or a block page
	// answering a TLS port.
	TLSHTTPRedirect
)

// PortalResponse is what a TLSHTTPRedirect server answers a ClientHello
// with.
const PortalResponse = "HTTP/1.1 302 Found\r\nLocation: http://portal.example/login\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

// alertHandshakeFailure is a TLS 1.2 record carrying a fatal (2)
// handshake_failure (40) alert.
var alertHandshakeFailure = []byte{21, 3, 3, 0, 2, 2, 40}

// String returns the mode's name.
func (m TLSMode) String() string {
	switch m {
	case TLSValid:
		return "valid"
	case TLSResetAfterClientHello:
		return "reset_after_client_hello"
	case TLSStall:
		return "stall"
	case TLSCloseAfterClientHello:
		return "close_after_client_hello"
	case TLSAlertAfterClientHello:
		return "alert_after_client_hello"
	case TLSHTTPRedirect:
		return "http_redirect"
	}
	return fmt.Sprintf("TLSMode(%d)", int(m))
}

// TLSServer is a loopback (or lab) TLS server over TCP that either serves
// a certificate or misbehaves after the ClientHello the way censors do.
//
// It serves the same certificate for every server name, so one server can
// answer both a target's name and the control name of an SNI swap; whether
// the name matches the certificate is the client's business. Bound to
// 0.0.0.0 in a namespace where a whole prefix is routed locally it answers
// every address of the prefix: TCP replies leave from the address the
// client connected to by themselves.
type TLSServer struct {
	ln     net.Listener
	mode   TLSMode
	config *tls.Config // TLSValid only

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// StartTLS listens on addr ("127.0.0.1:0" for a free loopback port) and
// serves connections in mode. cert is the certificate served in TLSValid
// mode and may be empty otherwise. alpn lists the protocols the server
// accepts in its order of preference: it selects the first one the client
// offers, and negotiates no protocol (rather than failing, as Go's server
// would) when there is none in common or alpn is empty.
func StartTLS(addr string, mode TLSMode, cert tls.Certificate, alpn []string) (*TLSServer, error) {
	s := &TLSServer{mode: mode, conns: make(map[net.Conn]struct{})}
	switch mode {
	case TLSValid:
		if len(cert.Certificate) == 0 {
			return nil, errors.New("TLSValid server needs a certificate")
		}
		s.config = serverConfig(cert, alpn)
	case TLSResetAfterClientHello, TLSStall, TLSCloseAfterClientHello, TLSAlertAfterClientHello, TLSHTTPRedirect:
	default:
		return nil, fmt.Errorf("unknown TLS server mode %v", mode)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("TLS server listen: %w", err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func serverConfig(cert tls.Certificate, alpn []string) *tls.Config {
	base := &tls.Config{Certificates: []tls.Certificate{cert}}
	protos := slices.Clone(alpn)
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.GetConfigForClient = nil
		for _, p := range protos {
			if slices.Contains(hello.SupportedProtos, p) {
				c.NextProtos = []string{p}
				break
			}
		}
		return c, nil
	}
	return base
}

// Addr returns the address the server listens on. For a server bound to
// 0.0.0.0 it is the unspecified address with the port.
func (s *TLSServer) Addr() netip.AddrPort {
	ap := s.ln.Addr().(*net.TCPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// Close stops the server, closes every connection it holds (stalled ones
// included) and waits for its goroutines. It is safe to call more than once.
func (s *TLSServer) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.ln.Close()
		for c := range s.conns {
			c.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *TLSServer) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			// Close makes Accept fail; any other error on a test
			// listener is not worth retrying either.
			return
		}
		if !s.track(conn) {
			conn.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(conn)
			s.handle(conn)
		}()
	}
}

// track registers conn for Close; false if the server is closing.
func (s *TLSServer) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[conn] = struct{}{}
	return true
}

func (s *TLSServer) untrack(conn net.Conn) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
}

func (s *TLSServer) handle(conn net.Conn) {
	switch s.mode {
	case TLSValid:
		s.handleValid(conn)
	case TLSResetAfterClientHello:
		conn.SetReadDeadline(time.Now().Add(clientHelloTimeout))
		if _, err := readRecord(conn); err == nil {
			if tcp, ok := conn.(*net.TCPConn); ok {
				// A zero linger makes Close send a RST.
				tcp.SetLinger(0)
			}
		}
		conn.Close()
	case TLSStall:
		conn.SetReadDeadline(time.Now().Add(clientHelloTimeout))
		if _, err := readRecord(conn); err != nil {
			conn.Close()
			return
		}
		// Never answer: wait until the client gives up or Close.
		conn.SetReadDeadline(time.Time{})
		io.Copy(io.Discard, conn)
		conn.Close()
	case TLSCloseAfterClientHello, TLSAlertAfterClientHello, TLSHTTPRedirect:
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(clientHelloTimeout))
		if _, err := readRecord(conn); err != nil {
			return
		}
		switch s.mode {
		case TLSAlertAfterClientHello:
			conn.Write(alertHandshakeFailure)
		case TLSHTTPRedirect:
			io.WriteString(conn, PortalResponse)
		}
	}
}

func (s *TLSServer) handleValid(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(tlsConnTimeout))
	tc := tls.Server(conn, s.config)
	if err := tc.Handshake(); err != nil {
		return
	}
	if _, err := io.WriteString(tc, greeting); err != nil {
		return
	}
	io.Copy(io.Discard, tc)
}

// readRecord reads one TLS handshake record (the ClientHello) and returns
// it, header included.
func readRecord(r io.Reader) ([]byte, error) {
	header := make([]byte, recordHeaderLen)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, err
	}
	if header[0] != recordTypeHandshake {
		return nil, fmt.Errorf("record type %d is not a handshake", header[0])
	}
	n := int(binary.BigEndian.Uint16(header[3:5]))
	if n > maxRecordLen {
		return nil, fmt.Errorf("record length %d exceeds %d", n, maxRecordLen)
	}
	record := make([]byte, recordHeaderLen+n)
	copy(record, header)
	if _, err := io.ReadFull(r, record[recordHeaderLen:]); err != nil {
		return nil, err
	}
	return record, nil
}
