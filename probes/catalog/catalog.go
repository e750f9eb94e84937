// Package catalog reads reachprobe's target catalogs: the list of hosts a
// run measures, how (ports, transports, TLS server name, ALPN) and where
// their addresses are expected to be.
//
// # Format
//
// A catalog is a text file of stanzas. Blank lines and lines starting with
// '#' are ignored. A stanza starts with "[target NAME]" and holds
// "key = value" lines; lists are comma-separated:
//
//	[target courier-1]
//	group       = push
//	host        = 1-courier.push.apple.com
//	ports       = 5223, 443
//	transports  = tcp, tls
//	server_name = courier.push.apple.com
//	alpn        = apns-security-v3
//	networks    = 17.0.0.0/8, 2620:149:a44::/48
//
// Keys: group (push, identity, call, quic, control; required), host
// (required), ports (required), transports (tcp, tls, quic, udp; required),
// server_name (default: host), control_server_name (the SNI swap's name;
// default DefaultControlServerName), alpn, networks (CIDR prefixes),
// stun_answers (true or false; default false), audience (device, the
// default, or provider: a host only app providers' servers use, such as
// APNs's provider API, measured and reported but never part of what a
// service's verdict says about devices). An error names the file, the line
// and the key.
//
// The default catalog is embedded in the binary (default.catalog). This
// package does not measure anything.
package catalog

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/inputfile"
)

// DefaultControlServerName is the server name of the SNI swap when a target
// does not name one: a reserved name no censor has a reason to block.
const DefaultControlServerName = "www.example.com"

// DefaultName is the Catalog.Name of the embedded catalog.
const DefaultName = "default"

//go:embed default.catalog
var defaultText []byte

// Transports a target may list.
var validTransports = []string{"tcp", "tls", "quic", "udp"}

// Default returns the embedded default catalog.
func Default() (measurements.Catalog, error) {
	return Parse(DefaultName, defaultText)
}

// MaxFileBytes caps a catalog file, which every run stores whole. The
// default catalog is 5 KB; 4 MiB holds MaxTargets commented targets.
const MaxFileBytes = 4 << 20

// MaxTargets caps the targets of a catalog. A parsed target costs a few
// hundred bytes, twice that while parsing: 100,000 of them took 135 MB
// before the first was measured, too much for a small machine, and more
// than a run can measure (at the default --parallel 64, 10,000 targets
// take minutes of lookups alone). The default catalog has 23.
const MaxTargets = 10000

// Limits of a stanza, from the protocols where they have one.
const (
	// maxTargetNameBytes caps a target's name, which every observation
	// repeats: a DNS label's length.
	maxTargetNameBytes = 63
	// maxALPNBytes is the longest ALPN protocol name (RFC 7301: an
	// 8-bit length, at least one byte).
	maxALPNBytes = 255
	// maxALPNListBytes caps the encoded ALPN list (a length byte and the
	// name for each). The extension's own limit is 65,535 bytes, shared
	// with every other extension of the ClientHello; a list over it makes
	// every handshake fail locally, which would be stored as the network's
	// fault. Real clients offer a few dozen bytes; 1,024 keeps the
	// ClientHello within one TLS record and one QUIC Initial packet's
	// worth of CRYPTO frames.
	maxALPNListBytes = 1024
	// maxListItems caps a ports, transports or networks list: more than
	// that is a mistake, and every item multiplies the traffic of a run.
	maxListItems = 64
)

// Load reads and parses the catalog file at path, refusing a file larger
// than MaxFileBytes.
func Load(path string) (measurements.Catalog, error) {
	b, err := inputfile.Read(path, MaxFileBytes)
	if err != nil {
		return measurements.Catalog{}, fmt.Errorf("reading catalog: %w", err)
	}
	return Parse(path, b)
}

// Error is a problem in a catalog file, with where it is.
type Error struct {
	File string
	Line int
	Key  string // empty when the problem is not about one key
	Msg  string
}

func (e *Error) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Parse parses a catalog's bytes; name is used in errors and as the
// catalog's name.
func Parse(name string, text []byte) (measurements.Catalog, error) {
	cat := measurements.Catalog{Name: name, Text: text}
	sum := sha256.Sum256(text)
	cat.Digest = hex.EncodeToString(sum[:])

	var cur *measurements.Target
	seenKeys := map[string]int{}
	names := map[string]int{}
	finish := func() error {
		if cur == nil {
			return nil
		}
		if err := validate(name, cur, seenKeys); err != nil {
			return err
		}
		if len(cat.Targets) == MaxTargets {
			return &Error{File: name, Line: cur.Line, Msg: fmt.Sprintf("more than %d targets; a catalog holds at most %d", MaxTargets, MaxTargets)}
		}
		cat.Targets = append(cat.Targets, *cur)
		return nil
	}
	// Line by line without splitting the whole text first: a catalog of
	// 100,000 targets has 600,000 lines.
	rest := text
	for lineNo := 1; len(rest) > 0; lineNo++ {
		var raw []byte
		raw, rest, _ = bytes.Cut(rest, []byte("\n"))
		if len(raw) > inputfile.MaxLineBytes {
			return cat, &Error{File: name, Line: lineNo, Msg: inputfile.LineTooLong(len(raw))}
		}
		line := strings.TrimSpace(string(raw))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			if err := finish(); err != nil {
				return cat, err
			}
			tname, err := parseHeader(line)
			if err != nil {
				return cat, &Error{File: name, Line: lineNo, Msg: err.Error()}
			}
			if prev, dup := names[tname]; dup {
				return cat, &Error{File: name, Line: lineNo, Msg: fmt.Sprintf("target %s already defined at line %d", inputfile.Quote(tname), prev)}
			}
			names[tname] = lineNo
			cur = &measurements.Target{Name: tname, Line: lineNo}
			clear(seenKeys)
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return cat, &Error{File: name, Line: lineNo, Msg: fmt.Sprintf("expected \"key = value\" or \"[target NAME]\", got %s", inputfile.Quote(line))}
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if cur == nil {
			return cat, &Error{File: name, Line: lineNo, Key: key, Msg: "key outside a [target NAME] stanza"}
		}
		if prev, dup := seenKeys[key]; dup {
			return cat, &Error{File: name, Line: lineNo, Key: key, Msg: fmt.Sprintf("already set at line %d", prev)}
		}
		seenKeys[key] = lineNo
		if err := setKey(cur, key, value); err != nil {
			return cat, &Error{File: name, Line: lineNo, Key: key, Msg: err.Error()}
		}
	}
	if err := finish(); err != nil {
		return cat, err
	}
	if len(cat.Targets) == 0 {
		return cat, &Error{File: name, Line: 1, Msg: "no [target NAME] stanza: the catalog is empty"}
	}
	return cat, nil
}

func parseHeader(line string) (string, error) {
	if !strings.HasSuffix(line, "]") {
		return "", fmt.Errorf("unterminated stanza header %s", inputfile.Quote(line))
	}
	inner := strings.Fields(line[1 : len(line)-1])
	if len(inner) != 2 || inner[0] != "target" {
		return "", fmt.Errorf("stanza header must be \"[target NAME]\", got %s", inputfile.Quote(line))
	}
	name := inner[1]
	if len(name) > maxTargetNameBytes {
		return "", fmt.Errorf("target name %s is longer than %d bytes", inputfile.Quote(name), maxTargetNameBytes)
	}
	for _, r := range name {
		if !(r == '-' || r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return "", fmt.Errorf("target name %s: only letters, digits, '-', '_' and '.' are allowed", inputfile.Quote(name))
		}
	}
	return name, nil
}

func setKey(t *measurements.Target, key, value string) error {
	if value == "" {
		return fmt.Errorf("empty value")
	}
	if n := strings.Count(value, ",") + 1; n > maxListItems {
		return fmt.Errorf("%d items; a list holds at most %d", n, maxListItems)
	}
	switch key {
	case "group":
		if !slices.Contains(measurements.Groups, value) {
			return fmt.Errorf("%s is not a group (want one of %s)", inputfile.Quote(value), strings.Join(measurements.Groups, ", "))
		}
		t.Group = value
	case "host":
		if err := checkHostname(value); err != nil {
			return err
		}
		t.Host = value
	case "server_name":
		if err := checkHostname(value); err != nil {
			return err
		}
		t.ServerName = value
	case "control_server_name":
		if err := checkHostname(value); err != nil {
			return err
		}
		t.ControlServerName = value
	case "ports":
		for _, f := range splitList(value) {
			p, err := strconv.Atoi(f)
			if err != nil || p < 1 || p > 65535 {
				return fmt.Errorf("%s is not a port (1-65535)", inputfile.Quote(f))
			}
			if slices.Contains(t.Ports, p) {
				return fmt.Errorf("port %d listed twice", p)
			}
			t.Ports = append(t.Ports, p)
		}
	case "transports":
		for _, f := range splitList(value) {
			if !slices.Contains(validTransports, f) {
				return fmt.Errorf("%s is not a transport (want %s)", inputfile.Quote(f), strings.Join(validTransports, ", "))
			}
			if !slices.Contains(t.Transports, f) {
				t.Transports = append(t.Transports, f)
			}
		}
	case "alpn":
		encoded := 0
		for _, f := range splitList(value) {
			if len(f) > maxALPNBytes {
				return fmt.Errorf("ALPN protocol %s is longer than %d bytes", inputfile.Quote(f), maxALPNBytes)
			}
			if slices.Contains(t.ALPN, f) {
				return fmt.Errorf("ALPN protocol %s listed twice", inputfile.Quote(f))
			}
			if encoded += 1 + len(f); encoded > maxALPNListBytes {
				return fmt.Errorf("the ALPN list is longer than %d bytes encoded", maxALPNListBytes)
			}
			t.ALPN = append(t.ALPN, f)
		}
	case "networks":
		for _, f := range splitList(value) {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return fmt.Errorf("%s is not a CIDR prefix", inputfile.Quote(f))
			}
			t.Networks = append(t.Networks, p.Masked())
		}
	case "stun_answers":
		b, err := strconv.ParseBool(value)
		if err != nil {
			return fmt.Errorf("%s is not true or false", inputfile.Quote(value))
		}
		t.STUNAnswers = b
	case "audience":
		switch value {
		case "device":
			t.Provider = false
		case "provider":
			t.Provider = true
		default:
			return fmt.Errorf("%q is not device or provider", value)
		}
	default:
		return fmt.Errorf("unknown key (want group, host, ports, transports, server_name, control_server_name, alpn, networks, stun_answers, audience)")
	}
	return nil
}

// validate checks a finished stanza for required keys and fills defaults.
func validate(file string, t *measurements.Target, seen map[string]int) error {
	for _, key := range []string{"group", "host", "ports", "transports"} {
		if _, ok := seen[key]; !ok {
			return &Error{File: file, Line: t.Line, Key: key, Msg: fmt.Sprintf("target %q: required key missing", t.Name)}
		}
	}
	// "ports = ," sets the key and lists nothing: as good as missing.
	if len(t.Ports) == 0 {
		return &Error{File: file, Line: seen["ports"], Key: "ports", Msg: fmt.Sprintf("target %q: lists no port", t.Name)}
	}
	if len(t.Transports) == 0 {
		return &Error{File: file, Line: seen["transports"], Key: "transports", Msg: fmt.Sprintf("target %q: lists no transport", t.Name)}
	}
	if t.ServerName == "" {
		t.ServerName = t.Host
	}
	if t.ControlServerName == "" {
		t.ControlServerName = DefaultControlServerName
	}
	if line, ok := seen["stun_answers"]; ok && !t.Has("udp") {
		return &Error{File: file, Line: line, Key: "stun_answers", Msg: "set on a target without the udp transport"}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// checkHostname accepts DNS names (LDH labels, optional trailing dot) and
// rejects anything else, IP literals included: the probe resolves targets.
func checkHostname(s string) error {
	name := strings.TrimSuffix(s, ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%s is not a host name (1 to 253 bytes)", inputfile.Quote(s))
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return fmt.Errorf("%s is an IP address; a target is a host name", inputfile.Quote(s))
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%s is not a host name (bad label %s: 1 to 63 bytes, no '-' at either end)", inputfile.Quote(s), inputfile.Quote(label))
		}
		for _, r := range label {
			if !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				return fmt.Errorf("%s is not a host name (character %q)", inputfile.Quote(s), r)
			}
		}
	}
	return nil
}
