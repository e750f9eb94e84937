package main

// # Scheduling
//
// "schedule install" makes this user's systemd run reachprobe on a timer
// where a user manager answers (systemctl --user), and adds a crontab line
// otherwise. The scheduled command is "reachprobe run" with a bounded
// --wait, so that it queues behind a run started by hand instead of
// failing, plus the --config, --db and --prune-older-than given to install.
// XDG_CONFIG_HOME and XDG_DATA_HOME, when set, are pinned into the unit or
// the line: cron and the user manager do not read the shell profile that
// set them, and the scheduled run must use the same files as "reachprobe
// config show". Everything the scheduler touches (paths, commands, the
// random offset) is a field of scheduler, so tests read what would be
// written and never change the machine.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Periods of a schedule. Six hours catches a block that comes and goes
// within a day at four short runs a day; ten minutes is the least, since a
// run with repetitions takes several.
const (
	defaultEvery = 6 * time.Hour
	minEvery     = 10 * time.Minute
)

// scheduledWait is the --wait of a scheduled run: a run started by hand
// with three repetitions takes about 12 minutes (three 2-minute budgets
// and two 3-minute pauses), and waiting that out beats skipping a turn.
const scheduledWait = 15 * time.Minute

// scheduler is the machine a schedule is installed on.
type scheduler struct {
	// executable is the absolute path of the reachprobe that runs.
	executable string
	// unitDir is where systemd user units go ($XDG_CONFIG_HOME/systemd/user).
	unitDir string
	// user is the login name, for loginctl's linger check.
	user string
	// run runs a command with stdin and returns its standard output; its
	// error names the command and quotes its standard error. A missing
	// command gives an error wrapping exec.ErrNotFound.
	run func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)
	// random returns a number in [0, n), for the crontab's offset.
	random func(n int) int
}

// newScheduler is the scheduler of this machine.
func newScheduler(env *environ) (*scheduler, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("schedule: finding reachprobe's own path: %w", err)
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	dir := env.getenv("XDG_CONFIG_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home := env.getenv("HOME")
		if home == "" {
			return nil, usageError{errors.New("schedule: neither XDG_CONFIG_HOME nor HOME is set")}
		}
		dir = filepath.Join(home, ".config")
	}
	name := env.getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	return &scheduler{executable: exe, unitDir: filepath.Join(dir, "systemd", "user"), user: name,
		run: runCommand, random: rand.IntN}, nil
}

// commandTimeout bounds one systemctl, loginctl or crontab call; they
// answer in milliseconds unless the user manager is stuck.
const commandTimeout = 30 * time.Second

func runCommand(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (s *scheduler) hasSystemd(ctx context.Context) bool {
	_, err := s.run(ctx, nil, "systemctl", "--user", "show-environment")
	return err == nil
}

// crontab returns the user's crontab, "" when there is none.
func (s *scheduler) crontab(ctx context.Context) (string, error) {
	out, err := s.run(ctx, nil, "crontab", "-l")
	if err != nil && strings.Contains(err.Error(), "no crontab for") {
		return "", nil
	}
	return string(out), err
}

func (s *scheduler) unitPath(name string) string { return filepath.Join(s.unitDir, name) }

func (s *scheduler) unitsInstalled() bool {
	_, err := os.Stat(s.unitPath(timerUnit))
	return err == nil
}

func cmdSchedule(ctx context.Context, env *environ, args []string) error {
	usage := "Usage: reachprobe schedule install [--every DURATION] [flags] | remove | status\n\nMakes this user's systemd timer (or, without systemd, crontab) run \"reachprobe run\" regularly,\nremoves it, or says what is installed and how the last run ended."
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(env.stderr, usage)
		if len(args) == 0 {
			return usageError{errors.New("schedule: give install, remove or status")}
		}
		return flag.ErrHelp
	}
	s := env.schedule
	if s == nil {
		var err error
		if s, err = newScheduler(env); err != nil {
			return err
		}
	}
	switch args[0] {
	case "install":
		return scheduleInstall(ctx, env, s, args[1:])
	case "remove":
		return scheduleRemove(ctx, env, s, args[1:])
	case "status":
		return scheduleStatus(ctx, env, s, args[1:])
	}
	return usageError{fmt.Errorf("schedule: unknown subcommand %q: give install, remove or status", args[0])}
}

func scheduleInstall(ctx context.Context, env *environ, s *scheduler, args []string) error {
	fs := newFlagSet(env, "schedule install", "[flags]",
		"Runs \"reachprobe run\" every DURATION from this user's systemd timer, or from crontab where systemd\nis not available. Installing again replaces the schedule.")
	every := fs.Duration("every", defaultEvery, "run every `DURATION` (at least 10m)")
	method := choice(fs, "method", "auto", []string{"auto", "systemd", "cron"}, "`HOW`: systemd, cron, or auto (systemd where \"systemctl --user\" works, else cron)")
	configPath := fs.String("config", "", "config `FILE` the scheduled run reads (default "+configFileHelp+")")
	db := fs.String("db", "", "database `FILE` the scheduled run uses (default: the config file's db, or the default database)")
	var prune ageFlag
	fs.Var(&prune, "prune-older-than", "after each completed run, prune the observations of runs older than `DURATION` (e.g. 90d)")
	dryRun := fs.Bool("dry-run", false, "print what would be written and run; change nothing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("schedule install: unexpected argument %q", fs.Arg(0))}
	}
	if *every < minEvery {
		return usageError{fmt.Errorf("schedule install: --every %s: at least %s", *every, minEvery)}
	}
	// A bad config file is better refused now than every six hours.
	if _, err := loadConfig(env, *configPath); err != nil {
		return err
	}
	cmd, err := scheduledCommand(env, s.executable, *configPath, *db, time.Duration(prune))
	if err != nil {
		return err
	}
	if *method == "auto" {
		*method = "cron"
		if s.hasSystemd(ctx) {
			*method = "systemd"
		}
	}
	if *method == "systemd" {
		return s.installSystemd(ctx, env, cmd, *every, *dryRun)
	}
	return s.installCron(ctx, env, cmd, *every, *dryRun)
}

// scheduledCommand is the command line of a scheduled run.
func scheduledCommand(env *environ, exe, configPath, db string, prune time.Duration) (scheduleCommand, error) {
	cmd := scheduleCommand{argv: []string{exe, "run", "--wait", shortDuration(scheduledWait)}}
	if err := checkSchedulePath("reachprobe's own path", exe); err != nil {
		return cmd, err
	}
	for _, f := range []struct{ flag, path string }{{"--config", configPath}, {"--db", db}} {
		if f.path == "" {
			continue
		}
		abs, err := filepath.Abs(f.path)
		if err != nil {
			return cmd, usageError{fmt.Errorf("schedule install: %s %s: %w", f.flag, f.path, err)}
		}
		if err := checkSchedulePath(f.flag, abs); err != nil {
			return cmd, err
		}
		cmd.argv = append(cmd.argv, f.flag, abs)
	}
	if prune > 0 {
		cmd.argv = append(cmd.argv, "--prune-older-than", formatAge(prune))
	}
	for _, k := range []string{"XDG_CONFIG_HOME", "XDG_DATA_HOME"} {
		if v := env.getenv(k); v != "" && filepath.IsAbs(v) {
			if err := checkSchedulePath(k, v); err != nil {
				return cmd, err
			}
			cmd.env = append(cmd.env, k+"="+v)
		}
	}
	return cmd, nil
}

// checkSchedulePath refuses a path that cannot be written into a systemd
// unit or a crontab line and read back as it is: one with a control
// character (a newline would start another crontab entry or unit line, a
// carriage return ends a unit line too, and a tab or an escape is no more
// likely to be meant), or one that is not valid UTF-8 (unit files are
// UTF-8). Every other character is quoted (systemdQuote, cronQuote).
func checkSchedulePath(what, path string) error {
	bad := !utf8.ValidString(path) || strings.ContainsFunc(path, unicode.IsControl)
	if !bad {
		return nil
	}
	return usageError{fmt.Errorf("schedule install: %s %s: a path with control characters (newline, carriage return, tab, escape) or that is not valid UTF-8 cannot be scheduled safely; rename it, or give a path without them",
		what, strconv.Quote(path))}
}

func (s *scheduler) installSystemd(ctx context.Context, env *environ, cmd scheduleCommand, every time.Duration, dryRun bool) error {
	// systemd refuses such a program path ("Executable name contains
	// special characters"); better said now than by a unit that never runs.
	if strings.ContainsAny(cmd.argv[0], `'"\`) {
		return usageError{fmt.Errorf("schedule install: systemd does not run a program whose path holds a quote or a backslash, as reachprobe's does (%s): move reachprobe, or give --method cron",
			strconv.Quote(cmd.argv[0]))}
	}
	service, timer := systemdUnits(cmd, every)
	steps := [][]string{{"systemctl", "--user", "daemon-reload"}, {"systemctl", "--user", "enable", "--now", timerUnit}}
	if dryRun {
		fmt.Fprintf(env.stdout, "would write %s:\n%s\nwould write %s:\n%s\n", s.unitPath(serviceUnit), service, s.unitPath(timerUnit), timer)
		for _, st := range steps {
			fmt.Fprintf(env.stdout, "would run: %s\n", strings.Join(st, " "))
		}
		return nil
	}
	if err := os.MkdirAll(s.unitDir, 0o755); err != nil {
		return fmt.Errorf("schedule install: %w", err)
	}
	for name, text := range map[string]string{serviceUnit: service, timerUnit: timer} {
		if err := writeFileAtomic(s.unitPath(name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("schedule install: %w", err)
		}
	}
	for _, st := range steps {
		if _, err := s.run(ctx, nil, st[0], st[1:]...); err != nil {
			return fmt.Errorf("schedule install: %w", err)
		}
	}
	// One schedule at a time: drop a crontab line an earlier install left.
	if tab, err := s.crontab(ctx); err == nil {
		if rest, found := withoutCronLines(tab); found {
			if _, err := s.run(ctx, []byte(rest), "crontab", "-"); err != nil {
				return fmt.Errorf("schedule install: removing the earlier crontab line: %w", err)
			}
		}
	}
	fmt.Fprintf(env.stdout, "installed systemd user timer %s: every %s, starting up to %s late at random\nit runs: %s\n",
		s.unitPath(timerUnit), shortDuration(every), shortDuration(randomDelay(every)), strings.Join(cmd.argv, " "))
	s.lingerNote(ctx, env)
	return nil
}

// lingerNote says how to keep the timer running while the user is logged
// out, when systemd would stop it.
func (s *scheduler) lingerNote(ctx context.Context, env *environ) {
	if s.user == "" {
		return
	}
	out, err := s.run(ctx, nil, "loginctl", "show-user", s.user, "--property=Linger", "--value")
	if err == nil && strings.TrimSpace(string(out)) == "no" {
		fmt.Fprintf(env.stdout, "note: systemd stops your timers when you log out; to measure while logged out run\n  loginctl enable-linger %s\n", s.user)
	}
}

func (s *scheduler) installCron(ctx context.Context, env *environ, cmd scheduleCommand, every time.Duration, dryRun bool) error {
	fields, err := cronSchedule(every, s.random)
	if err != nil {
		return usageError{fmt.Errorf("schedule install: %w", err)}
	}
	line := cronLine(fields, cmd)
	tab, err := s.crontab(ctx)
	if errors.Is(err, exec.ErrNotFound) && !dryRun {
		return errors.New("schedule install: neither \"systemctl --user\" nor crontab is available on this machine")
	}
	if errors.Is(err, exec.ErrNotFound) {
		fmt.Fprintln(env.stdout, "crontab is not installed on this machine; as if the crontab were empty:")
		tab, err = "", nil
	}
	if err != nil {
		return fmt.Errorf("schedule install: reading the crontab: %w", err)
	}
	newTab := withCronLine(tab, line)
	if dryRun {
		fmt.Fprintf(env.stdout, "would install this crontab (crontab -):\n%s", newTab)
		return nil
	}
	if _, err := s.run(ctx, []byte(newTab), "crontab", "-"); err != nil {
		return fmt.Errorf("schedule install: %w", err)
	}
	// One schedule at a time: drop the units an earlier install left.
	if s.unitsInstalled() {
		if err := s.removeSystemd(ctx, env, false); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.stdout, "installed crontab line: %s\ncron mails what a run prints, and off a terminal a run prints only errors\n", line)
	return nil
}

func scheduleRemove(ctx context.Context, env *environ, s *scheduler, args []string) error {
	fs := newFlagSet(env, "schedule remove", "[--dry-run]", "Removes the schedule \"schedule install\" made: the systemd timer and service, and the crontab line.")
	dryRun := fs.Bool("dry-run", false, "print what would be removed; change nothing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	removed := false
	if s.unitsInstalled() {
		if err := s.removeSystemd(ctx, env, *dryRun); err != nil {
			return err
		}
		removed = true
	}
	tab, err := s.crontab(ctx)
	if err != nil && !errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("schedule remove: reading the crontab: %w", err)
	}
	if rest, found := withoutCronLines(tab); found {
		removed = true
		if *dryRun {
			fmt.Fprintf(env.stdout, "would install this crontab (crontab -), without reachprobe's line:\n%s", rest)
		} else {
			if _, err := s.run(ctx, []byte(rest), "crontab", "-"); err != nil {
				return fmt.Errorf("schedule remove: %w", err)
			}
			fmt.Fprintln(env.stdout, "removed reachprobe's crontab line")
		}
	}
	if !removed {
		fmt.Fprintln(env.stdout, "no schedule installed")
	}
	return nil
}

func (s *scheduler) removeSystemd(ctx context.Context, env *environ, dryRun bool) error {
	disable := []string{"systemctl", "--user", "disable", "--now", timerUnit}
	reload := []string{"systemctl", "--user", "daemon-reload"}
	if dryRun {
		fmt.Fprintf(env.stdout, "would run: %s\nwould remove %s and %s\nwould run: %s\n", strings.Join(disable, " "),
			s.unitPath(timerUnit), s.unitPath(serviceUnit), strings.Join(reload, " "))
		return nil
	}
	// Without a user manager there is nothing to disable; the files go.
	s.run(ctx, nil, disable[0], disable[1:]...)
	for _, name := range []string{timerUnit, serviceUnit} {
		if err := os.Remove(s.unitPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("schedule remove: %w", err)
		}
	}
	s.run(ctx, nil, reload[0], reload[1:]...)
	fmt.Fprintf(env.stdout, "removed systemd user timer %s\n", s.unitPath(timerUnit))
	return nil
}

// writeFileAtomic writes path through a temporary file renamed over it,
// so a unit is never seen half written.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
