package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// completionScript returns "reachprobe completion SHELL", written to a file.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var out, errb bytes.Buffer
	env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if code := runMain(context.Background(), env, []string{"completion", shell}); code != exitOK {
		t.Fatalf("completion %s: exit %d, %s", shell, code, errb.String())
	}
	path := filepath.Join(t.TempDir(), "reachprobe."+shell)
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// helpFlagPattern finds flags in a usage text as flag.PrintDefaults
// writes them: "  -name VALUE".
var helpFlagPattern = regexp.MustCompile(`(?m)^  -(\S+)`)

// helpFlags returns the flags "reachprobe PATH --help" lists, dashed as the
// README writes them: the ground truth, independent of describeCLI.
func helpFlags(t *testing.T, path string) []string {
	t.Helper()
	var out, errb bytes.Buffer
	env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, schedule: &scheduler{}}
	if code := runMain(context.Background(), env, append(strings.Fields(path), "--help")); code != exitOK {
		t.Fatalf("%s --help: exit %d", path, code)
	}
	var flags []string
	for _, m := range helpFlagPattern.FindAllStringSubmatch(errb.String(), -1) {
		if len(m[1]) == 1 {
			flags = append(flags, "-"+m[1])
		} else {
			flags = append(flags, "--"+m[1])
		}
	}
	return flags
}

// commandPaths are every command and subcommand completion must know.
func commandPaths() []string {
	var paths []string
	for _, c := range commands {
		if subs := subcommands[c.name]; len(subs) > 0 {
			for _, s := range subs {
				paths = append(paths, c.name+" "+s)
			}
			continue
		}
		paths = append(paths, c.name)
	}
	return paths
}

// bashComplete asks the bash script for the completions of each command
// line (the last word is the one being completed), one answer per line.
func bashComplete(t *testing.T, script string, lines [][]string) [][]string {
	t.Helper()
	var prog strings.Builder
	fmt.Fprintf(&prog, "source %s\n", sq(script))
	prog.WriteString("ask() { COMP_WORDS=(\"$@\"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _reachprobe; echo \"${COMPREPLY[*]}\"; }\n")
	for _, l := range lines {
		words := make([]string, len(l))
		for i, w := range l {
			words[i] = sq(w)
		}
		fmt.Fprintf(&prog, "ask %s\n", strings.Join(words, " "))
	}
	out, err := exec.Command("bash", "--norc", "--noprofile", "-c", prog.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(got) != len(lines) {
		t.Fatalf("bash answered %d lines for %d questions:\n%s", len(got), len(lines), out)
	}
	answers := make([][]string, len(got))
	for i, g := range got {
		answers[i] = strings.Fields(g)
	}
	return answers
}

// fishComplete asks fish for the completions of a command line ("complete
// -C"), without descriptions; it skips the test where fish is missing.
func fishComplete(t *testing.T, script string, lines []string) [][]string {
	t.Helper()
	if _, err := exec.LookPath("fish"); err != nil {
		t.Skip("fish is not installed (.ci/run installs it)")
	}
	var prog strings.Builder
	fmt.Fprintf(&prog, "source %s\n", fishText(script))
	for _, l := range lines {
		fmt.Fprintf(&prog, "complete -C %s | string replace -r '\\t.*' '' | string join ' '\necho\n", fishText(l))
	}
	out, err := exec.Command("fish", "--no-config", "-c", prog.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("fish: %v\n%s", err, out)
	}
	// Each answer is one line (empty when there is none), then a blank.
	got := strings.Split(string(out), "\n")
	var answers [][]string
	for i := 0; i+1 < len(got); i++ {
		if got[i] == "" {
			answers = append(answers, nil)
			continue
		}
		answers = append(answers, strings.Fields(got[i]))
		i++ // the blank line after it
	}
	if len(answers) != len(lines) {
		t.Fatalf("fish answered %d times for %d questions:\n%s", len(answers), len(lines), out)
	}
	return answers
}

func TestCompletionSyntax(t *testing.T) {
	tests := []struct {
		shell string
		check []string
	}{
		{"bash", []string{"bash", "-n"}},
		{"zsh", []string{"zsh", "-n"}},
		{"fish", []string{"fish", "--no-execute"}},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			script := completionScript(t, tt.shell)
			if _, err := exec.LookPath(tt.check[0]); err != nil {
				t.Skipf("%s is not installed, so its script is not syntax-checked here (.ci/run installs it)", tt.check[0])
			}
			if out, err := exec.Command(tt.check[0], append(tt.check[1:], script)...).CombinedOutput(); err != nil {
				t.Errorf("%s: %v\n%s", strings.Join(tt.check, " "), err, out)
			}
		})
	}
	// zsh cannot be asked for completions without a terminal; at least,
	// sourced after compinit, the script registers its function.
	t.Run("zsh compdef", func(t *testing.T) {
		if _, err := exec.LookPath("zsh"); err != nil {
			t.Skip("zsh is not installed (.ci/run installs it)")
		}
		script := completionScript(t, "zsh")
		cmd := exec.Command("zsh", "-f", "-c", "autoload -Uz compinit && compinit -D && source "+sq(script)+" && print -r -- $_comps[reachprobe]")
		cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "_reachprobe" {
			t.Errorf("zsh: the completion for reachprobe is %q (%v), want _reachprobe", out, err)
		}
	})
}

// TestCompletionCoversEveryFlag: every flag every command's --help lists
// is completed, in every shell.
func TestCompletionCoversEveryFlag(t *testing.T) {
	paths := commandPaths()
	want := map[string][]string{}
	for _, p := range paths {
		want[p] = helpFlags(t, p)
	}
	if !slices.Contains(want["run"], "--log-format") || !slices.Contains(want["report"], "-o") {
		t.Fatalf("help flags of run %v and report %v: the help text parser misses flags", want["run"], want["report"])
	}

	t.Run("bash", func(t *testing.T) {
		script := completionScript(t, "bash")
		var lines [][]string
		for _, p := range paths {
			lines = append(lines, append(append([]string{"reachprobe"}, strings.Fields(p)...), "-"))
		}
		for i, got := range bashComplete(t, script, lines) {
			for _, f := range want[paths[i]] {
				if !slices.Contains(got, f) {
					t.Errorf("bash: reachprobe %s -<TAB> offers %v, not %s", paths[i], got, f)
				}
			}
		}
	})
	t.Run("fish", func(t *testing.T) {
		script := completionScript(t, "fish")
		var lines []string
		for _, p := range paths {
			lines = append(lines, "reachprobe "+p+" -")
		}
		for i, got := range fishComplete(t, script, lines) {
			for _, f := range want[paths[i]] {
				if !slices.Contains(got, f) {
					t.Errorf("fish: reachprobe %s -<TAB> offers %v, not %s", paths[i], got, f)
				}
			}
		}
	})
	t.Run("zsh", func(t *testing.T) {
		// zsh cannot be driven without a terminal: check that each
		// command's _arguments block has a spec for each flag.
		text, err := os.ReadFile(completionScript(t, "zsh"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			start := strings.Index(string(text), "    ("+sq(p)+")\n")
			if start < 0 {
				t.Errorf("zsh: no block for %s", p)
				continue
			}
			block := string(text[start:])
			block = block[:strings.Index(block, ";;")]
			for _, f := range want[p] {
				if !regexp.MustCompile(`'\*?` + regexp.QuoteMeta(f) + `[=\[]`).MatchString(block) {
					t.Errorf("zsh: %s has no spec for %s:\n%s", p, f, block)
				}
			}
		}
	})
}

// TestCompletionValues: the values of enumerated flags, subcommands and
// arguments are offered.
func TestCompletionValues(t *testing.T) {
	tests := []struct {
		line []string
		want []string
	}{
		{[]string{"reachprobe", ""}, []string{"run", "analyze", "report", "list", "show", "prune", "check", "schedule", "config", "targets", "version", "completion"}},
		{[]string{"reachprobe", "analyze", "--format", ""}, []string{"text", "json"}},
		{[]string{"reachprobe", "report", "--format", ""}, []string{"html", "csv", "json", "ooni"}},
		{[]string{"reachprobe", "run", "--log-format", ""}, []string{"text", "json"}},
		{[]string{"reachprobe", "prune", "--log-format", ""}, []string{"text", "json"}},
		{[]string{"reachprobe", "schedule", "install", "--method", ""}, []string{"auto", "systemd", "cron"}},
		{[]string{"reachprobe", "schedule", ""}, []string{"install", "remove", "status"}},
		{[]string{"reachprobe", "config", ""}, []string{"show"}},
		{[]string{"reachprobe", "completion", ""}, []string{"bash", "zsh", "fish"}},
		{[]string{"reachprobe", "show", ""}, []string{"latest"}},
		// A value flag's value is never offered flags.
		{[]string{"reachprobe", "run", "--parallel", ""}, nil},
	}
	// A FILE flag completes file names.
	files := t.TempDir()
	os.WriteFile(filepath.Join(files, "measured.db"), nil, 0o600)
	tests = append(tests, struct {
		line []string
		want []string
	}{[]string{"reachprobe", "list", "--db", files + "/me"}, []string{files + "/measured.db"}})
	sorted := func(xs []string) []string { xs = slices.Clone(xs); slices.Sort(xs); return xs }
	t.Run("bash", func(t *testing.T) {
		script := completionScript(t, "bash")
		var lines [][]string
		for _, tt := range tests {
			lines = append(lines, tt.line)
		}
		// --flag=value is split at "=" by bash.
		lines = append(lines, []string{"reachprobe", "analyze", "--format", "=", "j"})
		answers := bashComplete(t, script, lines)
		for i, tt := range tests {
			if got := answers[i]; !slices.Equal(sorted(got), sorted(tt.want)) && !(tt.line[1] == "" && containsAll(got, tt.want)) {
				t.Errorf("bash: %q<TAB> offers %v, want %v", strings.Join(tt.line, " "), got, tt.want)
			}
		}
		if got := answers[len(tests)]; !slices.Equal(got, []string{"json"}) {
			t.Errorf("bash: analyze --format=j<TAB> offers %v, want json", got)
		}
	})
	t.Run("fish", func(t *testing.T) {
		script := completionScript(t, "fish")
		var lines []string
		for _, tt := range tests {
			lines = append(lines, strings.Join(tt.line, " "))
		}
		for i, got := range fishComplete(t, script, lines) {
			tt := tests[i]
			if !slices.Equal(sorted(got), sorted(tt.want)) {
				t.Errorf("fish: %q<TAB> offers %v, want %v", lines[i], got, tt.want)
			}
		}
	})
	t.Run("every enumerated flag", func(t *testing.T) {
		spec, err := describeCLI(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		scripts := map[string]string{}
		for _, sh := range shells {
			b, err := os.ReadFile(completionScript(t, sh))
			if err != nil {
				t.Fatal(err)
			}
			scripts[sh] = string(b)
		}
		n := 0
		for _, c := range spec {
			for _, f := range c.flags {
				if len(f.choices) == 0 {
					continue
				}
				n++
				list := strings.Join(f.choices, " ")
				for sh, text := range scripts {
					if !strings.Contains(text, list) {
						t.Errorf("%s: the values %q of %s %s are not offered", sh, list, c.path, f.dashed())
					}
				}
			}
		}
		if n < 5 {
			t.Errorf("%d enumerated flags found, want at least 5 (--format twice, --log-format twice, --method)", n)
		}
	})
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func TestCompletionBadShell(t *testing.T) {
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}, {"completion", "bash", "zsh"}} {
		var out, errb bytes.Buffer
		env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		code := runMain(context.Background(), env, args)
		if code != exitUsage || !strings.Contains(errb.String(), "bash, zsh or fish") || out.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q, stdout %d bytes; want exit %d naming the shells, nothing on stdout", args, code, errb.String(), out.Len(), exitUsage)
		}
	}
}
