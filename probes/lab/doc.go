//go:build lab

// Package lab is reachprobe's censorship lab: three network namespaces
// (a client, a censor routing between the client and a fake internet, and
// the fake internet itself) in which the real reachprobe binary measures
// testdata/lab/lab.catalog while the censor applies one technique the way
// real censors do, with iptables rules, a lying resolver, an on-path DNS
// injector or a TLS-intercepting middlebox.
//
// The package holds the lab's servers, each run in its namespace by
// re-executing the test binary in a role (see Role), and the integration
// tests that build the lab, run "reachprobe run" and "reachprobe analyze"
// in the client namespace and check the verdicts. Every file carries the
// build tag "lab": plain "go test ./..." skips the package, "make lab" runs
// it (as root, with iproute2 and iptables).
//
// # Design
//
// The namespaces are joined by two veth pairs, client<->censor and
// censor<->internet, and none has a link to the host's namespace, so no
// packet can leave the lab. The fake internet routes whole prefixes to its
// loopback (17.0.0.0/8 for Apple, others for the control hosts), so one
// listener bound to 0.0.0.0 answers for every address of them; see Plan.
//
// The package is not a place for verdict logic: the lab checks what the
// analysis says, it does not judge observations itself beyond making sure
// the censor's technique really applied.
package lab
