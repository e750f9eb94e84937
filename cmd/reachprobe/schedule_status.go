package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// exitMeanings says what each exit code of reachprobe means, for status.
var exitMeanings = map[int]string{
	exitOK:          "completed",
	exitFailure:     "failed (did not finish in time, or an I/O error)",
	exitUsage:       "could not start: bad flags, config, catalog or CA file",
	exitDatabase:    "could not start or store: database error",
	exitInterrupted: "interrupted",
	exitLocked:      "could not start: another run held the database",
}

func scheduleStatus(ctx context.Context, env *environ, s *scheduler, args []string) error {
	fs := newFlagSet(env, "schedule status", "[--config FILE] [--db FILE]",
		"Says which schedule is installed, when systemd runs it next, and how the last run ended.")
	configPath := fs.String("config", "", "config `FILE` naming the database (default "+configFileHelp+")")
	db := fs.String("db", "", "database `FILE` whose last run to show (default: the config file's db, or the default database)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	w := env.stdout
	installed := false
	if s.unitsInstalled() {
		installed = true
		fmt.Fprintf(w, "systemd user timer: %s\n", s.unitPath(timerUnit))
		printUnitLines(env, s.unitPath(timerUnit), "OnCalendar=", "OnUnitActiveSec=", "RandomizedDelaySec=")
		printUnitLines(env, s.unitPath(serviceUnit), "ExecStart=")
		if p, err := s.systemdProperties(ctx, timerUnit, "ActiveState", "UnitFileState", "NextElapseUSecRealtime", "LastTriggerUSec"); err != nil {
			fmt.Fprintf(w, "  cannot ask systemd: %v\n", err)
		} else {
			fmt.Fprintf(w, "  timer %s, %s; next run %s; last started %s\n", orDash(p["ActiveState"]), orDash(p["UnitFileState"]),
				orDash(p["NextElapseUSecRealtime"]), orDash(p["LastTriggerUSec"]))
			if p, err := s.systemdProperties(ctx, serviceUnit, "Result", "ExecMainStatus", "ExecMainExitTimestamp"); err == nil && p["ExecMainExitTimestamp"] != "" {
				fmt.Fprintf(w, "  last run ended %s: %s\n", p["ExecMainExitTimestamp"], exitStatusText(p["ExecMainStatus"], p["Result"]))
			}
		}
	}
	tab, err := s.crontab(ctx)
	if err != nil && !errors.Is(err, exec.ErrNotFound) {
		fmt.Fprintf(w, "cannot read the crontab: %v\n", err)
	}
	for _, line := range cronLines(tab) {
		installed = true
		fmt.Fprintf(w, "crontab line: %s\n", line)
	}
	if !installed {
		fmt.Fprintln(w, "no schedule installed (\"reachprobe schedule install\" makes one)")
	}

	path := *db
	if path == "" {
		if path, err = configuredDBPath(env, *configPath); err != nil {
			return err
		}
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(w, "database %s: none yet\n", path)
		return nil
	}
	store, err := openStore(ctx, env, path)
	if err != nil {
		return err
	}
	defer store.Close()
	run, err := store.LatestRun(ctx)
	if errors.Is(err, measurements.ErrNoRun) {
		fmt.Fprintf(w, "database %s: no run yet\n", path)
		return nil
	}
	if err != nil {
		return storeError(store, err)
	}
	fmt.Fprintf(w, "last run in %s: run %d %s, started %s UTC", path, run.ID, run.Status, run.Started.Format(time.DateTime))
	if !run.Ended.IsZero() {
		fmt.Fprintf(w, ", ended %s UTC (%s ago)", run.Ended.Format(time.DateTime), time.Since(run.Ended).Round(time.Minute))
	}
	fmt.Fprintf(w, ", %d observations\n", run.Observations)
	return nil
}

// systemdProperties asks systemd for properties of a user unit.
func (s *scheduler) systemdProperties(ctx context.Context, unit string, names ...string) (map[string]string, error) {
	out, err := s.run(ctx, nil, "systemctl", "--user", "show", unit, "--property="+strings.Join(names, ","))
	if err != nil {
		return nil, err
	}
	props := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			props[k] = strings.TrimSpace(v)
		}
	}
	return props, nil
}

// exitStatusText explains a service's last exit status.
func exitStatusText(status, result string) string {
	code, err := strconv.Atoi(status)
	if err != nil {
		return "result " + orDash(result)
	}
	meaning, ok := exitMeanings[code]
	if !ok {
		meaning = "killed or crashed"
	}
	return fmt.Sprintf("exit code %d, %s (result %s)", code, meaning, orDash(result))
}

// printUnitLines prints the lines of a unit file starting with one of
// prefixes.
func printUnitLines(env *environ, path string, prefixes ...string) {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(env.stdout, "  %v\n", err)
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				fmt.Fprintf(env.stdout, "  %s\n", line)
			}
		}
	}
}

func orDash(s string) string {
	if s == "" || s == "n/a" {
		return "-"
	}
	return s
}
