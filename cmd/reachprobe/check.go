package main

import (
	"context"
	"fmt"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// cmdCheck reads every page of the database and says whether SQLite finds
// it sound. It is the one command that pays for a full integrity check;
// run and the readers only sanity-check the header and schema (see
// measurements' "Integrity checks"), and prune runs a quick check before
// it deletes anything.
func cmdCheck(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, "check", "[flags]",
		"Checks the database's integrity: reads every page (PRAGMA integrity_check) and exits with\ncode 3 if SQLite finds damage. Writes nothing; time grows with the file's size.")
	db := fs.String("db", "", "database `FILE` (default: the config file's db, or $XDG_DATA_HOME/reachprobe/reachprobe.db)")
	quick := fs.Bool("quick", false, "PRAGMA quick_check: every page's structure, not whether indexes agree with their tables; several times faster")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("check: unexpected argument %q", fs.Arg(0))}
	}
	store, err := openRuns(ctx, env, "check", *db)
	if err != nil {
		return err
	}
	defer store.Close()
	how, name := measurements.FullCheck, "integrity_check"
	if *quick {
		how, name = measurements.QuickCheck, "quick_check"
	}
	size, err := store.DiskSize()
	if err != nil {
		return dbError{err}
	}
	start := time.Now()
	if err := store.CheckIntegrity(ctx, how); err != nil {
		return dbError{err}
	}
	_, err = fmt.Fprintf(env.stdout, "database %s: ok (%s of %s took %s)\n", text(store.Path()), name, byteSize(size),
		time.Since(start).Round(time.Millisecond))
	return err
}
