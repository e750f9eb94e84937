package quicprobe

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/reachprobe/reachprobe/probes/failure"
)

// TestStatelessResetClassified forces a quic-go server to answer with a
// stateless reset: after a handshake, the server's socket is replaced by a
// new transport on the same port with the same StatelessResetKey, which
// knows nothing of the connection and resets it (RFC 9000 §10.3). The
// client's error must classify as quic_stateless_reset, not as a timeout
// or a closed connection.
// resetRetryInterval is how long the test waits for a stateless reset
// before the client sends another packet of the old connection.
const resetRetryInterval = 300 * time.Millisecond

func TestStatelessResetClassified(t *testing.T) {
	pki := newPKI(t)
	cert, err := pki.trusted.Leaf("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	var key quic.StatelessResetKey
	copy(key[:], "reachprobe stateless reset key!!")
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h3"}, MinVersion: tls.VersionTLS13}

	udp1, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Skipf("cannot listen: %v", err)
	}
	addr := udp1.LocalAddr().(*net.UDPAddr)
	tr1 := &quic.Transport{Conn: udp1, StatelessResetKey: &key}
	ln1, err := tr1.Listen(serverTLS, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{})
	go func() {
		sc, err := ln1.Accept(context.Background())
		if err != nil {
			return
		}
		// A stream from the server: by the time the client reads it,
		// the server's HANDSHAKE_DONE has arrived too, so the client has
		// stopped sending Handshake packets, which a stateless reset
		// never answers (RFC 9000 §10.3 applies to short headers).
		if str, err := sc.OpenUniStream(); err == nil {
			str.Write([]byte("x"))
			str.Close()
		}
		close(accepted)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	conn, err := quic.DialAddr(ctx, addr.String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h3"}}, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-accepted:
	case <-ctx.Done():
		t.Fatal("the server did not accept the connection")
	}
	str, err := conn.AcceptUniStream(ctx)
	if err != nil {
		t.Fatalf("no stream from the server: %v", err)
	}
	if _, err := io.ReadAll(str); err != nil {
		t.Fatalf("reading the server's stream: %v", err)
	}
	// The first server vanishes without a word: its socket closes under it.
	udp1.Close()
	tr1.Close()
	udp2, err := net.ListenUDP("udp4", addr)
	if err != nil {
		t.Skipf("cannot listen again on %v: %v", addr, err)
	}
	tr2 := &quic.Transport{Conn: udp2, StatelessResetKey: &key}
	defer tr2.Close()
	ln2, err := tr2.Listen(serverTLS, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()

	// Any packet of the old connection now draws a stateless reset. The
	// client sends again until one does: on a loaded machine the first
	// packet may leave before the new server reads, or be too small to
	// answer (quic-go answers no packet of 42 bytes or fewer: a reset must
	// be smaller than what triggers it).
	for reset := false; !reset; {
		if str, err := conn.OpenUniStream(); err == nil {
			str.Write(make([]byte, 256))
			str.Close()
		}
		select {
		case <-conn.Context().Done():
			reset = true
		case <-time.After(resetRetryInterval):
		case <-ctx.Done():
			t.Fatal("the connection was not reset")
		}
	}
	err = context.Cause(conn.Context())
	if got := failure.Classify(err); got != failure.QUICStatelessReset {
		t.Errorf("Classify(%v) = %q, want %q", err, got, failure.QUICStatelessReset)
	}
}
