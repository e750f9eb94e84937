package tlsprobe

import (
	"bytes"
	"context"
	"crypto/tls"
	"testing"

	"github.com/reachprobe/reachprobe/probes/failure"
	"github.com/reachprobe/reachprobe/probes/probetest"
)

// TestHandshakeAnswers checks that answers to the ClientHello that mean
// different things are recorded apart: a server's alert, a middlebox's
// HTTP page, a FIN and a RST.
func TestHandshakeAnswers(t *testing.T) {
	tests := []struct {
		name        string
		mode        probetest.TLSMode
		wantFailure string
		wantAlert   string
		wantBytes   []byte
	}{
		{"alert", probetest.TLSAlertAfterClientHello, failure.SSLFailedHandshake, "handshake_failure", nil},
		{"http page", probetest.TLSHTTPRedirect, failure.HTTPResponseToTLS, "", []byte(probetest.PortalResponse)},
		{"fin", probetest.TLSCloseAfterClientHello, failure.EOF, "", nil},
		{"rst", probetest.TLSResetAfterClientHello, failure.ConnectionReset, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startServer(t, tt.mode, tls.Certificate{}, nil)
			obs := DialHandshake(context.Background(), addr, Config{ServerName: courier, ALPN: []string{apns}})
			if obs.Failure != tt.wantFailure || obs.Operation != failure.OpTLSHandshake {
				t.Errorf("Failure, Operation = %q, %q; want %q, %q", obs.Failure, obs.Operation, tt.wantFailure, failure.OpTLSHandshake)
			}
			if obs.TLS.Alert != tt.wantAlert {
				t.Errorf("Alert = %q, want %q", obs.TLS.Alert, tt.wantAlert)
			}
			if !bytes.Equal(obs.TLS.ServerBytes, tt.wantBytes) {
				t.Errorf("ServerBytes = %q, want %q", obs.TLS.ServerBytes, tt.wantBytes)
			}
		})
	}
}

func TestFirstBytesCapped(t *testing.T) {
	c := &firstBytesConn{}
	for range 3 {
		c.record(bytes.Repeat([]byte("x"), 300))
	}
	if got := len(c.bytes()); got != failure.MaxEvidenceBytes {
		t.Errorf("kept %d bytes, want %d", got, failure.MaxEvidenceBytes)
	}
}
