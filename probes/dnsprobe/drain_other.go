//go:build !unix

package dnsprobe

import "net"

// drain does nothing where sockets cannot be read without waiting: a
// response queued but not yet read when a window is cut is not recorded.
func drain(net.Conn, []byte, func([]byte)) {}
