package analysis

import (
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// FormatVersion is the version of the Report and HistoryReport JSON
// formats (FORMAT.md). It changes when a field changes meaning or goes
// away; new fields do not change it.
const FormatVersion = 1

// Version is the version of the analysis's rules. It changes whenever a
// change to the rules can change a verdict: verdicts a run kept under an
// earlier Version (measurements' stored verdicts) are then judged again.
// TestVersionPinsGolden fails when the golden analyses change and Version
// does not.
const Version = 3

// Input is what Analyze needs: one run, the catalog targets it measured and
// every observation it stored.
type Input struct {
	Run          measurements.Run           `json:"run"`
	Targets      []measurements.Target      `json:"targets"`
	Observations []measurements.Observation `json:"observations"`
}

// Verdicts of endpoints, DNS names, targets and services.
const (
	VerdictOK           = "ok"           // reachable
	VerdictDegraded     = "degraded"     // works, but part of it is blocked (targets and services only)
	VerdictBlocked      = "blocked"      // blocked, with a method and corroborated evidence
	VerdictFailed       = "failed"       // broken, but nothing points at a censor
	VerdictUnreachable  = "unreachable"  // silent in every pass while control hosts answer: a block or an outage, nothing tells which
	VerdictRestricted   = "restricted"   // closed by this network for every destination: its own policy, not a block aimed at Apple
	VerdictInconclusive = "inconclusive" // the evidence does not decide
	VerdictSkipped      = "skipped"      // not measured, for a reason that is not a failure (endpoints only)
)

// Verdicts of apps, in plain words.
const (
	AppWorking      = "working"      // every service the app needs is reachable
	AppDegraded     = "degraded"     // works, with part of a service blocked (slower or less reliable)
	AppBlocked      = "blocked"      // a service the app needs is blocked
	AppDown         = "down"         // a service the app needs is broken, not blocked
	AppUnreachable  = "unreachable"  // a service the app needs cannot be reached: a block or an outage, nothing tells which
	AppRestricted   = "restricted"   // a service the app needs is closed by this network's policy for every destination
	AppInconclusive = "inconclusive" // the measurements do not decide
)

// Network statuses.
const (
	NetworkOK             = "ok"              // control hosts reachable, results steady
	NetworkUnstable       = "unstable"        // results vary between tries (packet loss): more evidence is required
	NetworkPartial        = "partial"         // some reference paths fail: verdicts that need them are inconclusive
	NetworkNoConnectivity = "no_connectivity" // nothing could be reached: nothing is called blocked
	NetworkCaptivePortal  = "captive_portal"  // a captive portal answers for the internet: log in first; nothing behind it is judged
	NetworkUnknown        = "unknown"         // no observations
)

// Scopes say whose choice a verdict that is not a censor's rests on.
const (
	// ScopeNetworkPolicy: this network's own documented choice, such as
	// turning iCloud Private Relay off the way Apple documents.
	ScopeNetworkPolicy = "network_policy"
	// ScopeLocalFilter: a DNS filter inside the volunteer's own network
	// (a resolver at a private or loopback address answering 0.0.0.0 or
	// ::, as Pi-hole and AdGuard Home do): their own blocklist.
	ScopeLocalFilter = "local_filter"
	// ScopeLocalProxy: a local proxy answers the lookups with fake
	// addresses (fake-ip mode of Clash and sing-box) and carries the
	// connections.
	ScopeLocalProxy = "local_proxy"
)

// Methods: how a block was done, named after the layer it acts on.
const (
	MethodDNSNXDomain     = "dns.nxdomain"     // the network's resolver denies a name encrypted DNS resolves
	MethodDNSRefused      = "dns.refused"      // the resolver refuses the query
	MethodDNSServfail     = "dns.servfail"     // the resolver fails on the name every time
	MethodDNSTimeout      = "dns.timeout"      // the resolver never answers for the name, though it answers others
	MethodDNSBogon        = "dns.bogon"        // a private or reserved address for a public name
	MethodDNSInjection    = "dns.injection"    // two different answers to one query, one of them forged
	MethodDNSInconsistent = "dns.inconsistent" // addresses outside the expected networks, unlike encrypted DNS's
	MethodTCPTimeout      = "tcp.timeout"      // connects time out while control hosts answer
	MethodTCPReset        = "tcp.reset"        // connects are reset while control hosts answer
	MethodTCPRefused      = "tcp.refused"      // connects are refused while control hosts answer
	MethodTLSReset        = "tls.reset"        // handshakes are reset whatever the server name
	MethodTLSTimeout      = "tls.timeout"      // handshakes stall whatever the server name
	MethodSNIFiltering    = "sni.filtering"    // the target name fails where a control name works on the same address and port
	MethodPortFiltering   = "port.filtering"   // one port fails where another port of the same address works
	MethodTLSInterception = "tls.interception" // a certificate chain that is not the server's
	MethodQUICTimeout     = "quic.timeout"     // QUIC silent while TCP to the same server or QUIC to a control host works
	MethodUDPTimeout      = "udp.timeout"      // STUN silent where an answer is expected and other UDP gets through
	MethodUDPPathDrop     = "udp.path_drop"    // UDP to Apple stops at a hop outside Apple's networks while UDP to a control address passes it
	MethodUDPPayload      = "udp.payload"      // the datagram kinds FaceTime sends are dropped while another kind of the same size reaches Apple's host
	MethodUDPRejected     = "udp.rejected"     // a firewall rejects UDP (ICMP administratively prohibited, or unreachable from another address) while other UDP gets through
	MethodTLSBlockPage    = "tls.blockpage"    // a middlebox answers the ClientHello with an HTTP page while control hosts' handshakes verify
)

// Services are the groups a report judges; the control group is not a
// service but the network's reference.
var Services = []string{
	measurements.GroupPush, measurements.GroupIdentity, measurements.GroupCall, measurements.GroupQUIC,
}

// Apps and the services each needs.
const (
	AppIMessage = "imessage"
	AppFaceTime = "facetime"
)

var appNeeds = map[string][]string{
	AppIMessage: {measurements.GroupPush, measurements.GroupIdentity},
	AppFaceTime: {measurements.GroupPush, measurements.GroupIdentity, measurements.GroupCall},
}

// Report is the analysis of one run.
type Report struct {
	FormatVersion int       `json:"format_version"`
	RunID         int64     `json:"run_id"`
	RunStarted    time.Time `json:"run_started"`
	RunStatus     string    `json:"run_status"`
	Catalog       string    `json:"catalog,omitempty"`
	// Repeats is how many times the run repeated its measurements.
	Repeats   int               `json:"repeats"`
	Network   Network           `json:"network"`
	Apps      []AppVerdict      `json:"apps"`
	Services  []ServiceVerdict  `json:"services"`
	DNS       []DNSVerdict      `json:"dns"`
	Endpoints []EndpointVerdict `json:"endpoints"`
	// Notes are remarks about the run itself (interrupted, unknown targets).
	Notes []string `json:"notes,omitempty"`
}

// Network says whether the network worked well enough to judge anything.
type Network struct {
	Status string        `json:"status"`
	Reason string        `json:"reason"`
	Checks NetworkChecks `json:"checks"`
	// Resolver says what answers this machine's lookups when the analysis
	// recognises something other than an ordinary resolver: "local_proxy"
	// when every name, control names included, gets a local proxy's
	// fake-ip answers (a property of this network, not a block).
	Resolver string `json:"resolver,omitempty"`
}

// NetworkChecks are the reference paths, measured on the control hosts
// (and the network's resolver and encrypted DNS on their names). Each is "ok" (worked in every try of at least one
// host), "flaky" (worked only sometimes), "failed", or "not_measured"; TLS
// may also be "unverified" (handshakes completed, chains did not verify),
// IPv6 "no_route".
type NetworkChecks struct {
	TCP  string `json:"tcp"`
	TLS  string `json:"tls"`
	QUIC string `json:"quic"`
	UDP  string `json:"udp"`
	// DNS is the network's resolver (system and plain engines) on the
	// control names: "ok" when it gave one an address in every try.
	DNS  string `json:"dns"`
	DoH  string `json:"doh"`
	IPv6 string `json:"ipv6"`
	// FlakySeries counts measurements repeated in the run that succeeded in
	// some tries and failed in others: the mark of packet loss.
	FlakySeries int `json:"flaky_series"`
}

// Check values.
const (
	checkOK          = "ok"
	checkFlaky       = "flaky"
	checkFailed      = "failed"
	checkNotMeasured = "not_measured"
	checkUnverified  = "unverified"
	checkNoRoute     = "no_route"
)

// AppVerdict says whether an app can work on this network.
type AppVerdict struct {
	App     string `json:"app"`
	Title   string `json:"title"`
	Verdict string `json:"verdict"`
	Reason  string `json:"reason"`
	// Scope, when set, says the verdict rests on a choice of this network
	// (Scope* values), not on a censor's.
	Scope string `json:"scope,omitempty"`
	// Needs lists the services the app depends on.
	Needs []string `json:"needs"`
}

// ServiceVerdict judges one group of targets.
type ServiceVerdict struct {
	Service string `json:"service"`
	Title   string `json:"title"`
	Verdict string `json:"verdict"`
	// Methods are the blocking methods seen, most common first; empty
	// unless the verdict is blocked or degraded.
	Methods []string `json:"methods"`
	// Scope, when set, says the verdict rests on a choice of this network
	// (Scope* values), not on a censor's.
	Scope      string          `json:"scope,omitempty"`
	Reason     string          `json:"reason"`
	Confidence Confidence      `json:"confidence"`
	Evidence   []string        `json:"evidence"`
	Targets    []TargetVerdict `json:"targets"`
	// Path is where a blocked service's packets stop, from the first of
	// its blocked endpoints a trace placed; nil otherwise.
	Path *PathPlace `json:"path,omitempty"`
}

// Confidence says how much agrees with a service verdict.
type Confidence struct {
	// Level is "high", "medium" or "low" (FORMAT.md says when).
	Level   string `json:"level"`
	Repeats int    `json:"repeats"`
	// Targets counts the service's targets that could be judged (names
	// that do not exist are left out); TargetsAgreeing those whose verdict
	// is the service's.
	Targets         int `json:"targets"`
	TargetsAgreeing int `json:"targets_agreeing"`
	// Endpoints counts measured endpoints (skipped ones left out).
	Endpoints        int `json:"endpoints"`
	EndpointsOK      int `json:"endpoints_ok"`
	EndpointsBlocked int `json:"endpoints_blocked"`
}

// TargetVerdict judges one catalog target: its name and its endpoints.
type TargetVerdict struct {
	Target  string `json:"target"`
	Host    string `json:"host"`
	Verdict string `json:"verdict"`
	Method  string `json:"method,omitempty"`
	// Scope, when set, says the verdict rests on a choice of this network
	// (Scope* values), not on a censor's.
	Scope  string `json:"scope,omitempty"`
	Reason string `json:"reason"`
}

// DNSVerdict judges the lookups of one target's name.
type DNSVerdict struct {
	Target  string `json:"target"`
	Group   string `json:"group"`
	Host    string `json:"host"`
	Verdict string `json:"verdict"`
	Method  string `json:"method,omitempty"`
	// Suspected names the pattern seen when it was not enough to call the
	// name blocked.
	Suspected string `json:"suspected,omitempty"`
	// Scope, when set, says who answered so, when it is not a censor
	// (Scope* values): network_policy, local_filter, local_proxy.
	Scope   string `json:"scope,omitempty"`
	Failure string `json:"failure,omitempty"`
	// ResolverAnswers are the addresses the system and plain resolvers
	// gave (first responses); ControlAnswers encrypted DNS's; Forged the
	// ones judged forged; LateAnswers those only later responses to the
	// same queries gave, which applications do not use.
	ResolverAnswers []string `json:"resolver_answers"`
	ControlAnswers  []string `json:"control_answers"`
	Forged          []string `json:"forged,omitempty"`
	LateAnswers     []string `json:"late_answers,omitempty"`
	Queries         int      `json:"queries"`
	Evidence        string   `json:"evidence"`
}

// EndpointVerdict judges one (target, address, port, transport).
type EndpointVerdict struct {
	Target  string `json:"target"`
	Group   string `json:"group"`
	Host    string `json:"host"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	// Transport is what was measured: "tcp" (connect only), "tls" (connect
	// and handshakes), "quic" or "udp" (STUN).
	Transport string `json:"transport"`
	Verdict   string `json:"verdict"`
	// Method is set only when the verdict is blocked.
	Method string `json:"method,omitempty"`
	// Suspected names the pattern seen when the verdict is inconclusive
	// because it was not corroborated.
	Suspected string `json:"suspected,omitempty"`
	// Failure and Operation are the target path's failure, most common
	// first, as the probe recorded them.
	Failure   string `json:"failure,omitempty"`
	Operation string `json:"operation,omitempty"`
	Skipped   string `json:"skipped,omitempty"`
	// Control says what the control path showed.
	Control string `json:"control,omitempty"`
	// Scope, when set, says the verdict rests on a choice of this network
	// (Scope* values), not on a censor's: network_policy for restricted.
	Scope string `json:"scope,omitempty"`
	// Attempts and Successes count tries of the target path.
	Attempts  int `json:"attempts"`
	Successes int `json:"successes"`
	// Peers counts other endpoints of the group showing the same pattern.
	Peers int `json:"peers,omitempty"`
	// Issuer is the certificate issuer the target path got, when the
	// chain did not verify.
	Issuer   string `json:"issuer,omitempty"`
	Evidence string `json:"evidence"`
	// Path is where the endpoint's packets stop, when a trace placed it.
	Path *PathPlace `json:"path,omitempty"`
}

// PathPlace is where on the path a flow stops, as a trace placed it: the
// hop's number and network, never its address (the first hops identify
// the volunteer).
type PathPlace struct {
	// Hop is the last router that saw the flow (1 is the first router).
	Hop int `json:"hop"`
	// ASN and ASName are that router's network; 0 and "" when unknown.
	ASN    uint   `json:"asn,omitempty"`
	ASName string `json:"as_name,omitempty"`
	// Private says the router's address is private: the network the
	// volunteer is connected to (a home router, a school's, an office's).
	Private bool `json:"private,omitempty"`
	// OwnNetwork says the router is in the AS of the path's first public
	// hop: the volunteer's own provider.
	OwnNetwork bool `json:"own_network,omitempty"`
	// DestinationHop is the hop of the destination, when known.
	DestinationHop int `json:"destination_hop,omitempty"`
}
