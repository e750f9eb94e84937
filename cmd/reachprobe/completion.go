package main

// # Completion
//
// "reachprobe completion SHELL" writes a completion script for bash, zsh
// or fish. The scripts are generated from the commands' own flag sets:
// each command is run with --help while environ.describe is set, which
// hands over its flag set instead of printing the usage text, so a flag
// is completed as soon as it is defined. A flag's value is completed from
// its type: the values of an enumerated flag (one with Choices, such as
// --format, --log-format, --method), file names for a `FILE`, nothing
// for the rest.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// shells are the shells "completion" writes for.
var shells = []string{"bash", "zsh", "fish"}

// subcommands of the commands that take one before their flags.
var subcommands = map[string][]string{
	"schedule": {"install", "remove", "status"},
	"config":   {"show"},
}

// positionalChoices are the values offered for a command's positional
// argument; a run number is the user's to type.
var positionalChoices = map[string][]string{
	"completion": shells,
	"analyze":    {"latest"},
	"report":     {"latest"},
	"show":       {"latest"},
}

// cliCommand is what completion knows of one command, or of one
// subcommand ("schedule install").
type cliCommand struct {
	path        string // "run", "schedule install"
	summary     string
	flags       []cliFlag
	subcommands []string
	args        []string
}

// cliFlag is one flag of a command.
type cliFlag struct {
	name       string
	help       string // the first clause of its usage text
	takesValue bool
	valueName  string // FILE, DURATION, ... as in the usage text
	choices    []string
	repeatable bool
}

// dashed is the flag as the README writes it: -v, --db.
func (f cliFlag) dashed() string {
	if len(f.name) == 1 {
		return "-" + f.name
	}
	return "--" + f.name
}

func (f cliFlag) files() bool { return f.valueName == "FILE" }

// describeCLI learns every command's flags by running it with --help in
// describe mode. Every command parses its flags before doing anything,
// so nothing else happens.
func describeCLI(ctx context.Context) ([]cliCommand, error) {
	var out []cliCommand
	for _, c := range commands {
		subs := subcommands[c.name]
		out = append(out, cliCommand{path: c.name, summary: c.summary, subcommands: subs, args: positionalChoices[c.name]})
		paths := []string{c.name}
		if len(subs) > 0 {
			paths = nil
			for _, s := range subs {
				paths = append(paths, c.name+" "+s)
			}
		}
		for _, p := range paths {
			fs, err := commandFlagSet(ctx, p)
			if err != nil {
				return nil, err
			}
			flags := describeFlags(fs)
			if p == c.name {
				out[len(out)-1].flags = flags
				continue
			}
			out = append(out, cliCommand{path: p, flags: flags, args: positionalChoices[p]})
		}
	}
	return out, nil
}

// commandFlagSet runs "reachprobe PATH --help" in describe mode and
// returns the flag set the command defined.
func commandFlagSet(ctx context.Context, path string) (*flag.FlagSet, error) {
	var got *flag.FlagSet
	env := &environ{
		stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" },
		schedule: &scheduler{}, // never used: --help stops first
		describe: func(_ string, fs *flag.FlagSet) { got = fs },
	}
	runMain(ctx, env, append(strings.Fields(path), "--help"))
	if got == nil {
		return nil, fmt.Errorf("completion: %q --help did not describe its flags", path)
	}
	return got, nil
}

func describeFlags(fs *flag.FlagSet) []cliFlag {
	var flags []cliFlag
	fs.VisitAll(func(f *flag.Flag) {
		valueName, usage := flag.UnquoteUsage(f)
		cf := cliFlag{name: f.Name, help: firstClause(usage), valueName: valueName, takesValue: true}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			cf.takesValue = false
		}
		if c, ok := f.Value.(interface{ Choices() []string }); ok {
			cf.choices = c.Choices()
		}
		_, cf.repeatable = f.Value.(*listFlag)
		flags = append(flags, cf)
	})
	return flags
}

// maxHelp bounds a flag's description in a completion menu.
const maxHelp = 70

// firstClause shortens a usage text to its first clause, for a menu.
func firstClause(s string) string {
	if i := strings.IndexAny(s, ";(\n"); i > 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > maxHelp {
		s = string([]rune(s)[:maxHelp-3]) + "..."
	}
	return s
}

func cmdCompletion(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "completion", "bash|zsh|fish",
		"Prints a completion script for a shell: commands, flags and the values of flags such as --format.\n"+
			"bash: reachprobe completion bash > ~/.local/share/bash-completion/completions/reachprobe\n"+
			"zsh:  reachprobe completion zsh > ~/.zfunc/_reachprobe (with fpath=(~/.zfunc $fpath) before compinit)\n"+
			"fish: reachprobe completion fish > ~/.config/fish/completions/reachprobe.fish")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{fmt.Errorf("completion: give one shell: %s", orList(shells))}
	}
	spec, err := describeCLI(ctx)
	if err != nil {
		return err
	}
	var script string
	switch pos[0] {
	case "bash":
		script = bashCompletion(spec)
	case "zsh":
		script = zshCompletion(spec)
	case "fish":
		script = fishCompletion(spec)
	default:
		return usageError{fmt.Errorf("completion: unknown shell %q: want %s", pos[0], orList(shells))}
	}
	_, err = io.WriteString(env.stdout, script)
	return err
}

// sq quotes s in single quotes for bash and zsh.
func sq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func topLevel(spec []cliCommand) []cliCommand {
	var out []cliCommand
	for _, c := range spec {
		if !strings.Contains(c.path, " ") {
			out = append(out, c)
		}
	}
	return out
}

func bashCompletion(spec []cliCommand) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# bash completion for reachprobe, generated by \"reachprobe completion bash\" (reachprobe %s).\n", version)
	b.WriteString("# Install: reachprobe completion bash > ~/.local/share/bash-completion/completions/reachprobe\n")
	b.WriteString("# or add to ~/.bashrc: source <(reachprobe completion bash)\n\n")
	b.WriteString("_reachprobe() {\n")
	b.WriteString("    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n")
	b.WriteString("    local cmd=${COMP_WORDS[1]} flags=''\n")
	var names []string
	for _, c := range topLevel(spec) {
		names = append(names, c.path)
	}
	fmt.Fprintf(&b, "    if (( COMP_CWORD == 1 )); then\n        COMPREPLY=($(compgen -W %s -- \"$cur\"))\n        return\n    fi\n",
		sq(strings.Join(append(names, "--help"), " ")))
	b.WriteString("    case $cmd in\n")
	for _, c := range spec {
		if len(c.subcommands) == 0 {
			continue
		}
		fmt.Fprintf(&b, "    %s)\n        if (( COMP_CWORD == 2 )); then\n            COMPREPLY=($(compgen -W %s -- \"$cur\"))\n            return\n        fi\n        cmd=\"$cmd ${COMP_WORDS[2]}\" ;;\n",
			c.path, sq(strings.Join(c.subcommands, " ")))
	}
	b.WriteString("    esac\n")
	b.WriteString("    # --flag=value: bash splits the word at \"=\" (COMP_WORDBREAKS).\n")
	b.WriteString("    if [[ $cur == = ]]; then\n        cur=''\n    elif [[ $prev == = ]] && (( COMP_CWORD > 2 )); then\n        prev=${COMP_WORDS[COMP_CWORD-2]}\n    fi\n")
	b.WriteString("    case \"$cmd $prev\" in\n")
	for _, c := range spec {
		for _, f := range c.flags {
			if !f.takesValue {
				continue
			}
			// Go's flag package takes -name as well as --name.
			pattern := sq(c.path+" --"+f.name) + "|" + sq(c.path+" -"+f.name)
			switch {
			case len(f.choices) > 0:
				fmt.Fprintf(&b, "    %s)\n        COMPREPLY=($(compgen -W %s -- \"$cur\"))\n        return ;;\n", pattern, sq(strings.Join(f.choices, " ")))
			case f.files():
				fmt.Fprintf(&b, "    %s)\n        compopt -o filenames 2>/dev/null\n        COMPREPLY=($(compgen -f -- \"$cur\"))\n        return ;;\n", pattern)
			default:
				fmt.Fprintf(&b, "    %s)\n        return ;;\n", pattern)
			}
		}
	}
	b.WriteString("    esac\n")
	b.WriteString("    case $cmd in\n")
	for _, c := range spec {
		if len(c.subcommands) > 0 {
			continue
		}
		var flags []string
		for _, f := range c.flags {
			flags = append(flags, f.dashed())
		}
		flags = append(flags, "--help")
		fmt.Fprintf(&b, "    %s)\n        flags=%s\n", sq(c.path), sq(strings.Join(flags, " ")))
		if len(c.args) > 0 {
			fmt.Fprintf(&b, "        [[ $cur == -* ]] || COMPREPLY=($(compgen -W %s -- \"$cur\"))\n", sq(strings.Join(c.args, " ")))
		}
		b.WriteString("        ;;\n")
	}
	b.WriteString("    esac\n")
	b.WriteString("    if [[ $cur == -* ]]; then\n        COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n    fi\n}\n\n")
	b.WriteString("complete -F _reachprobe reachprobe\n")
	return b.String()
}

// zshText makes s safe inside an _arguments description in brackets.
func zshText(s string) string {
	return strings.NewReplacer("[", "(", "]", ")", "\\", "/", ":", " -").Replace(s)
}

func zshCompletion(spec []cliCommand) string {
	var b strings.Builder
	b.WriteString("#compdef reachprobe\n")
	fmt.Fprintf(&b, "# zsh completion for reachprobe, generated by \"reachprobe completion zsh\" (reachprobe %s).\n", version)
	b.WriteString("# Install: reachprobe completion zsh > ~/.zfunc/_reachprobe, with fpath=(~/.zfunc $fpath) before\n")
	b.WriteString("# compinit in ~/.zshrc; or add to ~/.zshrc, after compinit: source <(reachprobe completion zsh)\n\n")
	b.WriteString("_reachprobe() {\n")
	b.WriteString("    local -a cmds\n    cmds=(\n")
	for _, c := range topLevel(spec) {
		fmt.Fprintf(&b, "        %s\n", sq(c.path+":"+c.summary))
	}
	b.WriteString("    )\n")
	b.WriteString("    if (( CURRENT == 2 )); then\n        _describe -t commands 'reachprobe command' cmds\n        return\n    fi\n")
	b.WriteString("    local cmd=$words[2]\n    shift words\n    (( CURRENT-- ))\n")
	b.WriteString("    case $cmd in\n")
	for _, c := range spec {
		if len(c.subcommands) == 0 {
			continue
		}
		var vals []string
		for _, s := range c.subcommands {
			vals = append(vals, sq(s))
		}
		fmt.Fprintf(&b, "    (%s)\n        if (( CURRENT == 2 )); then\n            _values subcommand %s\n            return\n        fi\n        cmd=\"$cmd $words[2]\"\n        shift words\n        (( CURRENT-- ))\n        ;;\n",
			c.path, strings.Join(vals, " "))
	}
	b.WriteString("    esac\n")
	b.WriteString("    case $cmd in\n")
	for _, c := range spec {
		if len(c.subcommands) > 0 {
			continue
		}
		fmt.Fprintf(&b, "    (%s)\n        _arguments", sq(c.path))
		for _, f := range c.flags {
			var spec string
			if f.takesValue {
				action := " "
				switch {
				case len(f.choices) > 0:
					action = "(" + strings.Join(f.choices, " ") + ")"
				case f.files():
					action = "_files"
				}
				value := strings.ToLower(f.valueName)
				if value == "" {
					value = "value"
				}
				spec = fmt.Sprintf("%s=[%s]:%s:%s", f.dashed(), zshText(f.help), value, action)
				if f.repeatable {
					spec = "*" + spec
				}
			} else {
				spec = fmt.Sprintf("%s[%s]", f.dashed(), zshText(f.help))
			}
			fmt.Fprintf(&b, " \\\n            %s", sq(spec))
		}
		fmt.Fprintf(&b, " \\\n            %s", sq("--help[show the command's flags]"))
		if len(c.args) > 0 {
			fmt.Fprintf(&b, " \\\n            %s", sq("1:argument:("+strings.Join(c.args, " ")+")"))
		}
		b.WriteString("\n        ;;\n")
	}
	b.WriteString("    esac\n}\n\n")
	// Autoloaded from fpath, the file is _reachprobe's body: define it and
	// call it. Sourced, it registers the function.
	b.WriteString("if [ \"$funcstack[1]\" = \"_reachprobe\" ]; then\n    _reachprobe \"$@\"\nelse\n    compdef _reachprobe reachprobe\nfi\n")
	return b.String()
}

// fishText quotes s in single quotes for fish.
func fishText(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func fishCompletion(spec []cliCommand) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# fish completion for reachprobe, generated by \"reachprobe completion fish\" (reachprobe %s).\n", version)
	b.WriteString("# Install: reachprobe completion fish > ~/.config/fish/completions/reachprobe.fish\n\n")
	b.WriteString("# The command (and subcommand) on the line so far: \"run\", \"schedule install\", or nothing.\n")
	b.WriteString("function __reachprobe_command\n    set -l tokens (commandline -opc)\n    set -e tokens[1]\n")
	b.WriteString("    if not set -q tokens[1]\n        echo ''\n        return\n    end\n")
	var withSubs []string
	for _, c := range spec {
		if len(c.subcommands) > 0 {
			withSubs = append(withSubs, c.path)
		}
	}
	fmt.Fprintf(&b, "    if contains -- $tokens[1] %s; and set -q tokens[2]\n        echo \"$tokens[1] $tokens[2]\"\n        return\n    end\n", strings.Join(withSubs, " "))
	b.WriteString("    echo $tokens[1]\nend\n\n")
	b.WriteString("function __reachprobe_is\n    set -l c (__reachprobe_command)\n    test \"$c\" = \"$argv[1]\"\nend\n\n")
	b.WriteString("complete -c reachprobe -f\n")
	for _, c := range topLevel(spec) {
		fmt.Fprintf(&b, "complete -c reachprobe -n \"__reachprobe_is ''\" -a %s -d %s\n", c.path, fishText(c.summary))
	}
	for _, c := range spec {
		cond := "__reachprobe_is " + fishText(c.path)
		for _, s := range c.subcommands {
			fmt.Fprintf(&b, "complete -c reachprobe -n %s -a %s\n", fishText(cond), s)
		}
		if len(c.subcommands) > 0 {
			continue
		}
		for _, a := range c.args {
			fmt.Fprintf(&b, "complete -c reachprobe -n %s -a %s\n", fishText(cond), a)
		}
		for _, f := range c.flags {
			opt := "-l " + f.name
			if len(f.name) == 1 {
				opt = "-s " + f.name
			}
			value := ""
			switch {
			case len(f.choices) > 0:
				value = " -x -a " + fishText(strings.Join(f.choices, " "))
			case f.files():
				value = " -r -F"
			case f.takesValue:
				value = " -x"
			}
			fmt.Fprintf(&b, "complete -c reachprobe -n %s %s%s -d %s\n", fishText(cond), opt, value, fishText(f.help))
		}
		fmt.Fprintf(&b, "complete -c reachprobe -n %s -l help -d %s\n", fishText(cond), fishText("show the command's flags"))
	}
	return b.String()
}
