// Command reachprobe measures, from inside a network, whether Apple's push
// notifications (APNs), identity services (IDS) and FaceTime calls are
// reachable, stores every observation in SQLite, and judges whether a
// failure looks like blocking. It is the only place that reads flags and
// the environment and decides exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Exit codes; the README documents them.
const (
	exitOK          = 0 // the command did what was asked; a run completed
	exitFailure     = 1 // the command failed (a run that could not finish, an I/O error)
	exitUsage       = 2 // bad flags, arguments, config, catalog or CA file
	exitDatabase    = 3 // the database cannot be opened or written: corrupt, newer version, unreadable, full disk, read-only
	exitInterrupted = 4 // a run was stopped by SIGINT or SIGTERM; what finished is stored
	exitLocked      = 5 // another run (or prune) holds the database; nothing was written
)

// version is set at build time by the Makefile (-ldflags -X main.version).
var version = "dev"

// usageError is an error in how the command was invoked.
type usageError struct{ error }

// dbError is an error opening or reading the database.
type dbError struct{ error }

// interruptedError reports a run stopped by a signal.
type interruptedError struct{ error }

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *environ, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"run", "measure the catalog and store every observation", cmdRun},
		{"analyze", "judge a run: blocked, degraded or working, with the evidence", cmdAnalyze},
		{"report", "write runs as a web page, CSV, JSON or OONI measurements", cmdReport},
		{"list", "list stored runs", cmdList},
		{"show", "show one run's observations", cmdShow},
		{"prune", "delete old observations, keeping each run's verdicts", cmdPrune},
		{"check", "check the database's integrity, reading every page", cmdCheck},
		{"schedule", "install, remove or check a scheduled run (systemd timer or cron)", cmdSchedule},
		{"config", "show the effective settings and where each came from", cmdConfig},
		{"targets", "print the catalog in use", cmdTargets},
		{"version", "print the version", cmdVersion},
		{"completion", "print a shell completion script: bash, zsh or fish", cmdCompletion},
	}
}

// environ is what main hands to commands: streams and the environment, so
// tests can run commands in-process.
type environ struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// stderrIsTerminal says whether progress may be drawn.
	stderrIsTerminal bool
	// events, set by a command that takes --log-format, is where the
	// error ending the command is reported; nil means plain text.
	events *eventLog
	// schedule installs and inspects scheduled runs; nil means the real
	// systemd and crontab of this machine (tests set a fake one).
	schedule *scheduler
	// describe, when set, receives a command's flag set in place of its
	// usage text on --help: how "completion" learns every command's
	// flags from the flag sets themselves.
	describe func(name string, fs *flag.FlagSet)
}

func main() {
	// quic-go warns on stderr when it cannot enlarge its UDP buffers, which
	// an unprivileged user cannot; handshakes do not need large buffers.
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	env := &environ{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, stderrIsTerminal: isTerminal(os.Stderr)}
	os.Exit(runMain(context.Background(), env, os.Args[1:]))
}

// runMain dispatches to a command and maps its error to an exit code.
func runMain(ctx context.Context, env *environ, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(env.stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		return exitCode(env, err)
	}
	fmt.Fprintf(env.stderr, "reachprobe: unknown command %q\n\n", args[0])
	printUsage(env.stderr)
	return exitUsage
}

func exitCode(env *environ, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := exitFailure
	var u usageError
	var d dbError
	var in interruptedError
	var l lockedError
	switch {
	case errors.As(err, &u):
		code = exitUsage
	case errors.As(err, &l):
		code = exitLocked
	case errors.As(err, &d):
		code = exitDatabase
	case errors.As(err, &in):
		code = exitInterrupted
	}
	if env.events != nil {
		env.events.commandError(err, code)
	} else {
		fmt.Fprintf(env.stderr, "reachprobe: %v\n", err)
	}
	return code
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "reachprobe %s: measures whether Apple push, iMessage identity and FaceTime call endpoints are reachable from this network.\n\nUsage: reachprobe COMMAND [flags]\n\nCommands:\n", version)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun \"reachprobe COMMAND --help\" for a command's flags.\nNothing is uploaded: observations stay in the local database.\n")
}

// newFlagSet makes a command's flag set with a usage text naming it.
func newFlagSet(env *environ, name, args, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		if env.describe != nil {
			env.describe(name, fs)
			return
		}
		fmt.Fprintf(env.stderr, "Usage: reachprobe %s %s\n\n%s\n\nFlags:\n", name, args, about)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses and turns flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{fmt.Errorf("%s: %w", fs.Name(), err)}
	}
	return nil
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return fmt.Sprint([]string(*l)) }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// choiceFlag is a flag whose value is one of a fixed list, which shell
// completion offers.
type choiceFlag struct {
	value   string
	choices []string
}

// choice defines a choiceFlag on fs and returns where its value is kept.
func choice(fs *flag.FlagSet, name, value string, choices []string, usage string) *string {
	c := &choiceFlag{value: value, choices: choices}
	fs.Var(c, name, usage)
	return &c.value
}

func (c *choiceFlag) String() string { return c.value }

func (c *choiceFlag) Set(s string) error {
	if !slices.Contains(c.choices, s) {
		return fmt.Errorf("want %s", orList(c.choices))
	}
	c.value = s
	return nil
}

// Choices are the values the flag takes.
func (c *choiceFlag) Choices() []string { return c.choices }

// orList writes "a, b or c".
func orList(xs []string) string {
	if len(xs) < 2 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}
