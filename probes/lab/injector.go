//go:build lab

package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// DefaultReleaseDelay is how long the injector holds a genuine query back
// after sending its forged answer. The forged answer has one hop to go and
// the genuine one a round trip through the fake internet, so any delay
// orders them; a few milliseconds more keeps the order on a loaded machine
// and stays far inside the probe's one-second listening window.
const DefaultReleaseDelay = 20 * time.Millisecond

// forgedTTL is the TTL of the forged records, a typical injected value.
const forgedTTL = 300

// maxCapture is the read buffer of the packet socket: a DNS query over UDP
// fits with room to spare, and a larger packet is not one to forge for.
const maxCapture = 65535

// InjectorConfig configures RoleInjector.
type InjectorConfig struct {
	// Interface is the censor's interface facing the client, where
	// queries arrive.
	Interface string
	// Suffix: A queries for names at or below it are answered with
	// Forged.
	Suffix string
	Forged string
	// ReleaseDelay separates the forged answer and the release of the
	// genuine query; 0 means DefaultReleaseDelay.
	ReleaseDelay time.Duration
	// ForgeAfter, when set, makes an injector that loses the race: the
	// genuine query is not held back (the censor adds no rule), and the
	// forged answer follows it by ForgeAfter, behind the real
	// resolver's.
	ForgeAfter time.Duration
}

// Injector is an on-path DNS injector, as a national firewall runs one:
// it watches the client's queries and answers some of them itself, faster
// than the real resolver.
//
// # Design
//
// On a path where the real resolver is one hop further, a program in user
// space loses the race to the resolver's answer. So the censor holds the
// genuine query back with an iptables rule (DROP in FORWARD, matching the
// same names and type), and the injector, which still sees the query on its
// packet socket because packet sockets read before the firewall, sends a
// forged answer from the resolver's address through a raw socket, then
// releases the genuine query through the same raw socket after
// ReleaseDelay. The client gets the forged answer first and the genuine one
// later: the signature of injection.
//
// A query captured on a veth may carry only a partial UDP checksum
// (offload); the released copy is rebuilt with a full one.
type Injector struct {
	cfg    InjectorConfig
	forged netip.Addr
	sniff  *os.File // AF_PACKET socket bound to the interface
	raw    int      // AF_INET raw socket, IP_HDRINCL

	wg        sync.WaitGroup
	closeOnce sync.Once
	// mu guards the raw socket against Close while a release is sending.
	mu     sync.Mutex
	timers []*time.Timer
	closed bool
}

// StartInjector opens the sockets (which needs CAP_NET_RAW in the
// censor's namespace) and starts watching.
func StartInjector(cfg InjectorConfig) (*Injector, error) {
	forged, err := netip.ParseAddr(cfg.Forged)
	if err != nil || !forged.Is4() {
		return nil, fmt.Errorf("injector: forged address %q is not IPv4", cfg.Forged)
	}
	if _, ok := dns.IsDomainName(cfg.Suffix); !ok || cfg.Suffix == "" {
		return nil, fmt.Errorf("injector: suffix %q is not a domain name", cfg.Suffix)
	}
	if cfg.ReleaseDelay <= 0 {
		cfg.ReleaseDelay = DefaultReleaseDelay
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("injector: %w", err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
	if err != nil {
		return nil, fmt.Errorf("injector: packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("injector: binding to %s: %w", cfg.Interface, err)
	}
	raw, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("injector: raw socket: %w", err)
	}
	inj := &Injector{cfg: cfg, forged: forged, sniff: os.NewFile(uintptr(fd), "packet:"+cfg.Interface), raw: raw}
	inj.wg.Add(1)
	go inj.watch()
	return inj, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Close stops watching, cancels pending releases and closes the sockets.
func (inj *Injector) Close() {
	inj.closeOnce.Do(func() {
		inj.sniff.Close()
		inj.wg.Wait()
		inj.mu.Lock()
		defer inj.mu.Unlock()
		inj.closed = true
		for _, t := range inj.timers {
			t.Stop()
		}
		unix.Close(inj.raw)
	})
}

// watch reads packets from the interface until the socket closes.
func (inj *Injector) watch() {
	defer inj.wg.Done()
	rc, err := inj.sniff.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, maxCapture)
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
			return !errors.Is(rerr, unix.EAGAIN)
		})
		if err != nil {
			return // the socket was closed
		}
		if rerr != nil {
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // our own forged answers leaving towards the client
		}
		inj.handle(buf[:n])
	}
}

// handle forges an answer to pkt when it is a query to forge for, and
// schedules the release of the genuine query.
func (inj *Injector) handle(pkt []byte) {
	forged, original, ok := inj.forge(pkt)
	if !ok {
		return
	}
	if inj.cfg.ForgeAfter > 0 {
		// The genuine query went on its way: the forged answer trails
		// the real resolver's.
		inj.later(inj.cfg.ForgeAfter, forged)
		return
	}
	_ = inj.send(forged)
	inj.later(inj.cfg.ReleaseDelay, original)
}

// later sends pkt after d, unless the injector is closed by then.
func (inj *Injector) later(d time.Duration, pkt []byte) {
	inj.mu.Lock()
	defer inj.mu.Unlock()
	if inj.closed {
		return
	}
	inj.timers = append(inj.timers, time.AfterFunc(d, func() { _ = inj.send(pkt) }))
}

// forge returns the forged answer to pkt and the genuine query rebuilt
// with a full checksum, or false when pkt is not an A query for a name
// under the suffix.
func (inj *Injector) forge(pkt []byte) (forgedPkt, originalPkt []byte, ok bool) {
	p, err := parseUDP4(pkt)
	if err != nil || p.DstPort != 53 {
		return nil, nil, false
	}
	query := new(dns.Msg)
	if err := query.Unpack(p.Payload); err != nil || query.Response || len(query.Question) != 1 {
		return nil, nil, false
	}
	q := query.Question[0]
	if q.Qtype != dns.TypeA || q.Qclass != dns.ClassINET || !dns.IsSubDomain(dns.Fqdn(inj.cfg.Suffix), dns.CanonicalName(q.Name)) {
		return nil, nil, false
	}
	answer := new(dns.Msg).SetReply(query)
	answer.RecursionAvailable = true
	answer.Answer = []dns.RR{&dns.A{
		Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: forgedTTL},
		A:   inj.forged.AsSlice(),
	}}
	wire, err := answer.Pack()
	if err != nil {
		return nil, nil, false
	}
	forgedPkt, err = udpPacket{Src: p.Dst, Dst: p.Src, SrcPort: p.DstPort, DstPort: p.SrcPort, ID: p.ID + 1, Payload: wire}.marshal()
	if err != nil {
		return nil, nil, false
	}
	originalPkt, err = p.marshal()
	if err != nil {
		return nil, nil, false
	}
	return forgedPkt, originalPkt, true
}

// errInjectorClosed is send's error after Close.
var errInjectorClosed = errors.New("injector closed")

// send writes a whole IPv4 packet to the raw socket, which routes it by
// its destination.
func (inj *Injector) send(pkt []byte) error {
	p, err := parseUDP4(pkt)
	if err != nil {
		return err
	}
	inj.mu.Lock()
	defer inj.mu.Unlock()
	if inj.closed {
		return errInjectorClosed
	}
	return unix.Sendto(inj.raw, pkt, 0, &unix.SockaddrInet4{Addr: p.Dst.As4()})
}
