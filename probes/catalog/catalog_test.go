package catalog

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

func TestDefaultCatalog(t *testing.T) {
	cat, err := Default()
	if err != nil {
		t.Fatalf("Default() error: %v", err)
	}
	groups := map[string]int{}
	for _, tg := range cat.Targets {
		groups[tg.Group]++
	}
	for _, g := range measurements.Groups {
		if groups[g] == 0 {
			t.Errorf("default catalog has no %s target", g)
		}
	}
	var courier *measurements.Target
	for i := range cat.Targets {
		if cat.Targets[i].Name == "courier-1" {
			courier = &cat.Targets[i]
		}
	}
	if courier == nil {
		t.Fatal("default catalog has no courier-1")
	}
	apple := netip.MustParsePrefix("17.0.0.0/8")
	if courier.Host != "1-courier.push.apple.com" || courier.ServerName != "courier.push.apple.com" ||
		!slices.Equal(courier.ALPN, []string{"apns-security-v3"}) || !slices.Equal(courier.Ports, []int{5223, 443}) ||
		!slices.Contains(courier.Networks, apple) {
		t.Errorf("courier-1 = %+v, want host 1-courier.push.apple.com, server name courier.push.apple.com, ALPN apns-security-v3, ports 5223,443, network 17.0.0.0/8", courier)
	}
	if len(cat.Digest) != 64 {
		t.Errorf("digest %q is not hex SHA-256", cat.Digest)
	}
}

func TestParseValid(t *testing.T) {
	text := `# a comment
[target a]
group = push
host = a.example.
ports = 443, 5223
transports = tcp, tls, tls

[target b]
group = call
host = b.example
ports = 3478
transports = udp
stun_answers = true
networks = 17.0.0.1/8, 2001:db8::/32
control_server_name = ctl.example
`
	cat, err := Parse("t.catalog", []byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(cat.Targets) != 2 {
		t.Fatalf("got %d targets, want 2", len(cat.Targets))
	}
	a, b := cat.Targets[0], cat.Targets[1]
	if a.ServerName != "a.example." || a.ControlServerName != DefaultControlServerName || a.Line != 2 ||
		!slices.Equal(a.Transports, []string{"tcp", "tls"}) {
		t.Errorf("target a = %+v", a)
	}
	if !b.STUNAnswers || b.Networks[0] != netip.MustParsePrefix("17.0.0.0/8") || b.ControlServerName != "ctl.example" || b.Line != 8 {
		t.Errorf("target b = %+v", b)
	}
}

func TestParseErrors(t *testing.T) {
	base := "[target x]\ngroup = push\nhost = x.example\nports = 443\ntransports = tcp\n"
	tests := []struct {
		name string
		text string
		line int
		key  string
		msg  string
	}{
		{"empty", "# nothing\n", 1, "", "empty"},
		{"key outside stanza", "group = push\n", 1, "group", "outside"},
		{"bad header", "[targets x]\n", 1, "", "stanza header"},
		{"unterminated header", "[target x\n", 1, "", "unterminated"},
		{"no equals", "[target x]\ngroup push\n", 2, "", "key = value"},
		{"unknown group", strings.Replace(base, "push", "pull", 1), 2, "group", `"pull" is not a group`},
		{"bad port", strings.Replace(base, "443", "443, 70000", 1), 4, "ports", `"70000" is not a port`},
		{"port twice", strings.Replace(base, "443", "443,443", 1), 4, "ports", "twice"},
		{"empty port list", strings.Replace(base, "443", ",", 1), 4, "ports", "lists no port"},
		{"empty transport list", strings.Replace(base, "transports = tcp", "transports = ,", 1), 5, "transports", "lists no transport"},
		{"bad transport", strings.Replace(base, "tcp", "sctp", 1), 5, "transports", `"sctp" is not a transport`},
		{"ip host", strings.Replace(base, "x.example", "17.0.0.1", 1), 3, "host", "IP address"},
		{"bad host", strings.Replace(base, "x.example", "x..example", 1), 3, "host", "not a host name"},
		{"bad network", base + "networks = 17/8\n", 6, "networks", "CIDR"},
		{"bad bool", base + "stun_answers = yes\n", 6, "stun_answers", "true or false"},
		{"stun without udp", base + "stun_answers = true\n", 6, "stun_answers", "without the udp"},
		{"unknown key", base + "colour = blue\n", 6, "colour", "unknown key"},
		{"duplicate key", base + "host = y.example\n", 6, "host", "already set at line 3"},
		{"empty value", base + "alpn =\n", 6, "alpn", "empty value"},
		{"missing key", "[target x]\ngroup = push\nhost = x.example\n", 1, "ports", "required key missing"},
		{"duplicate target", base + base, 6, "", "already defined at line 1"},
		{"bad target name", "[target a/b]\n", 1, "", "only letters"},
		{"long target name", "[target " + strings.Repeat("n", 64) + "]\n", 1, "", "longer than 63 bytes"},
		{"line of NULs", string(make([]byte, 5000)), 1, "", "line is 5000 bytes long, more than 4096"},
		{"long host", strings.Replace(base, "x.example", strings.Repeat("a.", 127)+"ex", 1), 3, "host", "1 to 253 bytes"},
		{"long label", strings.Replace(base, "x.example", strings.Repeat("a", 64)+".example", 1), 3, "host", "bad label"},
		{"long alpn", base + "alpn = " + strings.Repeat("p", 256) + "\n", 6, "alpn", "longer than 255 bytes"},
		{"alpn list too long", base + "alpn = " + strings.Repeat("p", 250) + "," + strings.Repeat("q", 250) + "," + strings.Repeat("r", 250) + "," + strings.Repeat("s", 250) + "," + strings.Repeat("t", 250) + "\n", 6, "alpn", "longer than 1024 bytes encoded"},
		{"alpn twice", base + "alpn = h2, h2\n", 6, "alpn", "twice"},
		{"too many ports", strings.Replace(base, "443", strings.Repeat("1,", 64)+"2", 1), 4, "ports", "at most 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("bad.catalog", []byte(tt.text))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Parse error = %v, want *Error", err)
			}
			if ce.File != "bad.catalog" || ce.Line != tt.line || ce.Key != tt.key || !strings.Contains(ce.Msg, tt.msg) {
				t.Errorf("got %q (line %d, key %q), want line %d key %q containing %q", err, ce.Line, ce.Key, tt.line, tt.key, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "bad.catalog:") {
				t.Errorf("error %q does not start with the file name", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.catalog")
	if err := os.WriteFile(path, defaultText, 0o644); err != nil {
		t.Fatal(err)
	}
	cat, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	def, _ := Default()
	if cat.Digest != def.Digest || cat.Name != path {
		t.Errorf("Load = name %q digest %q, want %q and the default's digest %q", cat.Name, cat.Digest, path, def.Digest)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Load(missing) error = %v, want one naming the file", err)
	}
}

// TestErrorsQuoteAnExcerpt: a 10 MB bad line is not echoed whole.
func TestErrorsQuoteAnExcerpt(t *testing.T) {
	base := "[target x]\ngroup = push\nhost = x.example\nports = 443\ntransports = tcp\n"
	for _, text := range []string{
		base + "group2 " + strings.Repeat("z", 4000) + "\n",
		strings.Replace(base, "push", strings.Repeat("q", 4000), 1),
		"[target " + strings.Repeat("n", 4000) + "]\n",
		strings.Repeat("w", 10<<20),
	} {
		_, err := Parse("big.catalog", []byte(text))
		if err == nil {
			t.Fatalf("Parse accepted a bad catalog")
		}
		if len(err.Error()) > 300 {
			t.Errorf("error is %d bytes long, want an excerpt: %.120s...", len(err.Error()), err)
		}
	}
}

func TestLoadRefusesLargeFiles(t *testing.T) {
	_, err := Load("/dev/zero")
	if err == nil || !strings.Contains(err.Error(), "/dev/zero is larger than 4194304 bytes") {
		t.Fatalf("Load(/dev/zero) error = %v, want it too large", err)
	}
}

func TestParseTargetCap(t *testing.T) {
	var b strings.Builder
	stanza := func(i int) string {
		return fmt.Sprintf("[target t%d]\ngroup=control\nhost=t%d.test\nports=443\ntransports=tcp\n", i, i)
	}
	for i := range MaxTargets {
		b.WriteString(stanza(i))
	}
	cat, err := Parse("cap.catalog", []byte(b.String()))
	if err != nil || len(cat.Targets) != MaxTargets {
		t.Fatalf("Parse of %d targets = %d targets, %v; want them all", MaxTargets, len(cat.Targets), err)
	}
	b.WriteString(stanza(MaxTargets))
	_, err = Parse("cap.catalog", []byte(b.String()))
	want := fmt.Sprintf("cap.catalog:%d: more than %d targets", 5*MaxTargets+1, MaxTargets)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Parse of %d targets: error %v, want %q", MaxTargets+1, err, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(defaultText)
	f.Add([]byte("[target x]\ngroup = push\nhost = x.example\nports = 443\ntransports = tcp\n"))
	f.Add([]byte("[target]\n=\n[[\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cat, err := Parse("fuzz", b)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *catalog.Error", err)
			}
			return
		}
		for _, tg := range cat.Targets {
			if tg.Host == "" || len(tg.Ports) == 0 || len(tg.Transports) == 0 || tg.ServerName == "" {
				t.Fatalf("accepted incomplete target %+v", tg)
			}
			encoded := 0
			for _, p := range tg.ALPN {
				if len(p) < 1 || len(p) > maxALPNBytes {
					t.Fatalf("accepted ALPN protocol of %d bytes", len(p))
				}
				encoded += 1 + len(p)
			}
			if encoded > maxALPNListBytes || len(tg.Name) > maxTargetNameBytes || len(tg.Host) > 254 {
				t.Fatalf("accepted a target over the limits: %+v", tg)
			}
		}
	})
}

// TestDefaultQUICTargetsOfferH3 guards against a QUIC target offering only
// TCP protocols: HTTP/3 servers refuse such a handshake, which would look
// like a failure of the network.
func TestDefaultQUICTargetsOfferH3(t *testing.T) {
	cat, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range cat.Targets {
		if tg.Has("quic") && !slices.Contains(tg.ALPN, "h3") {
			t.Errorf("target %s measures QUIC with ALPN %v, want h3", tg.Name, tg.ALPN)
		}
	}
}
