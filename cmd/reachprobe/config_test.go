package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	const file = "/etc/rp/config"
	tests := []struct {
		name    string
		text    string
		want    map[string][]string // values by key
		wantErr string
	}{
		{
			name: "every key",
			text: "# reachprobe\n\ntargets = my.catalog\r\ndb = ~/rp/reachprobe.db\ncontrol_doh = https://1.1.1.1/dns-query , https://doh.test:8443/q\n" +
				"ca_file = /a.pem, b.pem\napple_ca_file = test-apple.pem\nresolv_conf = /etc/resolv.conf\nparallel = 8\nrepeat = 3\nrepeat_spacing = 90s\ntimeout = 20m\nlog_format = json\nstun_server = stun.test:3478\nno_path_probes = 1\n",
			want: map[string][]string{
				"targets": {"/etc/rp/my.catalog"}, "db": {"/home/u/rp/reachprobe.db"},
				"control_doh": {"https://1.1.1.1/dns-query", "https://doh.test:8443/q"}, "ca_file": {"/a.pem", "/etc/rp/b.pem"},
				"apple_ca_file": {"/etc/rp/test-apple.pem"},
				"resolv_conf":   {"/etc/resolv.conf"}, "parallel": {"8"}, "repeat": {"3"}, "repeat_spacing": {"90s"},
				"timeout": {"20m"}, "log_format": {"json"}, "stun_server": {"stun.test:3478"},
				"no_path_probes": {"true"},
			},
		},
		{name: "empty", text: "", want: map[string][]string{}},
		{name: "unknown key", text: "parallel = 2\nparalel = 3\n", wantErr: file + ":2: paralel: unknown key; the keys are targets, db,"},
		{name: "no equals", text: "\n\nrepeat 3\n", wantErr: file + `:3: "repeat 3" is not a "key = value" line`},
		{name: "no key", text: "= 3\n", wantErr: file + `:1: "= 3" is not a "key = value" line`},
		{name: "empty value", text: "db =\n", wantErr: file + ":1: db: no value"},
		{name: "twice", text: "repeat = 1\n# again\nrepeat = 2\n", wantErr: file + ":3: repeat: set twice (first on line 1)"},
		{name: "bad count", text: "parallel = many\n", wantErr: file + `:1: parallel: "many" is not a whole number of at least 1`},
		{name: "zero count", text: "repeat = 0\n", wantErr: file + `:1: repeat: "0" is not a whole number of at least 1`},
		{name: "bad duration", text: "timeout = 5 minutes\n", wantErr: file + `:1: timeout: "5 minutes" is not a duration`},
		{name: "negative duration", text: "repeat_spacing = -1s\n", wantErr: file + ":1: repeat_spacing:"},
		{name: "plain http DoH", text: "control_doh = http://1.1.1.1/dns-query\n", wantErr: file + `:1: control_doh: "http://1.1.1.1/dns-query" is not an https URL`},
		{name: "empty list item", text: "ca_file = a.pem,,b.pem\n", wantErr: file + ":1: ca_file: empty item"},
		{name: "bad log format", text: "log_format = xml\n", wantErr: file + `:1: log_format: want "text" or "json"`},
		{name: "other user's home", text: "db = ~bob/x.db\n", wantErr: file + `:1: db: "~bob/x.db": only ~/`},
		{name: "STUN server without port", text: "stun_server = stun.test\n", wantErr: file + `:1: stun_server: "stun.test" is not HOST:PORT`},
		{name: "bad bool", text: "no_path_probes = yes\n", wantErr: file + `:1: no_path_probes: "yes" is not true or false`},
		{name: "section header", text: "[run]\n", wantErr: file + `:1: "[run]" is not a "key = value" line`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig(file, []byte(tt.text), "/home/u")
			if tt.wantErr != "" {
				var ce *configError
				if err == nil || !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want a configError starting %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			got := map[string][]string{}
			for k, e := range cfg.entries {
				got[k] = e.values
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("entries = %v, want %v", got, tt.want)
			}
		})
	}
}

// configShow runs "config show" with a config directory and returns each
// key's value and source.
func configShow(t *testing.T, env map[string]string, args ...string) (map[string][2]string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &environ{stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }}
	code := runMain(context.Background(), e, append([]string{"config", "show"}, args...))
	got := map[string][2]string{}
	for _, line := range strings.Split(out.String(), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] == "KEY" {
			continue
		}
		// The source is "default", "flag --x" or "config FILE:LINE".
		src := f[len(f)-1]
		val := f[1 : len(f)-1]
		if f[len(f)-2] == "flag" || f[len(f)-2] == "config" {
			src = f[len(f)-2] + " " + src
			val = f[1 : len(f)-2]
		}
		got[f[0]] = [2]string{strings.Join(val, " "), src}
	}
	return got, errb.String(), code
}

func TestConfigShowPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgDir := filepath.Join(dir, "xdg", "reachprobe")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(cfgDir, "config")
	os.WriteFile(cfgFile, []byte("# scheduled runs\nparallel = 8\nrepeat = 3\ndb = data/rp.db\n"), 0o600)
	other := filepath.Join(dir, "other.conf")
	os.WriteFile(other, []byte("repeat = 5\n"), 0o600)
	env := map[string]string{"XDG_CONFIG_HOME": filepath.Join(dir, "xdg"), "HOME": "/home/u"}

	tests := []struct {
		name string
		args []string
		want map[string][2]string
	}{
		{"config over default", nil, map[string][2]string{
			"parallel": {"8", "config " + cfgFile + ":2"},
			"repeat":   {"3", "config " + cfgFile + ":3"},
			"db":       {filepath.Join(cfgDir, "data", "rp.db"), "config " + cfgFile + ":4"},
			"timeout":  {"0s", "default"},
		}},
		{"flag over config", []string{"--repeat", "2", "--timeout", "1m"}, map[string][2]string{
			"parallel": {"8", "config " + cfgFile + ":2"},
			"repeat":   {"2", "flag --repeat"},
			"timeout":  {"1m0s", "flag --timeout"},
		}},
		{"another file", []string{"--config", other}, map[string][2]string{
			"parallel": {"64", "default"},
			"repeat":   {"5", "config " + other + ":1"},
			"db":       {"/home/u/.local/share/reachprobe/reachprobe.db", "default"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, stderr, code := configShow(t, env, tt.args...)
			if code != exitOK {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			for k, want := range tt.want {
				if got[k] != want {
					t.Errorf("%s = %q from %q, want %q from %q", k, got[k][0], got[k][1], want[0], want[1])
				}
			}
		})
	}
}

func TestBadConfigIsRefused(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("parallel = 4\nrepeat = often\n"), 0o600)
	cfgDir := filepath.Join(dir, "reachprobe")
	os.MkdirAll(cfgDir, 0o700)
	os.WriteFile(filepath.Join(cfgDir, "config"), []byte("colour = blue\n"), 0o600)
	env := map[string]string{"XDG_CONFIG_HOME": dir}
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"run with --config", []string{"run", "--config", bad, "--db", filepath.Join(dir, "x.db")}, bad + `:2: repeat: "often"`},
		{"config show", []string{"config", "show", "--config", bad}, bad + ":2: repeat"},
		{"missing --config", []string{"config", "show", "--config", filepath.Join(dir, "nope")}, "nope"},
		{"default file, read by list", []string{"list"}, filepath.Join(cfgDir, "config") + ":1: colour: unknown key"},
		{"schedule install", []string{"schedule", "install", "--dry-run"}, filepath.Join(cfgDir, "config") + ":1: colour"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			e := &environ{stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }, schedule: &scheduler{}}
			if code := runMain(context.Background(), e, tt.args); code != exitUsage || !strings.Contains(errb.String(), tt.msg) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errb.String(), exitUsage, tt.msg)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x.db")); !errors.Is(err, os.ErrNotExist) {
		t.Error("run with a bad config created its database")
	}
}

func TestConfigDatabaseUsedByReaders(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "reachprobe"), 0o700)
	os.WriteFile(filepath.Join(dir, "reachprobe", "config"), []byte("db = "+filepath.Join(dir, "elsewhere.db")+"\n"), 0o600)
	var out, errb bytes.Buffer
	e := &environ{stdout: &out, stderr: &errb, getenv: func(k string) string { return map[string]string{"XDG_CONFIG_HOME": dir}[k] }}
	// Nothing was measured yet: list names the database it looked for,
	// the config file's, and does not create it.
	elsewhere := filepath.Join(dir, "elsewhere.db")
	if code := runMain(context.Background(), e, []string{"list"}); code != exitUsage || !strings.Contains(errb.String(), "no database at "+elsewhere) {
		t.Fatalf("list: exit %d, stderr %q; want %d naming %s", code, errb.String(), exitUsage, elsewhere)
	}
	if _, err := os.Stat(elsewhere); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("list created the database (stat: %v)", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		"", "parallel = 8\n", "# c\n\ndb = ~/x.db\r\n", "control_doh = https://a/b, https://c/d\n",
		"ca_file = a,,b\n", "=\n", "repeat = 1\nrepeat = 2\n", "timeout = 1h\x00\n", "log_format = json",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseConfig("/c/config", data, "/home/u")
		if err != nil {
			var ce *configError
			if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "/c/config:") || ce.line < 1 {
				t.Fatalf("error %v does not name the file and a line", err)
			}
			return
		}
		for k, e := range cfg.entries {
			if _, ok := lookupConfigKey(k); !ok || len(e.values) == 0 || e.line < 1 {
				t.Fatalf("entry %q = %+v", k, e)
			}
		}
	})
}
