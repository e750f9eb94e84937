package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// fakeMachine stands for systemctl, crontab and loginctl: it records every
// command and keeps the crontab in memory, so no test changes the machine.
type fakeMachine struct {
	systemd bool   // a user manager answers
	cron    bool   // crontab is installed
	tab     string // the crontab; "" for none
	linger  string
	calls   []string
}

func (m *fakeMachine) run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	call := strings.Join(append([]string{name}, args...), " ")
	m.calls = append(m.calls, call)
	switch name {
	case "systemctl":
		if !m.systemd {
			return nil, errors.New(call + ": exit status 1: Failed to connect to bus: No medium found")
		}
		if args[1] == "show" && args[2] == timerUnit {
			return []byte("ActiveState=active\nUnitFileState=enabled\nNextElapseUSecRealtime=Mon 2026-01-05 12:17:00 UTC\nLastTriggerUSec=n/a\n"), nil
		}
		if args[1] == "show" {
			return []byte("Result=success\nExecMainStatus=5\nExecMainExitTimestamp=Mon 2026-01-05 06:17:03 UTC\n"), nil
		}
		return nil, nil
	case "crontab":
		switch {
		case !m.cron:
			return nil, fmt.Errorf("%s: %w", call, exec.ErrNotFound)
		case args[0] == "-l" && m.tab == "":
			return nil, errors.New(call + ": exit status 1: no crontab for alice")
		case args[0] == "-l":
			return []byte(m.tab), nil
		case args[0] == "-":
			m.tab = string(stdin)
			return nil, nil
		}
	case "loginctl":
		return []byte(m.linger + "\n"), nil
	}
	return nil, fmt.Errorf("unexpected command %s", call)
}

// scheduleEnv runs reachprobe commands against a fake machine.
type scheduleEnv struct {
	dir     string
	machine *fakeMachine
	sched   *scheduler
	vars    map[string]string
}

func newScheduleEnv(t *testing.T, m *fakeMachine, exe string) *scheduleEnv {
	dir := t.TempDir()
	return &scheduleEnv{dir: dir, machine: m,
		sched: &scheduler{executable: exe, unitDir: filepath.Join(dir, "xdg", "systemd", "user"), user: "alice",
			run: m.run, random: func(n int) int { return n - 1 }},
		vars: map[string]string{"XDG_CONFIG_HOME": filepath.Join(dir, "xdg"), "XDG_DATA_HOME": filepath.Join(dir, "data"), "HOME": dir},
	}
}

func (s *scheduleEnv) reachprobe(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	env := &environ{stdout: &out, stderr: &errb, getenv: func(k string) string { return s.vars[k] }, schedule: s.sched}
	if code := runMain(context.Background(), env, args); code != exitOK {
		t.Fatalf("reachprobe %v: exit %d, stderr %q", args, code, errb.String())
	}
	return out.String()
}

func readUnit(t *testing.T, s *scheduleEnv, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.sched.unitDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func containsLines(t *testing.T, what, text string, lines ...string) {
	t.Helper()
	have := strings.Split(text, "\n")
	for _, l := range lines {
		found := false
		for _, h := range have {
			found = found || h == l
		}
		if !found {
			t.Errorf("%s lacks the line %q:\n%s", what, l, text)
		}
	}
}

func TestScheduleSystemd(t *testing.T) {
	m := &fakeMachine{systemd: true, cron: true, linger: "no", tab: "MAILTO=alice\n0 3 * * * /usr/bin/backup\n" +
		cronMarker + ": old\n5 */6 * * * /old/reachprobe run " + cronMarker + "\n"}
	s := newScheduleEnv(t, m, "/opt/reach probe/reachprobe")
	out := s.reachprobe(t, "schedule", "install", "--every", "6h", "--prune-older-than", "90d")

	service, timer := readUnit(t, s, serviceUnit), readUnit(t, s, timerUnit)
	containsLines(t, serviceUnit, service,
		"Type=oneshot",
		`ExecStart="/opt/reach probe/reachprobe" run --wait 15m --prune-older-than 90d`,
		"Environment=XDG_CONFIG_HOME="+filepath.Join(s.dir, "xdg"),
		"Environment=XDG_DATA_HOME="+filepath.Join(s.dir, "data"))
	containsLines(t, timerUnit, timer,
		"OnCalendar=*-*-* 00/6:00:00", "RandomizedDelaySec=3600s", "Persistent=true", "WantedBy=timers.target")
	wantCalls := []string{
		"systemctl --user show-environment",
		"systemctl --user daemon-reload",
		"systemctl --user enable --now reachprobe.timer",
		"crontab -l", "crontab -", // the crontab line of an earlier install goes
		"loginctl show-user alice --property=Linger --value",
	}
	if !reflect.DeepEqual(m.calls, wantCalls) {
		t.Errorf("commands run:\n%q\nwant\n%q", m.calls, wantCalls)
	}
	if want := "MAILTO=alice\n0 3 * * * /usr/bin/backup\n"; m.tab != want {
		t.Errorf("crontab after installing the timer = %q, want %q", m.tab, want)
	}
	if !strings.Contains(out, "loginctl enable-linger alice") {
		t.Errorf("install output lacks the linger note:\n%s", out)
	}

	status := s.reachprobe(t, "schedule", "status")
	for _, want := range []string{
		"systemd user timer: " + filepath.Join(s.sched.unitDir, timerUnit), "OnCalendar=*-*-* 00/6:00:00",
		"next run Mon 2026-01-05 12:17:00 UTC", "exit code 5, could not start: another run held the database",
		"database " + filepath.Join(s.dir, "data", "reachprobe", "reachprobe.db") + ": none yet",
	} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}

	m.calls = nil
	s.reachprobe(t, "schedule", "remove")
	for _, name := range []string{serviceUnit, timerUnit} {
		if _, err := os.Stat(filepath.Join(s.sched.unitDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after remove: %v", name, err)
		}
	}
	wantCalls = []string{"systemctl --user disable --now reachprobe.timer", "systemctl --user daemon-reload", "crontab -l"}
	if !reflect.DeepEqual(m.calls, wantCalls) {
		t.Errorf("remove ran %q, want %q", m.calls, wantCalls)
	}
}

func TestScheduleCron(t *testing.T) {
	userTab := "MAILTO=alice\n# nightly\n0 3 * * * /usr/bin/backup\n"
	m := &fakeMachine{cron: true, tab: userTab}
	s := newScheduleEnv(t, m, "/opt/reachprobe")
	s.vars["XDG_DATA_HOME"] = ""
	conf := filepath.Join(s.dir, "my conf", "50%.conf")
	os.MkdirAll(filepath.Dir(conf), 0o700)
	os.WriteFile(conf, []byte("repeat = 2\n"), 0o600)

	s.reachprobe(t, "schedule", "install", "--every", "4h", "--config", conf)
	first := m.tab
	want := userTab + cronMarker + ": written by \"reachprobe schedule install\"; remove with \"reachprobe schedule remove\"\n" +
		"59 3-23/4 * * * XDG_CONFIG_HOME=" + filepath.Join(s.dir, "xdg") + " /opt/reachprobe run --wait 15m --config '" +
		strings.ReplaceAll(conf, "%", `\%`) + "' " + cronMarker + "\n"
	if first != want {
		t.Errorf("crontab =\n%s\nwant\n%s", first, want)
	}
	if _, err := os.Stat(s.sched.unitDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cron install wrote systemd units: %v", err)
	}

	s.reachprobe(t, "schedule", "install", "--every", "4h", "--config", conf)
	if m.tab != first {
		t.Errorf("installing twice changed the crontab to\n%s", m.tab)
	}
	if status := s.reachprobe(t, "schedule", "status"); !strings.Contains(status, "crontab line: 59 3-23/4 * * *") {
		t.Errorf("status does not show the crontab line:\n%s", status)
	}
	s.reachprobe(t, "schedule", "remove")
	if m.tab != userTab {
		t.Errorf("crontab after remove = %q, want the user's own %q", m.tab, userTab)
	}
	if out := s.reachprobe(t, "schedule", "remove"); !strings.Contains(out, "no schedule installed") {
		t.Errorf("second remove said %q", out)
	}
}

func TestScheduleDryRunChangesNothing(t *testing.T) {
	for _, m := range []*fakeMachine{{systemd: true, cron: true}, {cron: true, tab: "0 3 * * * backup\n"}, {}} {
		s := newScheduleEnv(t, m, "/opt/reachprobe")
		tab := m.tab
		out := s.reachprobe(t, "schedule", "install", "--dry-run")
		for _, c := range m.calls {
			if c != "systemctl --user show-environment" && c != "crontab -l" {
				t.Errorf("dry run ran %q", c)
			}
		}
		if _, err := os.Stat(s.sched.unitDir); !errors.Is(err, os.ErrNotExist) || m.tab != tab {
			t.Errorf("dry run changed the machine (units: %v, crontab %q)", err, m.tab)
		}
		if !strings.Contains(out, "/opt/reachprobe run --wait 15m") {
			t.Errorf("dry run does not show the command:\n%s", out)
		}
	}
}

func TestScheduleTimes(t *testing.T) {
	tests := []struct {
		every      time.Duration
		calendar   string
		cron       string // with the random offsets at their largest
		delay      time.Duration
		cronRefuse bool
	}{
		{10 * time.Minute, "*-*-* *:00/10:00", "9-59/10 * * * *", 5 * time.Minute, false},
		{30 * time.Minute, "*-*-* *:00/30:00", "29-59/30 * * * *", 15 * time.Minute, false},
		{time.Hour, "*-*-* *:00:00", "59 * * * *", 30 * time.Minute, false},
		{6 * time.Hour, "*-*-* 00/6:00:00", "59 5-23/6 * * *", time.Hour, false},
		{24 * time.Hour, "*-*-* 00:00:00", "59 23 * * *", time.Hour, false},
		{25 * time.Minute, "", "", 12*time.Minute + 30*time.Second, true},
		{7 * time.Hour, "", "", time.Hour, true},
		{48 * time.Hour, "", "", time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.every.String(), func(t *testing.T) {
			if got := onCalendar(tt.every); got != tt.calendar {
				t.Errorf("onCalendar = %q, want %q", got, tt.calendar)
			}
			got, err := cronSchedule(tt.every, func(n int) int { return n - 1 })
			if (err != nil) != tt.cronRefuse || got != tt.cron {
				t.Errorf("cronSchedule = %q, %v; want %q (refused %v)", got, err, tt.cron, tt.cronRefuse)
			}
			if got := randomDelay(tt.every); got != tt.delay {
				t.Errorf("randomDelay = %s, want %s", got, tt.delay)
			}
			_, timer := systemdUnits(scheduleCommand{argv: []string{"/r", "run"}}, tt.every)
			if tt.calendar == "" {
				containsLines(t, "timer", timer, fmt.Sprintf("OnUnitActiveSec=%ds", int64(tt.every/time.Second)), "OnBootSec=5min")
			} else if strings.Contains(timer, "OnUnitActiveSec") {
				t.Errorf("timer has both OnCalendar and OnUnitActiveSec:\n%s", timer)
			}
		})
	}
}

// splitSystemdWords reads an ExecStart= or Environment= value back as
// systemd does: double-quoted words with backslash escapes, %% and, where
// systemd expands variables (expandsVars), $$. A "$" systemd would expand
// fails the test.
func splitSystemdWords(t *testing.T, s string, expandsVars bool) []string {
	t.Helper()
	return splitSystemdWordsBy(t, s, func(int) bool { return expandsVars })
}

// splitSystemdWordsBy is splitSystemdWords where word i has $$ escapes
// when expandsVars(i).
func splitSystemdWordsBy(t *testing.T, s string, expandsVarsOf func(word int) bool) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inQuote, inWord := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				cur.WriteByte('\n')
			case 't':
				cur.WriteByte('\t')
			default:
				cur.WriteByte(s[i])
			}
		case c == '"':
			inQuote, inWord = !inQuote, true
		case !inQuote && c == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case (c == '%' || c == '$' && expandsVarsOf(len(words))) && i+1 < len(s) && s[i+1] == c:
			cur.WriteByte(c)
			i++
			inWord = true
		case c == '%' || c == '$' && expandsVarsOf(len(words)):
			t.Fatalf("unescaped %c in %q", c, s)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// systemdExec reads an ExecStart= value back as systemd does: the path of
// the program and its argv. With the "@" prefix the first word is the path
// (no variables expanded in it) and argv follows.
func systemdExec(t *testing.T, v string) (path string, argv []string) {
	t.Helper()
	at := strings.HasPrefix(v, "@")
	v = strings.TrimPrefix(v, "@")
	words := splitSystemdWordsBy(t, v, func(i int) bool { return !at || i > 0 })
	if len(words) == 0 || at && len(words) < 2 {
		t.Fatalf("ExecStart=%s has no command", v)
	}
	if at {
		return words[0], words[1:]
	}
	return words[0], words
}

func TestSystemdQuote(t *testing.T) {
	for _, s := range []string{"plain", "/a b/c", `say "hi"`, `back\slash`, "50%", "$HOME", "semi;colon", "it's", "中文 ✓", `end\`} {
		for _, vars := range []bool{true, false} {
			q := systemdQuote(s, vars)
			if got := splitSystemdWords(t, q, vars); len(got) != 1 || got[0] != s {
				t.Errorf("systemdQuote(%q, %v) = %s, read back as %q", s, vars, q, got)
			}
		}
	}
}

// TestScheduledRun runs, with the environment cron and systemd give it,
// exactly the command each schedule installs, against the loopback lab.
func TestScheduledRun(t *testing.T) {
	l := startLoopbackLab(t)
	fast := l.fastCatalog(t)
	confDir := filepath.Join(l.dir, "sched 50%")
	os.MkdirAll(confDir, 0o700)
	conf := filepath.Join(confDir, "config")
	db := filepath.Join(l.dir, "scheduled.db")
	os.WriteFile(conf, []byte(fmt.Sprintf("# the lab\ntargets = %s\nca_file = %s\ncontrol_doh = %s\nresolv_conf = %s\nstun_server = %s\ndb = %s\nparallel = 16\n",
		fast, l.caFile, l.doh, l.resolvConf, l.stun, db)), 0o600)

	m := &fakeMachine{systemd: true, cron: true}
	s := newScheduleEnv(t, m, binary)
	// Cron's own environment: no XDG variables; the line pins them.
	cronEnv := []string{"HOME=" + s.dir, "PATH=/usr/bin:/bin", "SHELL=/bin/sh", "LOGNAME=alice"}

	s.reachprobe(t, "schedule", "install", "--method", "systemd", "--every", "1h", "--config", conf, "--prune-older-than", "90d")
	var argv, env []string
	env = cronEnv
	for _, line := range strings.Split(readUnit(t, s, serviceUnit), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			_, argv = systemdExec(t, v)
		}
		if v, ok := strings.CutPrefix(line, "Environment="); ok {
			env = append(env, splitSystemdWords(t, v, false)...)
		}
	}
	if r := runBinary(t, env, argv...); r.code != exitOK || r.stdout != "" || r.stderr != "" {
		t.Errorf("the systemd service's command %q: exit %d, stdout %q, stderr %q; want 0 and silence", argv, r.code, r.stdout, r.stderr)
	}

	s.reachprobe(t, "schedule", "install", "--method", "cron", "--every", "1h", "--config", conf)
	lines := cronLines(m.tab)
	if len(lines) != 1 {
		t.Fatalf("crontab %q: want one reachprobe line", m.tab)
	}
	fields := strings.Fields(lines[0])
	command := strings.Join(fields[5:], " ")
	command = strings.ReplaceAll(command, `\%`, "%") // what cron does before handing it to sh
	if r := runBinary(t, cronEnv, "/bin/sh", "-c", command); r.code != exitOK || r.stdout != "" || r.stderr != "" {
		t.Errorf("the crontab line's command %q: exit %d, stdout %q, stderr %q; want 0 and silence", command, r.code, r.stdout, r.stderr)
	}

	runs := readRuns(t, db)
	if len(runs) != 2 {
		t.Fatalf("%d runs in %s, want one per schedule", len(runs), db)
	}
	for _, r := range runs {
		if r.Run.Status != measurements.RunComplete || len(r.Observations) == 0 {
			t.Errorf("scheduled run %d: %s with %d observations, want complete", r.Run.ID, r.Run.Status, len(r.Observations))
		}
	}
}

func TestNewScheduler(t *testing.T) {
	tests := []struct {
		env     map[string]string
		unitDir string
	}{
		{map[string]string{"XDG_CONFIG_HOME": "/x/conf", "HOME": "/home/u", "USER": "u"}, "/x/conf/systemd/user"},
		{map[string]string{"HOME": "/home/u", "USER": "u"}, "/home/u/.config/systemd/user"},
	}
	for _, tt := range tests {
		s, err := newScheduler(&environ{getenv: func(k string) string { return tt.env[k] }})
		if err != nil || s.unitDir != tt.unitDir || s.user != "u" || !filepath.IsAbs(s.executable) {
			t.Errorf("newScheduler(%v) = %+v, %v; want unit dir %s", tt.env, s, err, tt.unitDir)
		}
	}
}

func FuzzCrontabEdit(f *testing.F) {
	for _, seed := range []string{"", "MAILTO=a\n0 3 * * * backup\n", "no newline at end", "\n\n", cronMarker + "\n* * * * * x " + cronMarker} {
		f.Add(seed)
	}
	line := "7 */6 * * * /opt/reachprobe run --wait 15m " + cronMarker
	f.Fuzz(func(t *testing.T, tab string) {
		with := withCronLine(tab, line)
		if got := cronLines(with); !reflect.DeepEqual(got, []string{line}) {
			t.Fatalf("reachprobe lines of %q = %q, want just ours", with, got)
		}
		without, found := withoutCronLines(with)
		if !found || strings.Contains(without, cronMarker) {
			t.Fatalf("withoutCronLines(%q) = %q, %v", with, without, found)
		}
		// Every line of the user's own is kept, in order.
		var own []string
		for _, l := range strings.Split(tab, "\n") {
			if !strings.Contains(l, cronMarker) && l != "" {
				own = append(own, l)
			}
		}
		var kept []string
		for _, l := range strings.Split(without, "\n") {
			if l != "" {
				kept = append(kept, l)
			}
		}
		if !reflect.DeepEqual(own, kept) {
			t.Fatalf("user lines %q became %q", own, kept)
		}
	})
}

// TestSystemdUnitsVerify has systemd check the units it would be given,
// where systemd-analyze is installed. Verifying reads the files only.
func TestSystemdUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	dir := t.TempDir()
	cmd := scheduleCommand{argv: []string{binary, "run", "--wait", "15m", "--config", "/tmp/my conf/50%"}, env: []string{"XDG_CONFIG_HOME=/x y/$z"}}
	for _, every := range []time.Duration{15 * time.Minute, 6 * time.Hour, 7 * time.Hour} {
		service, timer := systemdUnits(cmd, every)
		paths := []string{filepath.Join(dir, timerUnit), filepath.Join(dir, serviceUnit)}
		os.WriteFile(paths[0], []byte(timer), 0o644)
		os.WriteFile(paths[1], []byte(service), 0o644)
		out, err := exec.Command(analyze, "verify", paths[0], paths[1]).CombinedOutput()
		if err != nil {
			t.Errorf("every %s: systemd-analyze verify: %v\n%s", every, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			// FixedRandomDelay is new in systemd 247; older ones ignore it.
			if strings.Contains(line, "reachprobe.") && !strings.Contains(line, "FixedRandomDelay") {
				t.Errorf("every %s: systemd says: %s", every, line)
			}
		}
	}
}
