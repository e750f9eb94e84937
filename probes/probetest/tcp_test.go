//go:build unix

package probetest

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// shortConnectTimeout is how long tests wait for a connect that should
// time out: far longer than a loopback connect takes, short enough for CI.
const shortConnectTimeout = time.Second

func TestRefusingPort(t *testing.T) {
	addr, err := StartRefusingPort()
	if err != nil {
		t.Fatal(err)
	}
	if !addr.Addr().IsLoopback() {
		t.Errorf("address %v is not loopback", addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), shortConnectTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr.String())
	if err == nil {
		conn.Close()
		t.Fatalf("connect to %v succeeded, want connection refused", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("connect: %v, want ECONNREFUSED", err)
	}
}

func TestBlackholePort(t *testing.T) {
	b, err := StartBlackholePort(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), shortConnectTimeout)
	defer cancel()
	var d net.Dialer
	start := time.Now()
	conn, err := d.DialContext(ctx, "tcp", b.Addr().String())
	if err == nil {
		conn.Close()
		t.Skipf("this kernel completed a connect to a listener with a full accept queue; BlackholePort does not work here")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		t.Fatalf("connect: %v, want a timeout", err)
	}
	if elapsed := time.Since(start); elapsed < shortConnectTimeout/2 {
		t.Errorf("connect failed after %v, want it to wait for the %v timeout", elapsed, shortConnectTimeout)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
