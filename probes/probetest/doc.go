// Package probetest runs the servers reachprobe's tests and namespace lab
// measure: DNS, DoH, TLS, QUIC, STUN, and TCP ports that refuse or never
// answer. Not for production use.
package probetest
