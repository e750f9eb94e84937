// Package measurements is reachprobe's data model and its storage: runs,
// the observations a run makes, and how both are kept in SQLite.
//
// It is not where observations are made (that is probes) nor where they are
// judged (that is analysis); it imports nothing of ours, so both can build
// on it.
package measurements

import (
	"net/netip"
	"time"
)

// Step names the kind of network operation an observation records.
type Step string

// The steps a run performs, in the order a target is measured.
const (
	StepDNS  Step = "dns"  // one lookup of one name by one engine
	StepTCP  Step = "tcp"  // one TCP connect to one address and port
	StepTLS  Step = "tls"  // one TLS handshake over TCP
	StepQUIC Step = "quic" // one QUIC handshake over UDP
	StepUDP  Step = "udp"  // one STUN binding exchange over UDP
	// StepArrival: datagrams of several kinds sent to one UDP address and
	// port, and what each drew (ArrivalDetails).
	StepArrival Step = "arrival"
	// StepTrace: a TTL-limited trace of one flow against a control flow,
	// and where the first stops (TraceDetails).
	StepTrace Step = "trace"
)

// Steps lists every Step, for validation and iteration.
var Steps = []Step{StepDNS, StepTCP, StepTLS, StepQUIC, StepUDP, StepArrival, StepTrace}

// Groups of targets in a catalog.
const (
	GroupPush     = "push"     // Apple Push Notification service
	GroupIdentity = "identity" // IDS and Apple ID, behind iMessage and FaceTime
	GroupCall     = "call"     // FaceTime relays
	GroupQUIC     = "quic"     // QUIC endpoints
	GroupControl  = "control"  // non-Apple hosts that tell an outage from a block
)

// Groups lists every group, in the order reports show them.
var Groups = []string{GroupPush, GroupIdentity, GroupCall, GroupQUIC, GroupControl}

// Skip reasons: why a step was recorded without being attempted.
const (
	// SkipNoIPv6Route: the probe's host has no route to IPv6 destinations,
	// so an IPv6 address says nothing about the target.
	SkipNoIPv6Route = "no_ipv6_route"
	// SkipBogon: the address is private, loopback or otherwise not routable
	// on the internet and lies outside the target's expected networks; the
	// probe does not connect to it (it could be a device on the user's LAN).
	SkipBogon = "bogon_address"
)

// Observation is one network step, failure included. A failed step is data,
// not an error: Failure and Operation say what went wrong and where.
type Observation struct {
	ID      int64 // assigned by the store
	RunID   int64 // the run that made it
	Step    Step
	Group   string // catalog group of the target
	Target  string // catalog name of the target
	Host    string // the name resolved or connected to
	Address string // IP address, empty for a DNS lookup
	Port    int    // 0 for a DNS lookup
	// Transport is "tcp" or "udp" for the connection the step used.
	Transport string
	// Repeat counts repetitions of the run's measurements, from 0.
	Repeat int
	// Control is true when the step is a control measurement: an encrypted
	// DNS lookup or a TLS handshake with the control server name (SNI swap).
	Control bool
	// Confirmation is true for the steps of a run's confirmation pass:
	// endpoints and names the first passes left suspect, measured again
	// after a delay within the same run, so that a block is told from a
	// moment's outage. Their Repeat follows the run's last repetition.
	Confirmation bool
	// PortCheck is true for a connect or datagram sent to a control host
	// on a port a suspect endpoint failed on: it tells a port this network
	// closes for every destination from one closed only toward Apple. It
	// is not one of the control host's own endpoints.
	PortCheck bool

	Started  time.Time     // wall clock when the step began (UTC)
	Duration time.Duration // how long the step took

	// Failure is empty on success, otherwise a string of OONI's failure
	// vocabulary such as "generic_timeout_error" or "connection_reset".
	Failure string
	// Operation is the operation that failed ("resolve", "connect",
	// "tls_handshake", "quic_handshake", "read", "write"), empty on success.
	Operation string
	// Skipped, when set, says why the step was not attempted (Skip*
	// constants); Failure is then empty.
	Skipped string

	// Exactly one of the following is set, matching Step.
	DNS  *DNSDetails  `json:",omitempty"`
	TCP  *TCPDetails  `json:",omitempty"`
	TLS  *TLSDetails  `json:",omitempty"` // for StepTLS and StepQUIC
	STUN *STUNDetails `json:",omitempty"`
	// Arrival is set for StepArrival.
	Arrival *ArrivalDetails `json:",omitempty"`
	// Trace is set for StepTrace. Address and Port are the test flow's.
	Trace *TraceDetails `json:",omitempty"`
}

// Succeeded reports whether the step was attempted and did not fail.
func (o *Observation) Succeeded() bool { return o.Failure == "" && o.Skipped == "" }

// DNS engines.
const (
	EngineSystem = "system" // the resolver applications use
	EngineUDP    = "udp"    // plain DNS over UDP to the configured nameserver
	EngineTCP    = "tcp"    // plain DNS over TCP (after truncation)
	EngineDoH    = "doh"    // DNS over HTTPS, the encrypted control
)

// DNSDetails records one lookup.
type DNSDetails struct {
	Engine    string `json:"engine"`   // Engine* constants
	Resolver  string `json:"resolver"` // nameserver address or DoH URL; "" for system
	QueryType string `json:"query_type"`
	// TransactionID is the DNS message ID, 0 when the engine hides it.
	TransactionID uint16 `json:"transaction_id,omitempty"`
	// Rcode is the response code name ("NOERROR", "NXDOMAIN", ...); empty
	// when no response arrived or the engine does not expose it.
	Rcode     string      `json:"rcode,omitempty"`
	Truncated bool        `json:"truncated,omitempty"`
	Answers   []DNSAnswer `json:"answers,omitempty"`
	// CNAMEs is the chain of canonical names followed from the query name.
	CNAMEs []string `json:"cnames,omitempty"`
	// Late holds further responses to the same query that arrived within
	// the listening window after the first one; on-path injectors race the
	// real resolver, so two responses to one query are a signature.
	// It keeps the first MaxLateResponses whole; LateDropped counts the
	// ones after those and LateDroppedBytes their size, so that a flood,
	// itself a signature, is recorded without growing with it.
	Late             []DNSResponse `json:"late,omitempty"`
	LateDropped      int           `json:"late_dropped,omitempty"`
	LateDroppedBytes int64         `json:"late_dropped_bytes,omitempty"`
	// Listened is how long a plain UDP lookup listened for late responses
	// after the first one. ListenCut, when set, says why it stopped
	// before its listening window ran out (ListenCut* constants): the
	// first response was shown to be the name's, so a response after it
	// could only be one applications do not use. Empty ListenCut with a
	// first response means the window ran full (every observation stored
	// before windows could be cut), so a late response arriving in it
	// would be in Late.
	Listened  time.Duration `json:"listened,omitempty"`
	ListenCut string        `json:"listen_cut,omitempty"`
	// RawResponse is the first response in wire format, when there was one.
	RawResponse []byte `json:"raw_response,omitempty"`
}

// Why a plain lookup stopped listening for late responses before its
// window ran out (DNSDetails.ListenCut). An on-path injector racing the
// resolver makes the first response the forged one, and neither reason
// can hold for a forged answer: so a window is never cut on the race an
// injector wins, and the genuine answer behind a forged one is still
// heard.
const (
	// ListenCutControlAgrees: the first response gave what the encrypted
	// control (DoH) gave for the same query type: addresses all among the
	// control's, or no address where the control has none either.
	ListenCutControlAgrees = "control_agrees"
	// ListenCutHandshakeVerified: every address of the first response
	// the control did not give is one where a handshake for the target's
	// server name verified.
	ListenCutHandshakeVerified = "handshake_verified"
)

// MaxLateResponses is how many late responses to one query a lookup keeps
// whole. An injector and the genuine resolver make two; a few more show a
// pattern (several injectors, duplicates). Beyond that a flood is only
// counted: kept whole, a one-second flood of 64 KB responses cost a run a
// gigabyte of memory.
const MaxLateResponses = 4

// DNSResponse is one response to a query, as received.
type DNSResponse struct {
	Rcode   string        `json:"rcode"`
	Answers []DNSAnswer   `json:"answers,omitempty"`
	Delay   time.Duration `json:"delay"` // after the query was sent
	Raw     []byte        `json:"raw,omitempty"`
}

// DNSAnswer is one resource record of an answer section.
type DNSAnswer struct {
	Name string `json:"name"`
	Type string `json:"type"` // "A", "AAAA", "CNAME"
	// Data is the address for A and AAAA, the target name for CNAME.
	Data string `json:"data"`
	TTL  uint32 `json:"ttl"`
	// Unused, for an address, says why the probe did not measure it
	// (Unused* constants); empty when it was measured or, in a late
	// response, never meant to be.
	Unused string `json:"unused,omitempty"`
	// ASN and ASOrgName are the autonomous system of an A or AAAA
	// address, looked up in the probe's embedded database when the
	// lookup was made (as OONI's answers carry asn and as_org_name); 0
	// and "" when unknown, private or not looked up. They tell a
	// server's network (Apple's AS714 and AS6185) from a stranger's.
	ASN       uint   `json:"asn,omitempty"`
	ASOrgName string `json:"as_org_name,omitempty"`
}

// AnswerAddrs returns the A and AAAA addresses of answers, in order and
// unmapped, leaving out the records UnusedOffChain marks: the addresses
// the answer gives its query name.
func AnswerAddrs(answers []DNSAnswer) []netip.Addr {
	var out []netip.Addr
	for _, a := range answers {
		if a.Type != "A" && a.Type != "AAAA" || a.Unused == UnusedOffChain {
			continue
		}
		if ip, err := netip.ParseAddr(a.Data); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// Why an address of an answer was recorded but not measured.
const (
	// UnusedOffChain: the record's owner is neither the query name nor
	// a name of its CNAME chain. A resolver has no business answering
	// for another name; a censor could use it to send probes anywhere.
	UnusedOffChain = "off_chain"
	// UnusedOverCap: the lookups of the name gave more addresses of the
	// family than a target measures (MaxAddressesPerFamily).
	UnusedOverCap = "over_cap"
)

// MaxAddressesPerFamily caps the addresses of one family measured per
// target and repetition. Apple's and the controls' names answer with one
// to four addresses per resolver; eight leaves room for three resolvers
// disagreeing while a resolver answering with thousands (a 64 KB TCP answer
// holds 4094 A records) cannot make volunteers' probes a traffic source
// toward third parties: at most 8 addresses × 2 families × the target's
// ports are contacted.
const MaxAddressesPerFamily = 8

// TCPDetails records one connect. The interesting facts (address, port,
// failure, timing) live in the Observation; LocalFamily is kept for
// analysis of address-family problems.
type TCPDetails struct {
	Family string `json:"family"` // "ipv4" or "ipv6"
}

// TLSDetails records one TLS handshake, over TCP or (QUIC) over UDP.
type TLSDetails struct {
	Network    string   `json:"network"` // "tcp" or "udp" (QUIC)
	ServerName string   `json:"server_name"`
	ALPN       []string `json:"alpn,omitempty"`
	// ClientHello names the client fingerprint presented, e.g. "Safari-16.0".
	ClientHello        string `json:"client_hello,omitempty"`
	NegotiatedProtocol string `json:"negotiated_protocol,omitempty"`
	TLSVersion         string `json:"tls_version,omitempty"`  // "TLSv1.3"
	CipherSuite        string `json:"cipher_suite,omitempty"` // IANA name
	// PeerCertificates is the chain the peer sent, leaf first, DER.
	PeerCertificates [][]byte `json:"peer_certificates,omitempty"`
	// Verified reports whether the chain verified against the system roots
	// plus any extra roots (and, for Apple's targets, Apple's roots), for
	// ServerName. VerifyFailure says why not.
	Verified      bool   `json:"verified"`
	VerifyFailure string `json:"verify_failure,omitempty"`
	// Alert names the TLS alert the peer sent to end the handshake
	// ("handshake_failure"), when it sent one.
	Alert string `json:"alert,omitempty"`
	// ServerBytes are the first bytes the peer sent when they were not
	// TLS (a block page's or a captive portal's HTTP answer), at most 512.
	// They are hostile: shown only escaped, never raw.
	ServerBytes []byte `json:"server_bytes,omitempty"`
	// Anchor names the trust anchor the chain verified to, the server name
	// aside (Anchor* constants): set when the chain is a trusted
	// authority's even if it is not valid for ServerName. Empty when it
	// reached no anchor, and in observations stored before it was recorded.
	Anchor string `json:"anchor,omitempty"`
}

// Trust anchors of TLSDetails.Anchor.
const (
	// AnchorSystem: the system roots plus the user's --ca-file.
	AnchorSystem = "system"
	// AnchorApple: Apple's roots (embedded, or --apple-ca-file), against
	// which the probe verifies Apple's targets too.
	AnchorApple = "apple"
)

// STUNDetails records one STUN binding exchange (RFC 5389).
type STUNDetails struct {
	TransactionID []byte `json:"transaction_id"`
	// ExpectAnswer copies the catalog: whether this endpoint is known to
	// answer STUN, without which silence proves nothing.
	ExpectAnswer bool   `json:"expect_answer"`
	Attempts     int    `json:"attempts"`        // requests sent (retransmissions)
	Responded    bool   `json:"responded"`       // a response with our transaction ID arrived
	Class        string `json:"class,omitempty"` // "success" or "error"
	// MappedAddressSeen says the response carried the probe's public
	// address; the address itself is never stored.
	MappedAddressSeen bool `json:"mapped_address_seen,omitempty"`
	// ResponseBytes is the size of the first valid response.
	ResponseBytes int `json:"response_bytes,omitempty"`
	// ICMP is the ICMP error that ended the exchange, when the socket
	// could read it (Linux, IP_RECVERR).
	ICMP *ICMPDetails `json:"icmp,omitempty"`
}

// ICMPDetails records an ICMP error answering a datagram. The address it
// came from is not kept (it may be a router inside the volunteer's own
// network): only whether it was the address the datagram went to.
type ICMPDetails struct {
	IPv6 bool `json:"ipv6,omitempty"`
	Type int  `json:"type"`
	Code int  `json:"code"`
	// FromTarget says the ICMP came from the target address itself: the
	// datagram reached that host (a port unreachable then means nothing
	// listens on the port, not that the path is blocked).
	FromTarget bool `json:"from_target"`
}

// ArrivalDetails records the datagram kinds sent to one UDP address and
// port and the evidence each drew. No address other than the target's is
// kept: an ICMP error's sender is reduced to whether it was the target.
type ArrivalDetails struct {
	// ICMPSkipped says why ICMP errors could not be read (no IP_RECVERR):
	// then silence and an ICMP error look alike.
	ICMPSkipped string        `json:"icmp_skipped,omitempty"`
	Kinds       []ArrivalKind `json:"kinds"`
}

// Datagram kinds of ArrivalKind.Kind, as the probe names them.
const (
	ArrivalSTUN         = "stun"                  // a STUN binding request
	ArrivalQUICReserved = "quic_reserved_version" // a QUIC Initial with a reserved version
	ArrivalQUICv1       = "quic_v1"               // a QUIC v1 Initial like FaceTime's relay client's
	ArrivalRandom       = "random"                // random bytes
)

// Evidence of one datagram kind, strongest first.
const (
	// ArrivalAnswer: a datagram came back from the target address.
	ArrivalAnswer = "answer"
	// ArrivalPortUnreachable: the target itself sent an ICMP port
	// unreachable: the datagram arrived at the host.
	ArrivalPortUnreachable = "port_unreachable_from_target"
	// ArrivalICMPFromTarget: another ICMP error from the target address
	// (its own firewall): the datagram arrived at the host.
	ArrivalICMPFromTarget = "icmp_from_target"
	// ArrivalICMPFromOther: an ICMP error from another address (a
	// firewall's reject on the path): not arrival.
	ArrivalICMPFromOther = "icmp_from_other_host"
	// ArrivalSilence: nothing came back.
	ArrivalSilence = "silence"
)

// ArrivalKind is what one kind of datagram drew.
type ArrivalKind struct {
	Kind     string `json:"kind"`     // Arrival* kinds
	Sent     int    `json:"sent"`     // datagrams sent
	Size     int    `json:"size"`     // bytes of each
	Evidence string `json:"evidence"` // the strongest evidence seen
	// Answers counts datagrams from the target (capped by the probe);
	// AnswerBytes is the size of the first.
	Answers     int `json:"answers,omitempty"`
	AnswerBytes int `json:"answer_bytes,omitempty"`
	// STUNClass is "success" or "error" for a STUN response with our
	// transaction ID.
	STUNClass string `json:"stun_class,omitempty"`
	// VersionNegotiation is "valid" for a QUIC Version Negotiation that
	// echoes our connection IDs, or why one was ignored.
	VersionNegotiation string `json:"version_negotiation,omitempty"`
	// ICMP is the first ICMP error read, without its sender's address.
	ICMP *ICMPDetails `json:"icmp,omitempty"`
	// Failure is a local failure (a socket that could not be made).
	Failure string `json:"failure,omitempty"`
}

// Arrived reports whether this kind proved that a datagram reached the
// target host: an answer from it, or an ICMP error it sent itself.
func (k ArrivalKind) Arrived() bool {
	switch k.Evidence {
	case ArrivalAnswer, ArrivalPortUnreachable, ArrivalICMPFromTarget:
		return true
	}
	return false
}

// TraceDetails records one TTL-limited trace: a test flow (the one
// suspected blocked) probed side by side with a control flow, hop by hop.
//
// Hop addresses are kept here because mapping them to networks needs
// them, but they are never exported: the first hops identify the
// volunteer. Exports give hop numbers, AS numbers and AS names only.
//
// A reset trace (Kind TraceKindReset) sends a TLS ClientHello with
// lowered TTLs on connected sockets: Tries are those ClientHellos, Hops
// the TTL-limited probes that named each hop's router (a trace to the
// same address), and Stop the hop past which the reset is injected.
type TraceDetails struct {
	// Kind is TraceKindTTL (empty in runs stored before reset traces) or
	// TraceKindReset.
	Kind    string    `json:"kind,omitempty"`
	Test    TraceFlow `json:"test"`
	Control TraceFlow `json:"control"`
	// ControlTarget names the catalog target whose address the control
	// flow went to; the test's own target for a control to the same
	// address.
	ControlTarget string     `json:"control_target,omitempty"`
	Hops          []TraceHop `json:"hops"`
	Stop          TraceStop  `json:"stop"`
	Probes        int        `json:"probes"`
	// Skipped says why no probe could be read (no IP_RECVERR); Failure a
	// local failure or an interruption; BudgetSpent that the run's budget
	// of path probes ran out before the trace was complete.
	Skipped     string `json:"skipped,omitempty"`
	Failure     string `json:"failure,omitempty"`
	BudgetSpent bool   `json:"budget_spent,omitempty"`
	// Tries are a reset trace's ClientHellos, in the order sent.
	Tries []TraceTry `json:"tries,omitempty"`
	// ResetTTL is the smallest TTL whose ClientHello with the target's
	// server name drew the reset (a reset trace; 0: none did). Stop.Hop
	// is ResetTTL-1 when the reset comes before the server's hop.
	ResetTTL int `json:"reset_ttl,omitempty"`
}

// Kinds of trace.
const (
	TraceKindTTL   = "ttl"   // TTL-limited probes of a test and a control flow
	TraceKindReset = "reset" // TTL-limited ClientHellos on connected sockets
)

// IsReset reports whether d is a reset trace.
func (d *TraceDetails) IsReset() bool { return d.Kind == TraceKindReset }

// Outcomes of a TraceTry.
const (
	TraceTryReset         = "reset"          // the connection was reset
	TraceTryEOF           = "eof"            // closed with a FIN
	TraceTryData          = "data"           // the server answered: the ClientHello got through
	TraceTrySilence       = "silence"        // nothing within the wait
	TraceTryConnectFailed = "connect_failed" // the TCP handshake itself failed
)

// TraceTry is one ClientHello of a reset trace, sent with TTL on a
// connection made with the normal TTL.
type TraceTry struct {
	TTL     int    `json:"ttl"`
	Role    string `json:"role"` // "test" (the target's server name) or "control"
	Outcome string `json:"outcome"`
	Failure string `json:"failure,omitempty"`
}

// TraceFlow is one flow of a trace.
type TraceFlow struct {
	Network string `json:"network"` // "udp" or "tcp" (a SYN)
	Address string `json:"address"` // the flow's destination
	Port    int    `json:"port"`
	// Payload names what each UDP probe carried: "" for zero bytes, or
	// a datagram kind (ArrivalQUICv1: a QUIC v1 Initial, as the trace
	// of a QUIC endpoint sends, so that a filter of QUIC drops it).
	Payload string `json:"payload,omitempty"`
}

// Replies of a TraceHop.
const (
	TraceReplyNone         = "none"          // nothing within the wait
	TraceReplyTimeExceeded = "time_exceeded" // a router at this TTL answered
	TraceReplyDestination  = "destination"   // the destination answered
	TraceReplyReset        = "reset"         // a TCP SYN drew a RST
	TraceReplyUnreachable  = "unreachable"   // an ICMP unreachable from a host that is not the destination
)

// TraceHop is one TTL-limited probe.
type TraceHop struct {
	TTL   int    `json:"ttl"`
	Role  string `json:"role"` // "test" or "control"
	Reply string `json:"reply"`
	// Addr is who answered; empty for silence. Never exported.
	Addr   string `json:"addr,omitempty"`
	ASN    uint   `json:"asn,omitempty"`
	ASName string `json:"as_name,omitempty"`
	// Private says Addr is private or reserved space: the volunteer's own
	// network (a home router, a school's or an office's).
	Private bool `json:"private,omitempty"`
}

// TraceStop is where the test flow stops, when the trace could place it.
type TraceStop struct {
	Known bool `json:"known"`
	// Hop is the last router that saw the test flow (0: none did).
	Hop    int    `json:"hop"`
	Addr   string `json:"addr,omitempty"` // never exported
	ASN    uint   `json:"asn,omitempty"`
	ASName string `json:"as_name,omitempty"`
	// Private says the stop's address is private or reserved space.
	Private        bool   `json:"private,omitempty"`
	Rejected       bool   `json:"rejected,omitempty"`
	DestinationHop int    `json:"destination_hop,omitempty"`
	Reason         string `json:"reason"`
}

// Run statuses.
const (
	RunRunning     = "running"     // in progress, or crashed before it could say
	RunComplete    = "complete"    // every planned step finished
	RunInterrupted = "interrupted" // stopped by a signal or found unfinished later
	RunFailed      = "failed"      // could not measure (e.g. the run deadline passed with steps pending)
)

// Run is one invocation of "reachprobe run".
type Run struct {
	ID              int64
	Started         time.Time
	Ended           time.Time // zero while running
	Status          string
	SoftwareVersion string
	CatalogDigest   string // hex SHA-256 of the catalog file's bytes
	CatalogName     string // "default" or the --targets path's base name
	Observations    int    // count, filled by queries that list runs
}

// Target is one entry of a catalog: a host and how to measure it. The
// probes package parses catalogs into Targets; analysis reads them to know
// what was expected (networks, whether a UDP endpoint answers STUN).
type Target struct {
	Name  string // unique within the catalog
	Group string // one of Groups
	Host  string // the name resolved and connected to
	Ports []int
	// Transports lists the steps to run after DNS: "tcp", "tls", "quic",
	// "udp" (a STUN binding request).
	Transports []string
	// ServerName is the TLS server name; Host when the catalog omits it.
	ServerName string
	// ControlServerName is the server name of the SNI swap: the same
	// address and port, a name a censor has no reason to block.
	ControlServerName string
	ALPN              []string
	// Networks are the prefixes the host's addresses are expected in. An
	// address inside them is never skipped as a bogon.
	Networks []netip.Prefix
	// STUNAnswers says the UDP endpoints are known to answer a STUN
	// binding request, so their silence is evidence.
	STUNAnswers bool
	// Provider says only app providers' servers use the host (APNs's
	// provider API), never devices: it is measured and reported, but a
	// service's verdict about devices leaves it out.
	Provider bool
	// Line is the line of the catalog file where the target starts.
	Line int
}

// Has reports whether the target is measured over transport.
func (t *Target) Has(transport string) bool {
	for _, tr := range t.Transports {
		if tr == transport {
			return true
		}
	}
	return false
}

// Catalog is the list of targets a run measures and where it came from.
type Catalog struct {
	Name    string // "default" or the file's path
	Digest  string // hex SHA-256 of the file's bytes
	Text    []byte // the file as read, so a run can be re-analysed later
	Targets []Target
}
