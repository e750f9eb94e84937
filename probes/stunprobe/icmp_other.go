//go:build !linux

package stunprobe

import (
	"net"
	"net/netip"
	"syscall"
)

// recvErr: reading ICMP errors back needs Linux's IP_RECVERR.
var recvErr func(network, address string, c syscall.RawConn) error

// withICMP returns err: elsewhere the ICMP message is not read.
func withICMP(_ net.Conn, _ netip.Addr, err error) error { return err }
