package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/probes/probetest"
)

// readmeCronWrapper returns the cron wrapper script the README shows: the
// indented block that starts with "#!/bin/sh".
func readmeCronWrapper(t *testing.T) string {
	t.Helper()
	root, err := probetest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(readme), "\n")
	for i, l := range lines {
		if l != "    #!/bin/sh" {
			continue
		}
		var script []string
		for _, s := range lines[i:] {
			if s != "" && !strings.HasPrefix(s, "    ") {
				break
			}
			script = append(script, strings.TrimPrefix(s, "    "))
		}
		return strings.TrimSpace(strings.Join(script, "\n")) + "\n"
	}
	t.Fatal("README.md shows no cron wrapper (an indented block starting with #!/bin/sh)")
	return ""
}

// TestREADMECronWrapper runs the README's cron wrapper, as cron would,
// against the loopback servers with a "mail" that writes to a file: it
// mails nothing after the first run and after a run with the same
// verdicts, and mails the verdicts and history after a run whose verdicts
// changed.
func TestREADMECronWrapper(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	l := startLoopbackLab(t)
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "reachprobe-cron")
	if err := os.WriteFile(wrapper, []byte(readmeCronWrapper(t)), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	mailLog := filepath.Join(dir, "mail.log")
	fakeMail := "#!/bin/sh\n{ printf 'ARGS %s\\n' \"$*\"; cat; } >> " + sq(mailLog) + "\n"
	if err := os.WriteFile(filepath.Join(bin, "mail"), []byte(fakeMail), 0o755); err != nil {
		t.Fatal(err)
	}

	// Two catalogs: in the second, push goes to the server that resets
	// every handshake, so push's verdict changes.
	catalog := func(name, pushHost, pushPort string) string {
		text := fmt.Sprintf(`[target push]
group       = push
host        = %s
ports       = %d
transports  = tcp, tls
server_name = courier.push.apple.com
alpn        = apns-security-v3
networks    = 127.0.0.0/8

[target quic]
group      = quic
host       = quic.test
ports      = %d
transports = quic
alpn       = h3
networks   = 127.0.0.0/8

[target stun]
group        = control
host         = stun.test
ports        = %d
transports   = udp
stun_answers = true
networks     = 127.0.0.0/8
`, pushHost, l.ports[pushPort], l.ports["QUICPort"], l.ports["STUNPort"])
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	steady := catalog("steady.catalog", "valid.test", "ValidPort")
	changed := catalog("changed.catalog", "reset.test", "ResetPort")

	// The wrapper runs reachprobe with no flags: the config file says
	// where everything is, as it would for a scheduled run.
	db := filepath.Join(dir, "reachprobe.db")
	confDir := filepath.Join(dir, "config")
	os.MkdirAll(filepath.Join(confDir, "reachprobe"), 0o700)
	setCatalog := func(cat string) {
		conf := fmt.Sprintf("db = %s\ntargets = %s\nca_file = %s\ncontrol_doh = %s\nresolv_conf = %s\nstun_server = %s\n",
			db, cat, l.caFile, l.doh, l.resolvConf, l.stun)
		if err := os.WriteFile(filepath.Join(confDir, "reachprobe", "config"), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cron := func() {
		t.Helper()
		cmd := exec.Command("sh", wrapper)
		// cron's environment: little more than a PATH.
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + dir, "XDG_CONFIG_HOME=" + confDir, "REACHPROBE=" + binary}
		if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
			t.Fatalf("the wrapper: %v, output %q; want success and no output (cron mails output)", err, out)
		}
	}
	mails := func() string {
		b, err := os.ReadFile(mailLog)
		if os.IsNotExist(err) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	setCatalog(steady)
	cron()
	if m := mails(); m != "" {
		t.Fatalf("the first run mailed:\n%s", m)
	}
	cron()
	if m := mails(); m != "" {
		t.Fatalf("a run with the same verdicts mailed:\n%s", m)
	}
	setCatalog(changed)
	cron()
	m := mails()
	t.Logf("the mail:\n%s", m)
	if strings.Count(m, "ARGS ") != 1 {
		t.Fatalf("after a run whose verdict changed, want one mail; got:\n%s", m)
	}
	if !strings.HasPrefix(m, "ARGS -s reachprobe: a verdict changed in run 3 you@example.org\n") {
		t.Errorf("mail arguments: %q", strings.SplitN(m, "\n", 2)[0])
	}
	for _, want := range []string{"Run 3, started", "iMessage: ", "(run 3): ok -> ", "3 runs, from"} {
		if !strings.Contains(m, want) {
			t.Errorf("the mail lacks %q:\n%s", want, m)
		}
	}
}
