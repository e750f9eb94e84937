package export

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/miekg/dns"

	"github.com/reachprobe/reachprobe/analysis"
	"github.com/reachprobe/reachprobe/measurements"
)

// ooniTestKeys are the test keys of one target's measurement: OONI's
// standard lists (df-002, df-005, df-006, df-008) and reachprobe's own
// verdicts under "reachprobe".
type ooniTestKeys struct {
	Queries        []ooniQuery        `json:"queries"`
	DNSLateReplies []ooniQuery        `json:"dns_late_replies"`
	TCPConnect     []ooniTCPConnect   `json:"tcp_connect"`
	TLSHandshakes  []ooniHandshake    `json:"tls_handshakes"`
	NetworkEvents  []ooniNetworkEvent `json:"network_events"`
	Reachprobe     ooniReachprobe     `json:"reachprobe"`

	runtime float64 // the end of the last step, for test_runtime
}

// ooniQuery is one DNS lookup (df-002).
type ooniQuery struct {
	Answers          []ooniAnswer `json:"answers"`
	Engine           string       `json:"engine"`
	Failure          *string      `json:"failure"`
	Hostname         string       `json:"hostname"`
	QueryType        string       `json:"query_type"`
	RawResponse      []byte       `json:"raw_response,omitempty"`
	Rcode            int64        `json:"rcode,omitempty"`
	ResolverHostname *string      `json:"resolver_hostname"`
	ResolverPort     *string      `json:"resolver_port"`
	ResolverAddress  string       `json:"resolver_address"`
	T0               float64      `json:"t0"`
	T                float64      `json:"t"`
	Tags             []string     `json:"tags"`
	TransactionID    int64        `json:"transaction_id"`
}

// ooniAnswer is one answer record. asn and as_org_name are present for
// A and AAAA records only.
type ooniAnswer struct {
	ASN        *uint   `json:"asn,omitempty"`
	ASOrgName  *string `json:"as_org_name,omitempty"`
	AnswerType string  `json:"answer_type"`
	Hostname   string  `json:"hostname,omitempty"`
	IPv4       string  `json:"ipv4,omitempty"`
	IPv6       string  `json:"ipv6,omitempty"`
	TTL        *uint32 `json:"ttl"`
}

// ooniTCPConnect is one TCP connect (df-005).
type ooniTCPConnect struct {
	IP            string        `json:"ip"`
	Port          int           `json:"port"`
	Status        ooniTCPStatus `json:"status"`
	T0            float64       `json:"t0"`
	T             float64       `json:"t"`
	Tags          []string      `json:"tags"`
	TransactionID int64         `json:"transaction_id"`
}

type ooniTCPStatus struct {
	Failure *string `json:"failure"`
	Success bool    `json:"success"`
}

// ooniHandshake is one TLS or QUIC handshake (df-006; network "udp" for
// QUIC).
type ooniHandshake struct {
	Network            string           `json:"network"`
	Address            string           `json:"address"`
	ALPN               []string         `json:"alpn"`
	CipherSuite        string           `json:"cipher_suite"`
	Failure            *string          `json:"failure"`
	NegotiatedProtocol string           `json:"negotiated_protocol"`
	NoTLSVerify        bool             `json:"no_tls_verify"`
	PeerCertificates   []ooniBinaryData `json:"peer_certificates"`
	ServerName         string           `json:"server_name"`
	T0                 float64          `json:"t0"`
	T                  float64          `json:"t"`
	Tags               []string         `json:"tags"`
	TLSVersion         string           `json:"tls_version"`
	TransactionID      int64            `json:"transaction_id"`
}

// ooniBinaryData is OONI's BinaryData (df-001): bytes in base64.
type ooniBinaryData struct {
	Data   []byte `json:"data"` // encoding/json writes []byte as base64
	Format string `json:"format"`
}

// ooniNetworkEvent is one network event (df-008): the outcome of a STUN
// exchange.
type ooniNetworkEvent struct {
	Address       string   `json:"address"`
	Failure       *string  `json:"failure"`
	NumBytes      int64    `json:"num_bytes"`
	Operation     string   `json:"operation"`
	Proto         string   `json:"proto"`
	T0            float64  `json:"t0"`
	T             float64  `json:"t"`
	Tags          []string `json:"tags"`
	TransactionID int64    `json:"transaction_id"`
}

// ooniReachprobe is reachprobe's analysis of the target, and what OONI's
// formats have no place for.
type ooniReachprobe struct {
	AnalysisFormatVersion int                        `json:"analysis_format_version"`
	RunID                 int64                      `json:"run_id"`
	RunStatus             string                     `json:"run_status"`
	Target                string                     `json:"target"`
	Group                 string                     `json:"group"`
	Repeats               int                        `json:"repeats"`
	Network               analysis.Network           `json:"network"`
	Service               *ooniService               `json:"service"`
	TargetVerdict         *analysis.TargetVerdict    `json:"target_verdict"`
	DNS                   *analysis.DNSVerdict       `json:"dns"`
	Endpoints             []analysis.EndpointVerdict `json:"endpoints"`
	STUN                  []ooniSTUN                 `json:"stun"`
	// Arrival and Traces are path evidence; OONI has no standard test
	// keys for either (see README, OONI export).
	Arrival []ooniArrival `json:"arrival"`
	Traces  []exportTrace `json:"traces"`
	Skipped []ooniSkipped `json:"skipped"`
}

// ooniService is the verdict on the target's service.
type ooniService struct {
	Service    string   `json:"service"`
	Verdict    string   `json:"verdict"`
	Methods    []string `json:"methods"`
	Confidence string   `json:"confidence"`
	Reason     string   `json:"reason"`
}

// ooniSTUN is one STUN exchange, matching a network event by
// transaction_id.
type ooniSTUN struct {
	Address       string  `json:"address"`
	ExpectAnswer  bool    `json:"expect_answer"`
	Attempts      int     `json:"attempts"`
	Responded     bool    `json:"responded"`
	Class         string  `json:"class"`
	Failure       *string `json:"failure"`
	TransactionID int64   `json:"transaction_id"`
}

// ooniArrival is one arrival step: the target's address and port, and
// what each datagram kind drew.
type ooniArrival struct {
	Address string  `json:"address"`
	T0      float64 `json:"t0"`
	T       float64 `json:"t"`
	measurements.ArrivalDetails
}

// ooniSkipped is a step recorded without being attempted.
type ooniSkipped struct {
	Step    string `json:"step"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Reason  string `json:"reason"`
}

// newTestKeys makes the test keys of target t from its observations obs,
// timed from zero.
func newTestKeys(r *Run, t measurements.Target, obs []*measurements.Observation, zero time.Time, opts OONIOptions) *ooniTestKeys {
	k := &ooniTestKeys{
		Queries: []ooniQuery{}, DNSLateReplies: []ooniQuery{}, TCPConnect: []ooniTCPConnect{},
		TLSHandshakes: []ooniHandshake{}, NetworkEvents: []ooniNetworkEvent{},
		Reachprobe: newReachprobeKeys(r, t),
	}
	for i, o := range obs {
		txID := int64(i + 1)
		t0, t1 := seconds(o.Started, zero), seconds(o.Started.Add(o.Duration), zero)
		if o.Started.IsZero() {
			t0, t1 = 0, o.Duration.Seconds()
		}
		k.runtime = max(k.runtime, t1)
		tags := ooniTags(o)
		if o.Skipped != "" {
			k.Reachprobe.Skipped = append(k.Reachprobe.Skipped, ooniSkipped{Step: string(o.Step), Address: o.Address, Port: o.Port, Reason: o.Skipped})
			continue
		}
		switch {
		case o.Step == measurements.StepDNS && o.DNS != nil:
			k.Queries = append(k.Queries, ooniQueryOf(o, o.DNS.Rcode, o.DNS.Answers, o.DNS.RawResponse, t0, t1, tags, txID, opts))
			for _, late := range o.DNS.Late {
				lt := t0 + late.Delay.Seconds()
				q := ooniQueryOf(o, late.Rcode, late.Answers, late.Raw, lt, lt, with(tags, "late"), txID, opts)
				q.Failure = lateFailure(late)
				k.DNSLateReplies = append(k.DNSLateReplies, q)
			}
		case o.Step == measurements.StepTCP:
			k.TCPConnect = append(k.TCPConnect, ooniTCPConnect{
				IP: o.Address, Port: o.Port, Status: ooniTCPStatus{Failure: failureOf(o), Success: o.Failure == ""},
				T0: t0, T: t1, Tags: tags, TransactionID: txID,
			})
		case (o.Step == measurements.StepTLS || o.Step == measurements.StepQUIC) && o.TLS != nil:
			k.TLSHandshakes = append(k.TLSHandshakes, ooniHandshakeOf(o, t0, t1, tags, txID))
		case o.Step == measurements.StepUDP && o.STUN != nil:
			event := ooniNetworkEvent{
				Address: endpoint(o), Failure: failureOf(o), Operation: "read", Proto: "udp",
				T0: t0, T: t1, Tags: with(tags, "stun"), TransactionID: txID,
			}
			if o.Failure != "" && o.Operation != "" {
				event.Operation = o.Operation
			}
			event.NumBytes = int64(o.STUN.ResponseBytes)
			k.NetworkEvents = append(k.NetworkEvents, event)
			k.Reachprobe.STUN = append(k.Reachprobe.STUN, ooniSTUN{
				Address: endpoint(o), ExpectAnswer: o.STUN.ExpectAnswer, Attempts: o.STUN.Attempts,
				Responded: o.STUN.Responded, Class: o.STUN.Class, Failure: failureOf(o), TransactionID: txID,
			})
		case o.Step == measurements.StepArrival && o.Arrival != nil:
			k.Reachprobe.Arrival = append(k.Reachprobe.Arrival, ooniArrival{Address: endpoint(o), T0: t0, T: t1, ArrivalDetails: *o.Arrival})
		case o.Step == measurements.StepTrace && o.Trace != nil:
			k.Reachprobe.Traces = append(k.Reachprobe.Traces, *traceView(o.Trace))
		}
	}
	return k
}

// newReachprobeKeys gathers the analysis's verdicts on target t.
func newReachprobeKeys(r *Run, t measurements.Target) ooniReachprobe {
	rep := &r.Report
	k := ooniReachprobe{
		AnalysisFormatVersion: rep.FormatVersion, RunID: r.Run.ID, RunStatus: r.Run.Status,
		Target: t.Name, Group: t.Group, Repeats: rep.Repeats, Network: rep.Network,
		Endpoints: []analysis.EndpointVerdict{}, STUN: []ooniSTUN{}, Skipped: []ooniSkipped{},
		Arrival: []ooniArrival{}, Traces: []exportTrace{},
	}
	for i := range rep.Services {
		s := &rep.Services[i]
		if s.Service != t.Group {
			continue
		}
		k.Service = &ooniService{Service: s.Service, Verdict: s.Verdict, Methods: s.Methods, Confidence: s.Confidence.Level, Reason: s.Reason}
		for j := range s.Targets {
			if s.Targets[j].Target == t.Name {
				k.TargetVerdict = &s.Targets[j]
			}
		}
	}
	for i := range rep.DNS {
		if rep.DNS[i].Target == t.Name {
			k.DNS = &rep.DNS[i]
		}
	}
	for _, e := range rep.Endpoints {
		if e.Target == t.Name {
			k.Endpoints = append(k.Endpoints, e)
		}
	}
	return k
}

func ooniQueryOf(o *measurements.Observation, rcode string, answers []measurements.DNSAnswer, raw []byte,
	t0, t1 float64, tags []string, txID int64, opts OONIOptions) ooniQuery {
	q := ooniQuery{
		Answers: []ooniAnswer{}, Engine: o.DNS.Engine, Failure: failureOf(o), Hostname: o.Host,
		QueryType: o.DNS.QueryType, RawResponse: raw, ResolverAddress: o.DNS.Resolver,
		T0: t0, T: t1, Tags: tags, TransactionID: txID,
	}
	if code, ok := dns.StringToRcode[rcode]; ok {
		q.Rcode = int64(code)
	}
	for _, a := range answers {
		ans := ooniAnswer{AnswerType: a.Type}
		if o.DNS.Engine != measurements.EngineSystem {
			ttl := a.TTL // the system resolver does not tell TTLs: null
			ans.TTL = &ttl
		}
		switch a.Type {
		case "A", "AAAA":
			if a.Type == "A" {
				ans.IPv4 = a.Data
			} else {
				ans.IPv6 = a.Data
			}
			// The AS the probe recorded when it looked the name up,
			// else the exporter's database.
			asn, org := a.ASN, a.ASOrgName
			if addr, err := netip.ParseAddr(a.Data); err == nil && asn == 0 && opts.LookupASN != nil {
				asn, org = opts.LookupASN(addr)
			}
			ans.ASN, ans.ASOrgName = &asn, &org
		default:
			ans.Hostname = a.Data
		}
		q.Answers = append(q.Answers, ans)
	}
	return q
}

func ooniHandshakeOf(o *measurements.Observation, t0, t1 float64, tags []string, txID int64) ooniHandshake {
	d := o.TLS
	h := ooniHandshake{
		Network: d.Network, Address: endpoint(o), ALPN: d.ALPN, CipherSuite: d.CipherSuite, Failure: failureOf(o),
		NegotiatedProtocol: d.NegotiatedProtocol, PeerCertificates: []ooniBinaryData{}, ServerName: d.ServerName,
		T0: t0, T: t1, Tags: tags, TLSVersion: d.TLSVersion, TransactionID: txID,
	}
	if h.Network == "" {
		h.Network = o.Transport
	}
	if h.ALPN == nil {
		h.ALPN = []string{}
	}
	for _, der := range d.PeerCertificates {
		h.PeerCertificates = append(h.PeerCertificates, ooniBinaryData{Data: der, Format: "base64"})
	}
	return h
}

// ooniTags labels an event: "control" for a control measurement (DoH
// lookup, SNI swap), "repeat=N" for the repetition it belongs to.
func ooniTags(o *measurements.Observation) []string {
	tags := []string{"repeat=" + strconv.Itoa(o.Repeat)}
	if o.Control {
		tags = append(tags, "control")
	}
	return tags
}

// with returns tags and tag in a new slice.
func with(tags []string, tag string) []string {
	return append(slices.Clip(tags), tag)
}

// lateFailure is the failure a late response stands for, nil (JSON null)
// for one with answers, as OONI reads response codes.
func lateFailure(late measurements.DNSResponse) *string {
	f := ""
	switch late.Rcode {
	case "NOERROR":
		if len(late.Answers) == 0 {
			f = "dns_no_answer"
		}
	case "NXDOMAIN":
		f = "dns_nxdomain_error"
	case "REFUSED":
		f = "dns_refused_error"
	case "SERVFAIL":
		f = "dns_servfail_error"
	default:
		f = "dns_server_misbehaving"
	}
	if f == "" {
		return nil
	}
	return &f
}

// failureOf returns the observation's failure, nil (JSON null) on success.
func failureOf(o *measurements.Observation) *string {
	if o.Failure == "" {
		return nil
	}
	f := o.Failure
	return &f
}

// endpoint is "address:port", "[address]:port" for IPv6.
func endpoint(o *measurements.Observation) string {
	return net.JoinHostPort(o.Address, strconv.Itoa(o.Port))
}

// seconds is t - zero in seconds, rounded to the microsecond.
func seconds(t, zero time.Time) float64 {
	return float64(t.Sub(zero).Round(time.Microsecond)) / float64(time.Second)
}
