package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hostileNames are directory names every character of which must reach a
// scheduled run as it is.
var hostileNames = []string{
	"sp ace", "two  spaces", "quo'te", `dq"uote`, `back\slash`, `end\`, "dol$HOME", "${HOME}", "pc%d",
	"50%", `back\%pct`, "%%", "semi;colon", ";", "st*r?[a]", "uni-çé中文✓", "$(touch pwned)", "`id`",
	"#hash", "~tilde", "-dash", "a&b|c>d<e", "it's \"both\"",
}

func TestScheduleRefusesControlCharacters(t *testing.T) {
	tests := []struct {
		name string
		flag string // --db or --config; the path is flag's file under the test's directory
		file string
		vars map[string]string
		want string
	}{
		{"newline in --db", "--db", "a\n* * * * * evil", nil, `--db "DIR/a\n* * * * * evil"`},
		{"carriage return in --db", "--db", "a\rExecStartPre=/bin/evil", nil, `--db "DIR/a\rExecStartPre=/bin/evil"`},
		{"tab in --config", "--config", "a\tb", nil, `--config "DIR/a\tb"`},
		{"escape in --db", "--db", "\x1b[2J", nil, `--db "DIR/\x1b[2J"`},
		{"C1 control in --db", "--db", "a\u0085b", nil, `--db "DIR/a\u0085b"`},
		{"invalid UTF-8 in --db", "--db", "a\xffb", nil, `--db "DIR/a\xffb"`},
		{"newline in XDG_DATA_HOME", "", "", map[string]string{"XDG_DATA_HOME": "/tmp/d\n* * * * * evil"}, `XDG_DATA_HOME "/tmp/d\n* * * * * evil"`},
	}
	for _, tt := range tests {
		for _, method := range []string{"cron", "systemd"} {
			t.Run(tt.name+" "+method, func(t *testing.T) {
				m := &fakeMachine{systemd: true, cron: true}
				s := newScheduleEnv(t, m, "/opt/reachprobe")
				for k, v := range tt.vars {
					s.vars[k] = v
				}
				var out, errb bytes.Buffer
				env := &environ{stdout: &out, stderr: &errb, getenv: func(k string) string { return s.vars[k] }, schedule: s.sched}
				args := []string{"schedule", "install", "--method", method}
				if tt.flag != "" {
					path := filepath.Join(s.dir, tt.file)
					// install reads the config file: make it exist.
					if tt.flag == "--config" {
						if err := os.WriteFile(path, nil, 0o600); err != nil {
							t.Fatal(err)
						}
					}
					args = append(args, tt.flag, path)
				}
				want := strings.ReplaceAll(tt.want, "DIR", s.dir)
				code := runMain(context.Background(), env, args)
				if code != exitUsage || !strings.Contains(errb.String(), want) || !strings.Contains(errb.String(), "control characters") {
					t.Errorf("exit %d, stderr %q; want %d naming %s", code, errb.String(), exitUsage, want)
				}
				if m.tab != "" || s.sched.unitsInstalled() {
					t.Errorf("something was installed: crontab %q", m.tab)
				}
			})
		}
	}
}

// argvPrinter is a stand-in for reachprobe: it prints its arguments and
// the XDG variables, each followed by a NUL byte (no path holds one).
const argvPrinter = "#!/bin/sh\nprintf '%s\\0' \"$0\" \"$@\" \"XDG_CONFIG_HOME=$XDG_CONFIG_HOME\" \"XDG_DATA_HOME=$XDG_DATA_HOME\"\n"

// hostileCommand makes a stand-in reachprobe in a directory named
// exeName and the command a schedule would run with every other path under
// a directory named name.
func hostileCommand(t *testing.T, name, exeName string) (scheduleCommand, []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	exeDir := filepath.Join(t.TempDir(), exeName)
	for _, d := range []string{dir, exeDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(exeDir, "reachprobe")
	if err := os.WriteFile(exe, []byte(argvPrinter), 0o755); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"XDG_CONFIG_HOME": filepath.Join(dir, "config"), "XDG_DATA_HOME": filepath.Join(dir, "data")}
	env := &environ{getenv: func(k string) string { return vars[k] }}
	cmd, err := scheduledCommand(env, exe, filepath.Join(dir, "conf"), filepath.Join(dir, name+".db"), 90*24*time.Hour)
	if err != nil {
		t.Fatalf("scheduledCommand in %q: %v", name, err)
	}
	want := append(append([]string{}, cmd.argv...), "XDG_CONFIG_HOME="+vars["XDG_CONFIG_HOME"], "XDG_DATA_HOME="+vars["XDG_DATA_HOME"])
	return cmd, want
}

// cronToShell does to a crontab line's command what cron does before
// handing it to /bin/sh -c (crontab(5); cronie's and Vixie cron's
// do_command): "\%" becomes "%", any other backslash stays with the
// character after it, and a bare "%" ends the command, the rest becoming
// standard input.
func cronToShell(command string) (shell, stdin string) {
	var b strings.Builder
	escaped := false
	for i := 0; i < len(command); i++ {
		c := command[i]
		switch {
		case escaped:
			if c != '%' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
			escaped = false
		case c == '\\':
			escaped = true
		case c == '%':
			return b.String(), command[i+1:]
		default:
			b.WriteByte(c)
		}
	}
	if escaped {
		b.WriteByte('\\')
	}
	return b.String(), ""
}

// cronFields matches the five time fields of a crontab line.
var cronFields = regexp.MustCompile(`^(\S+ ){5}`)

// TestCronLineRoundTrip runs the exact command of the crontab line, as
// cron would, through sh with a stand-in reachprobe that prints its
// arguments, for paths holding every character a shell or cron treats
// specially.
func TestCronLineRoundTrip(t *testing.T) {
	for _, name := range hostileNames {
		t.Run(name, func(t *testing.T) {
			cmd, want := hostileCommand(t, name, name)
			line := cronLine("7 */6 * * *", cmd)
			if strings.ContainsAny(line, "\n\r") {
				t.Fatalf("the crontab line spans lines: %q", line)
			}
			command := cronFields.ReplaceAllString(line, "")
			shell, stdin := cronToShell(command)
			if stdin != "" {
				t.Fatalf("cron would cut the command at a %% and feed %q to its standard input: %q", stdin, line)
			}
			out, err := exec.Command("/bin/sh", "-c", shell).Output()
			if err != nil {
				t.Fatalf("sh -c %q: %v", shell, err)
			}
			got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("line %q\nran %q\nwant %q", line, got, want)
			}
		})
	}
}

// TestSystemdUnitRoundTrip has systemd-analyze verify the service (which
// checks that the program path it reads exists and is executable) and
// reads ExecStart= and Environment= back as systemd does, for the same
// paths.
func TestSystemdUnitRoundTrip(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the units are only read back by this test's own parser")
	}
	for _, name := range hostileNames {
		t.Run(name, func(t *testing.T) {
			// systemd runs no program whose path holds a quote or a
			// backslash ("Executable name contains special characters");
			// install refuses those (TestSystemdRefusesExecutable).
			exeName := name
			if strings.ContainsAny(name, `'"\`) {
				exeName = "plain"
			}
			cmd, want := hostileCommand(t, name, exeName)
			service, timer := systemdUnits(cmd, 6*time.Hour)
			dir := t.TempDir()
			paths := []string{filepath.Join(dir, serviceUnit), filepath.Join(dir, timerUnit)}
			os.WriteFile(paths[0], []byte(service), 0o644)
			os.WriteFile(paths[1], []byte(timer), 0o644)
			out, err := exec.Command(analyze, "verify", paths[0], paths[1]).CombinedOutput()
			if err != nil {
				t.Errorf("systemd-analyze verify: %v\n%s\n%s", err, out, service)
			}
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, "reachprobe.") && !strings.Contains(l, "FixedRandomDelay") {
					t.Errorf("systemd says: %s\n%s", l, service)
				}
			}
			var path string
			var got []string
			for _, line := range strings.Split(service, "\n") {
				if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
					path, got = systemdExec(t, v)
				}
			}
			for _, line := range strings.Split(service, "\n") {
				if v, ok := strings.CutPrefix(line, "Environment="); ok {
					got = append(got, splitSystemdWords(t, v, false)...)
				}
			}
			if path != cmd.argv[0] || !reflect.DeepEqual(got, want) {
				t.Errorf("service\n%s\nreads back as path %q argv %q\nwant %q", service, path, got, want)
			}
		})
	}
}

// TestSystemdRefusesExecutable: systemd cannot run a program whose path
// holds a quote or a backslash, so install says so instead of writing a
// unit systemd rejects; cron can run it.
func TestSystemdRefusesExecutable(t *testing.T) {
	for _, exe := range []string{"/opt/it's/reachprobe", `/opt/"q"/reachprobe`, `/opt/back\slash/reachprobe`} {
		m := &fakeMachine{systemd: true, cron: true}
		s := newScheduleEnv(t, m, exe)
		var out, errb bytes.Buffer
		env := &environ{stdout: &out, stderr: &errb, getenv: func(k string) string { return s.vars[k] }, schedule: s.sched}
		code := runMain(context.Background(), env, []string{"schedule", "install", "--method", "systemd"})
		if code != exitUsage || !strings.Contains(errb.String(), strconv.Quote(exe)) || !strings.Contains(errb.String(), "--method cron") {
			t.Errorf("%s: exit %d, stderr %q; want %d naming the path and suggesting cron", exe, code, errb.String(), exitUsage)
		}
		if s.sched.unitsInstalled() {
			t.Errorf("%s: units were written", exe)
		}
		s.reachprobe(t, "schedule", "install", "--method", "cron")
		if len(cronLines(m.tab)) != 1 {
			t.Errorf("%s: cron install wrote %q", exe, m.tab)
		}
	}
}
