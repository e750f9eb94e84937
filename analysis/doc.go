// Package analysis turns a run's stored observations into verdicts about
// blocking: per DNS name, per endpoint (address, port, transport), per
// service (push, identity, call, QUIC) and per app (iMessage, FaceTime),
// each with its evidence in plain words. It also follows verdicts across
// runs (History).
//
// It is pure: no network, no clock, no database. It reads observations
// and catalog targets (package measurements) and nothing else; it never
// imports the probes. It does not measure and does not store.
//
// # Design
//
// A false "blocked" is the worst mistake this package can make; an outage,
// a lossy link or a missing IPv6 route is not blocking. So a block is
// never inferred from a failure alone but from a failure next to a control
// that worked, as OONI's experiments do:
//
//   - DNS: the network's resolver against encrypted DNS (DoH), the
//     target's expected networks and AS, and verified handshakes at the
//     answered addresses (dns.go); what honest networks do to DNS
//     (private answers beside usable ones, a proxy's fake-ip answers, the
//     volunteer's own blocklist, Private Relay's documented opt-out, a
//     second answer from a second upstream) is told apart in
//     dns_quirks.go;
//   - TLS: the target's server name against a control name on the same
//     address and port, the SNI swap; a port against another port of the
//     same address; an address against the control hosts (endpoint.go);
//   - chains: by keys, never by issuer names: a leaf signed by Apple's
//     key (package appleca) or another known one is the server's; one no
//     known key signed, against a chain for the same name verified
//     elsewhere or a certificate the same address made for the control
//     name (certs.go);
//   - QUIC and STUN: against QUIC to a control host or TCP to the same
//     address, and UDP that got through elsewhere (endpoint_udp.go).
//
// Evidence must then hold in every try of the run, next to its control in
// the same try, and be corroborated (corroborate.go): a pattern must hold
// over time (repetitions, or the run's confirmation pass: Candidates says
// what the runner measures again after a pause, suspects and their
// references), independent servers (outside the same /24 or /48) must
// agree, and silence, which packet loss imitates, needs most of the
// service's endpoints to agree, and all of them, in enough tries to rule
// out chance, when the network is seen losing packets. Bare silence, with
// nothing that separates a censor from an outage, is "unreachable"; a port
// this network closes for every destination is "restricted", its policy.
// When nothing at all answers, nothing is called blocked (network.go).
// When the network's resolver gives no address for any name, control
// names included, it is an outage: its names are failed, not blocked, and
// so are their targets, since apps use that resolver whatever encrypted
// DNS finds (resolver.go). Targets, services and apps are then judged by
// majority (aggregate.go).
//
// The JSON format of Report and HistoryReport is documented in FORMAT.md;
// golden files under testdata/ pin the verdicts of typical scenarios.
package analysis
