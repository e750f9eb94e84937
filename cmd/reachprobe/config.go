package main

// # Configuration
//
// A scheduled run has no command line worth editing, so what it needs
// (catalog, database, DoH controls, parallelism, repetitions) can live in a
// config file, $XDG_CONFIG_HOME/reachprobe/config (~/.config/reachprobe/
// config without XDG_CONFIG_HOME), or the file given with --config. Each
// key stands for one flag of run, and a flag given on the command line
// wins over the file, which wins over the default. The file is
// "key = value" lines; blank lines and lines starting with # are ignored.
// A bad file is refused, naming the file, the line and the key.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/reachprobe/reachprobe/probes/inputfile"
)

// valueKind says how a config value is checked and what it becomes.
type valueKind int

const (
	kindPath      valueKind = iota // a file; ~/ is the home directory, a relative path is relative to the config file
	kindPathList                   // comma-separated files
	kindURLList                    // comma-separated https URLs
	kindCount                      // an integer of at least 1
	kindDuration                   // a Go duration (90s, 3m, 1h30m), not negative
	kindLogFormat                  // text or json
	kindHostPort                   // HOST:PORT
	kindBool                       // true or false
)

// configKey is a key of the config file and the run flag it stands for.
type configKey struct {
	name string
	flag string
	kind valueKind
}

// configKeys are the keys the config file knows, in the order "config
// show" lists them.
var configKeys = []configKey{
	{"targets", "targets", kindPath},
	{"db", "db", kindPath},
	{"control_doh", "control-doh", kindURLList},
	{"ca_file", "ca-file", kindPathList},
	{"apple_ca_file", "apple-ca-file", kindPath},
	{"resolv_conf", "resolv-conf", kindPath},
	{"parallel", "parallel", kindCount},
	{"repeat", "repeat", kindCount},
	{"repeat_spacing", "repeat-spacing", kindDuration},
	{"confirm_delay", "confirm-delay", kindDuration},
	{"timeout", "timeout", kindDuration},
	{"log_format", "log-format", kindLogFormat},
	{"stun_server", "stun-server", kindHostPort},
	{"no_path_probes", "no-path-probes", kindBool},
}

func lookupConfigKey(name string) (configKey, bool) {
	i := slices.IndexFunc(configKeys, func(k configKey) bool { return k.name == name })
	if i < 0 {
		return configKey{}, false
	}
	return configKeys[i], true
}

// maxConfigSize bounds the file read: a config file is a dozen lines, and
// anything megabytes long is not one.
const maxConfigSize = 64 << 10

// config is a parsed config file.
type config struct {
	// path is the file; found says whether it exists. The default file may
	// be missing; a file given with --config may not.
	path  string
	found bool
	// entries holds each key set, its values checked and normalised
	// (paths absolute, lists split).
	entries map[string]configEntry
}

// configEntry is one "key = value" line.
type configEntry struct {
	values []string
	line   int
}

// configError is a bad line of a config file.
type configError struct {
	file string
	line int
	key  string // "" when the line has none
	msg  string
}

func (e *configError) Error() string {
	if e.key == "" {
		return fmt.Sprintf("%s:%d: %s", e.file, e.line, e.msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.file, e.line, e.key, e.msg)
}

// defaultConfigPath is $XDG_CONFIG_HOME/reachprobe/config, with the XDG
// fallback of ~/.config; "" when neither is set.
func defaultConfigPath(env *environ) string {
	dir := env.getenv("XDG_CONFIG_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home := env.getenv("HOME")
		if home == "" {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "reachprobe", "config")
}

// loadConfig reads the config file given with --config (which must exist)
// or, when explicit is "", the default one (which may not).
func loadConfig(env *environ, explicit string) (*config, error) {
	path := explicit
	if path == "" {
		path = defaultConfigPath(env)
		if path == "" {
			return &config{entries: map[string]configEntry{}}, nil
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, usageError{fmt.Errorf("config file %s: %w", path, err)}
	}
	data, err := inputfile.Read(abs, maxConfigSize)
	if errors.Is(err, os.ErrNotExist) && explicit == "" {
		return &config{path: abs, entries: map[string]configEntry{}}, nil
	}
	if err != nil {
		return nil, usageError{fmt.Errorf("config file: %w", err)}
	}
	cfg, err := parseConfig(abs, data, env.getenv("HOME"))
	if err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

// parseConfig parses the text of the config file at path (absolute: it
// anchors relative paths); home expands ~/.
func parseConfig(path string, data []byte, home string) (*config, error) {
	cfg := &config{path: path, found: true, entries: map[string]configEntry{}}
	for i, raw := range bytes.Split(data, []byte("\n")) {
		line := i + 1
		if len(raw) > inputfile.MaxLineBytes {
			return nil, &configError{file: path, line: line, msg: inputfile.LineTooLong(len(raw))}
		}
		text := strings.TrimSpace(string(bytes.TrimSuffix(raw, []byte("\r"))))
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		name, value, ok := strings.Cut(text, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" {
			return nil, &configError{file: path, line: line, msg: fmt.Sprintf("%s is not a \"key = value\" line", inputfile.Quote(text))}
		}
		key, known := lookupConfigKey(name)
		if !known {
			return nil, &configError{file: path, line: line, key: name, msg: "unknown key; the keys are " + configKeyNames()}
		}
		if prev, dup := cfg.entries[name]; dup {
			return nil, &configError{file: path, line: line, key: name, msg: fmt.Sprintf("set twice (first on line %d)", prev.line)}
		}
		if value == "" {
			return nil, &configError{file: path, line: line, key: name, msg: "no value"}
		}
		values, err := checkConfigValue(key.kind, value, filepath.Dir(path), home)
		if err != nil {
			return nil, &configError{file: path, line: line, key: name, msg: err.Error()}
		}
		cfg.entries[name] = configEntry{values: values, line: line}
	}
	return cfg, nil
}

func configKeyNames() string {
	names := make([]string, len(configKeys))
	for i, k := range configKeys {
		names[i] = k.name
	}
	return strings.Join(names, ", ")
}

// checkConfigValue checks a value of kind and returns it as the flag
// values it stands for.
func checkConfigValue(kind valueKind, value, dir, home string) ([]string, error) {
	switch kind {
	case kindPath:
		p, err := configPath(value, dir, home)
		if err != nil {
			return nil, err
		}
		return []string{p}, nil
	case kindPathList, kindURLList:
		var out []string
		for _, item := range strings.Split(value, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				return nil, fmt.Errorf("empty item in %s", inputfile.Quote(value))
			}
			if kind == kindURLList {
				u, err := url.Parse(item)
				if err != nil || u.Scheme != "https" || u.Host == "" {
					return nil, fmt.Errorf("%s is not an https URL", inputfile.Quote(item))
				}
				out = append(out, item)
				continue
			}
			p, err := configPath(item, dir, home)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, nil
	case kindCount:
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s is not a whole number of at least 1", inputfile.Quote(value))
		}
		return []string{value}, nil
	case kindDuration:
		d, err := time.ParseDuration(value)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%s is not a duration such as 90s, 3m or 1h30m", inputfile.Quote(value))
		}
		return []string{value}, nil
	case kindHostPort:
		host, port, err := net.SplitHostPort(value)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || host == "" || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%s is not HOST:PORT", inputfile.Quote(value))
		}
		return []string{value}, nil
	case kindBool:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return nil, fmt.Errorf("%s is not true or false", inputfile.Quote(value))
		}
		return []string{strconv.FormatBool(b)}, nil
	case kindLogFormat:
		var f logFormat
		if err := f.Set(value); err != nil {
			return nil, err
		}
		return []string{value}, nil
	}
	return nil, fmt.Errorf("unknown kind %d", kind)
}

// configPath makes a path of the config file absolute: ~/ is the home
// directory, a relative path is relative to the config file's directory
// (a scheduled run's working directory is not the user's).
func configPath(p, dir, home string) (string, error) {
	switch {
	case p == "~" || strings.HasPrefix(p, "~/"):
		if home == "" || !filepath.IsAbs(home) {
			return "", fmt.Errorf("%q starts with ~ but HOME is not set", p)
		}
		return filepath.Join(home, p[1:]), nil
	case strings.HasPrefix(p, "~"):
		return "", fmt.Errorf("%q: only ~/ (your own home) is expanded", p)
	case filepath.IsAbs(p):
		return filepath.Clean(p), nil
	}
	return filepath.Join(dir, p), nil
}

// applyConfig loads the config file (--config, or the default) and sets
// every flag of fs it names that the command line did not set.
func applyConfig(env *environ, fs *flag.FlagSet, explicit string) (*config, error) {
	cfg, err := loadConfig(env, explicit)
	if err != nil {
		return nil, err
	}
	given := flagsGiven(fs)
	for _, k := range configKeys {
		e, ok := cfg.entries[k.name]
		if !ok || given[k.flag] || fs.Lookup(k.flag) == nil {
			continue
		}
		for _, v := range e.values {
			if err := fs.Set(k.flag, v); err != nil {
				return nil, usageError{&configError{file: cfg.path, line: e.line, key: k.name, msg: err.Error()}}
			}
		}
	}
	return cfg, nil
}

// flagsGiven is the set of flags the command line set.
func flagsGiven(fs *flag.FlagSet) map[string]bool {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return given
}

// configuredDBPath is the database a command uses without --db: the
// config file's db, or the default.
func configuredDBPath(env *environ, explicitConfig string) (string, error) {
	cfg, err := loadConfig(env, explicitConfig)
	if err != nil {
		return "", err
	}
	if e, ok := cfg.entries["db"]; ok {
		return e.values[0], nil
	}
	return defaultDBPath(env)
}

// setting is one effective setting of "config show".
type setting struct {
	key, value, source string
}

// effectiveSettings lists every config key's value and where it came from.
// given is the set of flags the command line set, before applyConfig.
func effectiveSettings(env *environ, fs *flag.FlagSet, cfg *config, given map[string]bool) []setting {
	var out []setting
	for _, k := range configKeys {
		f := fs.Lookup(k.flag)
		if f == nil {
			continue
		}
		s := setting{key: k.name, value: f.Value.String(), source: "default"}
		if l, ok := f.Value.(*listFlag); ok {
			s.value = strings.Join(*l, ", ")
		}
		switch e, inFile := cfg.entries[k.name]; {
		case given[k.flag]:
			s.source = "flag --" + k.flag
		case inFile:
			s.source = fmt.Sprintf("config %s:%d", cfg.path, e.line)
		}
		if s.source == "default" {
			switch k.name {
			case "targets":
				s.value = "(embedded default catalog)"
			case "db":
				if p, err := defaultDBPath(env); err == nil {
					s.value = p
				} else {
					s.value = "(none: " + err.Error() + ")"
				}
			case "control_doh":
				s.value = strings.Join(defaultDoH, ", ")
			case "ca_file":
				s.value = "(system roots only)"
			case "apple_ca_file":
				s.value = "(embedded Apple roots)"
			}
		}
		out = append(out, s)
	}
	return out
}

func cmdConfig(ctx context.Context, env *environ, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintf(env.stderr, "Usage: reachprobe config show [--config FILE] [run flags]\n\nPrints the settings a run would use, each with where it came from: a flag, the config file and\nits line, or the default. The config file is %s.\n", configFileHelp)
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "show" {
		return usageError{errors.New(`config: give "show" (reachprobe config show [--config FILE] [run flags])`)}
	}
	var o runOptions
	fs := newRunFlagSet(env, "config show", "[--config FILE] [run flags]",
		"Prints the settings a run would use and where each came from: a flag, the config file and its\nline, or the default. Give run's flags to see how they combine with the file.", &o)
	// run's own flags, accepted so that a run's command line can be pasted.
	var ignoredBool bool
	var ignoredWait time.Duration
	var ignoredAge ageFlag
	fs.BoolVar(&ignoredBool, "v", false, "accepted and ignored (a flag of run)")
	fs.BoolVar(&ignoredBool, "q", false, "accepted and ignored (a flag of run)")
	fs.DurationVar(&ignoredWait, "wait", 0, "accepted and ignored (a flag of run)")
	fs.Var(&ignoredAge, "prune-older-than", "accepted and ignored (a flag of run)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("config show: unexpected argument %q", fs.Arg(0))}
	}
	given := flagsGiven(fs)
	cfg, err := applyConfig(env, fs, o.config)
	if err != nil {
		return err
	}
	switch {
	case cfg.path == "":
		fmt.Fprintln(env.stdout, "config file: none (neither XDG_CONFIG_HOME nor HOME is set)")
	case cfg.found:
		fmt.Fprintf(env.stdout, "config file: %s\n", cfg.path)
	default:
		fmt.Fprintf(env.stdout, "config file: %s (not found; defaults apply)\n", cfg.path)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
	for _, s := range effectiveSettings(env, fs, cfg, given) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.key, s.value, s.source)
	}
	return tw.Flush()
}

// configFileHelp names the default config file in usage texts.
const configFileHelp = "$XDG_CONFIG_HOME/reachprobe/config, or ~/.config/reachprobe/config"
