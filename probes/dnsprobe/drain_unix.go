//go:build unix

package dnsprobe

import (
	"net"
	"syscall"
)

// maxDrainReads bounds the datagrams drain reads: a flood arriving as
// fast as it is read must not keep a lookup listening past its cut.
const maxDrainReads = 64

// drain passes each datagram already queued on conn to each, without
// waiting for more. conn must have no read deadline in the past (Go does
// not read a socket whose deadline passed).
func drain(conn net.Conn, buf []byte, each func([]byte)) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	for range maxDrainReads {
		var n int
		var rerr error
		// The socket is non-blocking, as every Go socket is: an empty
		// queue is EAGAIN, not a wait.
		if err := rc.Read(func(fd uintptr) bool {
			n, rerr = syscall.Read(int(fd), buf)
			return true
		}); err != nil || rerr != nil || n < 0 {
			return
		}
		each(buf[:n])
	}
}
