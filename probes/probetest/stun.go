package probetest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// STUNMode says how a STUNServer treats Binding requests.
type STUNMode int

const (
	// STUNAnswer answers with a success response carrying the sender's
	// XOR-MAPPED-ADDRESS, as a FaceTime relay does.
	STUNAnswer STUNMode = iota
	// STUNSilent reads requests and never answers, as a port whose
	// responses are dropped looks.
	STUNSilent
	// STUNReject answers with an error response (400 Bad Request).
	STUNReject
)

// STUN wire constants (RFC 5389). This encoder is written apart from
// probes/stunprobe's codec on purpose: the server checks the client
// against an independent reading of the RFC.
const (
	stunHeaderSize       = 20
	stunMagicCookie      = 0x2112A442
	stunBindingRequest   = 0x0001
	stunBindingSuccess   = 0x0101
	stunBindingError     = 0x0111
	stunXORMappedAddress = 0x0020
	stunErrorCode        = 0x0009
	stunFingerprint      = 0x8028
	stunFingerprintXOR   = 0x5354554e
	stunMaxDatagram      = 4096
)

// STUNServer answers STUN Binding requests on one or more UDP ports.
type STUNServer struct {
	mode STUNMode
	// mapped, when valid, is the address every answer reports instead of
	// the request's source (StartMappingSTUN).
	mapped netip.AddrPort
	// vnPrefixes are the addresses that answer unknown QUIC versions
	// with Version Negotiation (StartRelayPorts).
	vnPrefixes []netip.Prefix
	conns      []*net.UDPConn
	mu         sync.Mutex // guards mapped and vnPrefixes
	requests   atomic.Int64
	wg         sync.WaitGroup
}

// StartSTUN serves Binding requests on addr ("127.0.0.1:0", "0.0.0.0:3478",
// "[::1]:0") and answers them. Bound to an unspecified address, it answers
// from the address each request was sent to (IP_PKTINFO), so it works for
// every address of a prefix routed locally.
func StartSTUN(addr string) (*STUNServer, error) {
	return startSTUN(STUNAnswer, addr)
}

// StartSilentSTUN is StartSTUN in STUNSilent mode.
func StartSilentSTUN(addr string) (*STUNServer, error) {
	return startSTUN(STUNSilent, addr)
}

// StartMappingSTUN is StartSTUN answering every request with mapped as
// the requester's address: it stands for a server on the internet that
// sees the probe's public address, which on loopback no server could.
func StartMappingSTUN(addr string, mapped netip.AddrPort) (*STUNServer, error) {
	s, err := startSTUN(STUNAnswer, addr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.mapped = mapped
	s.mu.Unlock()
	return s, nil
}

// StartSTUNPorts serves on each port of ip in mode, e.g. the FaceTime
// ranges UDP 3478-3497, 16384-16387 and 16393-16402 on "0.0.0.0".
func StartSTUNPorts(ip string, ports []int, mode STUNMode) (*STUNServer, error) {
	addrs := make([]string, len(ports))
	for i, p := range ports {
		addrs[i] = net.JoinHostPort(ip, strconv.Itoa(p))
	}
	return startSTUN(mode, addrs...)
}

func startSTUN(mode STUNMode, addrs ...string) (*STUNServer, error) {
	if len(addrs) == 0 {
		return nil, errors.New("probetest: no STUN address")
	}
	s := &STUNServer{mode: mode}
	for _, a := range addrs {
		conn, err := listenUDPFamily(a)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.conns = append(s.conns, conn)
	}
	for _, conn := range s.conns {
		serve, err := s.server(conn)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			serve()
		}()
	}
	return s, nil
}

// Addr returns the address of the first port served.
func (s *STUNServer) Addr() netip.AddrPort { return s.Addrs()[0] }

// Addrs returns the addresses of every port served, in the order given.
func (s *STUNServer) Addrs() []netip.AddrPort {
	out := make([]netip.AddrPort, len(s.conns))
	for i, c := range s.conns {
		out[i] = c.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	return out
}

// Requests returns how many Binding requests the server has received.
func (s *STUNServer) Requests() int { return int(s.requests.Load()) }

// Close stops the server and waits for its goroutines.
func (s *STUNServer) Close() error {
	var err error
	for _, c := range s.conns {
		err = errors.Join(err, c.Close())
	}
	s.wg.Wait()
	return err
}

// server returns the read loop for conn. It reads the destination address
// of each datagram and sends the answer from it, through the IPv4 or IPv6
// control messages that match the socket's family. Only the source is
// set, not the interface, so the reply follows the routing table.
func (s *STUNServer) server(conn *net.UDPConn) (func(), error) {
	var (
		read  func(b []byte) (n int, dst net.IP, from net.Addr, err error)
		write func(b []byte, src net.IP, to net.Addr)
	)
	if conn.LocalAddr().(*net.UDPAddr).IP.To4() != nil {
		pc := ipv4.NewPacketConn(conn)
		if err := pc.SetControlMessage(ipv4.FlagDst, true); err != nil {
			return nil, err
		}
		read = func(b []byte) (int, net.IP, net.Addr, error) {
			n, cm, from, err := pc.ReadFrom(b)
			if cm == nil {
				return n, nil, from, err
			}
			return n, cm.Dst, from, err
		}
		write = func(b []byte, src net.IP, to net.Addr) { _, _ = pc.WriteTo(b, &ipv4.ControlMessage{Src: src}, to) }
	} else {
		pc := ipv6.NewPacketConn(conn)
		if err := pc.SetControlMessage(ipv6.FlagDst, true); err != nil {
			return nil, err
		}
		read = func(b []byte) (int, net.IP, net.Addr, error) {
			n, cm, from, err := pc.ReadFrom(b)
			if cm == nil {
				return n, nil, from, err
			}
			return n, cm.Dst, from, err
		}
		write = func(b []byte, src net.IP, to net.Addr) { _, _ = pc.WriteTo(b, &ipv6.ControlMessage{Src: src}, to) }
	}
	return func() {
		buf := make([]byte, stunMaxDatagram)
		for {
			n, dst, from, err := read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue // e.g. an ICMP error reported on the socket
			}
			if resp := s.answer(buf[:n], from); resp != nil {
				write(resp, dst, from)
			} else if resp := s.answerVN(buf[:n], dst); resp != nil {
				write(resp, dst, from)
			}
		}
	}, nil
}

// answer returns the response to the datagram req from src, or nil when
// req is not a Binding request or the server stays silent.
func (s *STUNServer) answer(req []byte, src net.Addr) []byte {
	if len(req) < stunHeaderSize ||
		binary.BigEndian.Uint16(req[0:]) != stunBindingRequest ||
		int(binary.BigEndian.Uint16(req[2:])) != len(req)-stunHeaderSize ||
		binary.BigEndian.Uint32(req[4:]) != stunMagicCookie {
		return nil
	}
	s.requests.Add(1)
	udpSrc, ok := src.(*net.UDPAddr)
	if !ok {
		return nil
	}
	var id [12]byte
	copy(id[:], req[8:stunHeaderSize])
	switch s.mode {
	case STUNAnswer:
		s.mu.Lock()
		mapped := s.mapped
		s.mu.Unlock()
		if !mapped.IsValid() {
			mapped = udpSrc.AddrPort()
		}
		return stunResponse(stunBindingSuccess, id, stunXORAddress(mapped, id))
	case STUNReject:
		return stunResponse(stunBindingError, id, stunErrorAttr(400, "Bad Request"))
	}
	return nil
}

// stunResponse builds a message of type typ with one attribute (already
// padded) and a FINGERPRINT.
func stunResponse(typ uint16, id [12]byte, attr []byte) []byte {
	b := make([]byte, stunHeaderSize, stunHeaderSize+len(attr)+8)
	binary.BigEndian.PutUint16(b[0:], typ)
	binary.BigEndian.PutUint16(b[2:], uint16(len(attr)+8))
	binary.BigEndian.PutUint32(b[4:], stunMagicCookie)
	copy(b[8:], id[:])
	b = append(b, attr...)
	crc := crc32.ChecksumIEEE(b) ^ stunFingerprintXOR
	b = binary.BigEndian.AppendUint16(b, stunFingerprint)
	b = binary.BigEndian.AppendUint16(b, 4)
	return binary.BigEndian.AppendUint32(b, crc)
}

// stunXORAddress encodes an XOR-MAPPED-ADDRESS attribute for ap.
func stunXORAddress(ap netip.AddrPort, id [12]byte) []byte {
	var key [16]byte
	binary.BigEndian.PutUint32(key[:], stunMagicCookie)
	copy(key[4:], id[:])
	ip := ap.Addr().Unmap()
	raw := ip.AsSlice()
	family := byte(0x01)
	if ip.Is6() {
		family = 0x02
	}
	b := binary.BigEndian.AppendUint16(nil, stunXORMappedAddress)
	b = binary.BigEndian.AppendUint16(b, uint16(4+len(raw)))
	b = append(b, 0, family)
	b = binary.BigEndian.AppendUint16(b, ap.Port()^uint16(stunMagicCookie>>16))
	for i, c := range raw {
		b = append(b, c^key[i])
	}
	return b
}

// stunErrorAttr encodes an ERROR-CODE attribute, padded.
func stunErrorAttr(code int, reason string) []byte {
	v := []byte{0, 0, byte(code / 100), byte(code % 100)}
	v = append(v, reason...)
	b := binary.BigEndian.AppendUint16(nil, stunErrorCode)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// listenUDPFamily binds a UDP socket of addr's family: "udp4" for an IPv4 (or
// empty) host, "udp6" for IPv6. A dual-stack socket would receive IPv4 as
// mapped addresses and complicate answering from the right source.
func listenUDPFamily(addr string) (*net.UDPConn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	network := "udp4"
	if host == "" {
		host = "0.0.0.0"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil, fmt.Errorf("probetest: %q: host must be an IP address", addr)
	}
	if ip.Is6() && !ip.Is4In6() {
		network = "udp6"
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("probetest: %q: bad port", addr)
	}
	return net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip.Unmap(), uint16(p))))
}
