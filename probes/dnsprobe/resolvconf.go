package dnsprobe

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/reachprobe/reachprobe/probes/inputfile"
)

// MaxResolvConfBytes caps a resolv.conf file. glibc reads at most three
// nameservers and a few options; 64 KiB is hundreds of times that and
// keeps a wrong path (/dev/zero) from filling memory.
const MaxResolvConfBytes = 64 << 10

// defaultDNSPort is the port of a nameserver line without one.
const defaultDNSPort = 53

// ReadResolvConf returns the nameservers of the resolv.conf file at path
// as "host:port" strings, port 53 unless the line gives one. Besides the
// standard "nameserver 192.0.2.1" and "nameserver 2001:db8::1", it accepts
// "nameserver 127.0.0.1:5353" and "nameserver [::1]:5353" so tests and
// labs can use another port. Comments and other options are ignored;
// duplicates are dropped. A file without a nameserver is an error, and so
// is a nameserver line that is not an address; errors name the file and
// line.
func ReadResolvConf(path string) ([]string, error) {
	b, err := inputfile.Read(path, MaxResolvConfBytes)
	if err != nil {
		return nil, fmt.Errorf("reading resolv.conf: %w", err)
	}
	return parseResolvConf(b, path)
}

// parseResolvConf parses resolv.conf bytes; name is the file name errors
// give.
func parseResolvConf(data []byte, name string) ([]string, error) {
	var servers []string
	for i, raw := range bytes.Split(data, []byte("\n")) {
		if len(raw) > inputfile.MaxLineBytes {
			return nil, fmt.Errorf("%s:%d: %s", name, i+1, inputfile.LineTooLong(len(raw)))
		}
		line := strings.TrimSpace(string(raw))
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		fields := strings.Fields(line)
		if fields[0] != "nameserver" {
			continue
		}
		if len(fields) < 2 {
			return nil, fmt.Errorf("%s:%d: nameserver line without an address", name, i+1)
		}
		server, err := parseNameserver(fields[1])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: nameserver %s: %v", name, i+1, inputfile.Quote(fields[1]), err)
		}
		if !slices.Contains(servers, server) {
			servers = append(servers, server)
		}
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("%s: no nameserver", name)
	}
	return servers, nil
}

// parseNameserver turns an address, with or without a port, into
// "host:port".
func parseNameserver(s string) (string, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return net.JoinHostPort(a.String(), strconv.Itoa(defaultDNSPort)), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return "", errors.New("not an IP address")
	}
	if ap.Port() == 0 {
		return "", errors.New("port 0")
	}
	return ap.String(), nil
}
