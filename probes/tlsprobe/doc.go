// Package tlsprobe performs reachprobe's TCP and TLS steps: one TCP connect
// to one address and port, and one TLS handshake over it that presents an
// Apple client's ClientHello with the catalog's server name and ALPN.
//
// # Design
//
// Each step returns a measurements.Observation; a network failure is data
// in it (Failure and Operation, classified once by probes/failure), never a
// Go error. The handshake always completes without verifying, so the chain
// the server sent is recorded even when it would not verify; the chain is
// then verified against the system roots plus the user's extra roots and,
// for Apple's targets, against Apple's own roots with Apple's intermediates
// offered (apple.go), since Apple's services chain to private roots no
// system store holds and a server may leave its intermediate out. A
// verification failure is recorded as the handshake's failure with
// Verified false; the anchor the chain reached, if any, is recorded too. A censor answering with its own certificate therefore
// shows up as ssl_unknown_authority (or ssl_invalid_hostname) with the
// offending chain attached.
//
// The ClientHello mimics an Apple device (uTLS's newest Apple fingerprint)
// because a censor may single out, or spare, flows by their fingerprint:
// the probe should look like the devices whose reachability it measures.
//
// This package does not resolve names, choose addresses or decide whether
// a failure is censorship; the runner and analysis do.
package tlsprobe
