package failure

import (
	"strconv"
	"unicode/utf8"
)

// MaxTextBytes caps the free text a failure or a detail keeps from the
// network (error messages, QUIC close reasons, certificate errors naming
// the certificate's fields). Go's own error texts are well under it; a
// hostile server's 9 MB status line is not, and stored once per lookup it
// would cost megabytes of memory and database per observation. 512 bytes
// keep every message a person needs to read.
const MaxTextBytes = 512

// Text returns s as reachprobe stores free text from the network: its
// first MaxTextBytes at most, cut on a character boundary and ended with
// "…[truncated, N bytes]" (N the size of the whole), with every IP address
// scrubbed. The cut never splits an address: characters that could belong
// to one are dropped back from the cut before scrubbing, so no partial
// address survives.
func Text(s string) string {
	if len(s) <= MaxTextBytes {
		return Scrub(s)
	}
	cut := MaxTextBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	for cut > 0 && addressByte(s[cut-1]) {
		cut--
	}
	return Scrub(s[:cut]) + "…[truncated, " + strconv.Itoa(len(s)) + " bytes]"
}

// addressByte reports whether c can be part of an IP literal.
func addressByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == '.' || c == ':' || c == '%'
}
