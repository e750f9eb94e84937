package main

// # First contact
//
// What the reading commands (analyze, report, show, list) say before
// anything was measured, and errors that name the flag or file at fault.
// A database that does not exist is not created by a reader: the error
// names the path looked at and says to run "reachprobe run" first. Both
// "no database" and "no runs yet" exit with code 2 (exitUsage), as a RUN
// that does not exist does: the command was asked for what is not there.
// list, whose answer may be empty, says so and succeeds when the
// database exists.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"

	"github.com/reachprobe/reachprobe/measurements"
)

// openRuns opens the database a reading command reads: --db, else the
// config file's db, else the default. cmd names the command in errors.
func openRuns(ctx context.Context, env *environ, cmd, dbFlag string) (*measurements.Store, error) {
	path := dbFlag
	if path == "" {
		var err error
		if path, err = configuredDBPath(env, ""); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, errNoDatabase(env, cmd, path)
	}
	return openStore(ctx, env, path)
}

// errNoDatabase: cmd looked for a database at path and found no file.
func errNoDatabase(env *environ, cmd, path string) error {
	return usageError{fmt.Errorf("%s: no database at %s: nothing has been measured into it yet; \"reachprobe run%s\" measures this network and stores the first run there",
		cmd, path, nextCommandsDB(env, path))}
}

// errNoRuns: the database at path exists and holds no run.
func errNoRuns(env *environ, cmd, path string) error {
	return usageError{fmt.Errorf("%s: the database %s has no runs yet; \"reachprobe run%s\" measures this network and stores the first",
		cmd, path, nextCommandsDB(env, path))}
}

// noRunsText is what list prints for a database without runs.
func noRunsText(env *environ, path string) string {
	return fmt.Sprintf("no runs in %s yet: \"reachprobe run%s\" measures this network and stores the first", path, nextCommandsDB(env, path))
}

// storeError is an error reading the database, naming its file.
func storeError(store *measurements.Store, err error) error {
	return dbError{fmt.Errorf("database %s: %w", store.Path(), err)}
}

// checkRunFlags refuses run's flags out of range or malformed, naming
// the flag and the value given (the config file's values were checked as
// it was read, with its line).
func checkRunFlags(o *runOptions) error {
	for _, u := range o.doh {
		if p, err := url.Parse(u); err != nil || p.Scheme != "https" || p.Host == "" {
			return usageError{fmt.Errorf("run: --control-doh %q: want an https URL, such as %s", u, defaultDoH[0])}
		}
	}
	if _, port, err := net.SplitHostPort(o.stunServer); !o.noNetworkID && (err != nil || port == "") {
		return usageError{fmt.Errorf("run: --stun-server %q: want HOST:PORT, such as %s", o.stunServer, defaultSTUNServer)}
	}
	switch {
	case o.parallel < 1:
		return usageError{fmt.Errorf("run: --parallel %d: want at least 1", o.parallel)}
	case o.repeat < 1:
		return usageError{fmt.Errorf("run: --repeat %d: want at least 1", o.repeat)}
	case o.repeatSpacing < 0:
		return usageError{fmt.Errorf("run: --repeat-spacing %s: must not be negative", o.repeatSpacing)}
	case o.confirmDelay < 0:
		return usageError{fmt.Errorf("run: --confirm-delay %s: must not be negative", o.confirmDelay)}
	case o.timeout < 0:
		return usageError{fmt.Errorf("run: --timeout %s: must not be negative", o.timeout)}
	case o.wait < 0:
		return usageError{fmt.Errorf("run: --wait %s: must not be negative", o.wait)}
	}
	return nil
}
