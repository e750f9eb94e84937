package main

// The text a schedule installs: systemd user units and a crontab line.
// Both are pure functions of the plan, so tests read exactly what would be
// written.

import (
	"fmt"
	"strings"
	"time"
)

// Unit file names, and the marker that finds reachprobe's crontab lines.
const (
	serviceUnit = "reachprobe.service"
	timerUnit   = "reachprobe.timer"
	cronMarker  = "# reachprobe-schedule"
)

// maxRandomDelay caps the randomized delay: half the period spreads the
// volunteers of one network over time, but a daily run need not wander by
// more than an hour to stop them all measuring at the same second.
const maxRandomDelay = time.Hour

// randomDelay is the spread of a scheduled run's start.
func randomDelay(every time.Duration) time.Duration { return min(every/2, maxRandomDelay) }

// scheduleCommand is what a schedule runs.
type scheduleCommand struct {
	argv []string // absolute binary first
	env  []string // KEY=VALUE the run needs, pinned at install time
}

// onCalendar is the systemd calendar expression for a period that divides
// an hour or a day, so that runs stay on the clock across reboots; ""
// when there is none.
func onCalendar(every time.Duration) string {
	switch {
	case every < time.Hour && every%time.Minute == 0 && time.Hour%every == 0:
		return fmt.Sprintf("*-*-* *:00/%d:00", every/time.Minute)
	case every == time.Hour:
		return "*-*-* *:00:00"
	case every == 24*time.Hour:
		return "*-*-* 00:00:00"
	case every < 24*time.Hour && every%time.Hour == 0 && (24*time.Hour)%every == 0:
		return fmt.Sprintf("*-*-* 00/%d:00:00", every/time.Hour)
	}
	return ""
}

// systemdUnits returns the service and the timer.
func systemdUnits(cmd scheduleCommand, every time.Duration) (service, timer string) {
	var s strings.Builder
	s.WriteString("# Written by \"reachprobe schedule install\"; remove with \"reachprobe schedule remove\".\n")
	s.WriteString("[Unit]\nDescription=reachprobe: measure whether Apple push, iMessage and FaceTime are reachable from this network\n\n")
	s.WriteString("[Service]\nType=oneshot\n")
	for _, kv := range cmd.env {
		s.WriteString("Environment=" + systemdQuote(kv, false) + "\n")
	}
	s.WriteString("ExecStart=" + systemdExecLine(cmd.argv) + "\n")
	s.WriteString("# A measurement is background work: it yields the CPU and the disk.\nNice=10\nIOSchedulingClass=idle\n")

	var t strings.Builder
	t.WriteString("# Written by \"reachprobe schedule install\"; remove with \"reachprobe schedule remove\".\n")
	fmt.Fprintf(&t, "[Unit]\nDescription=Run reachprobe every %s\n\n[Timer]\n", shortDuration(every))
	if cal := onCalendar(every); cal != "" {
		fmt.Fprintf(&t, "OnCalendar=%s\n", cal)
		t.WriteString("# A run missed while the machine was off runs when it is back.\nPersistent=true\n")
	} else {
		fmt.Fprintf(&t, "OnBootSec=5min\nOnUnitActiveSec=%ds\n", int64(every/time.Second))
	}
	fmt.Fprintf(&t, "# Volunteers on one network should not all measure at the same second.\nRandomizedDelaySec=%ds\n", int64(randomDelay(every)/time.Second))
	t.WriteString("# The delay stays the same on this machine (systemd 247 and later), keeping runs evenly spaced.\nFixedRandomDelay=true\n")
	t.WriteString("AccuracySec=1min\n\n[Install]\nWantedBy=timers.target\n")
	return s.String(), t.String()
}

// systemdExecLine is the value of ExecStart= running argv. systemd
// expands $VAR in the arguments but not in the program's path, so a "$"
// is doubled in the arguments only. When the path holds a "$", the "@"
// prefix gives argv[0] separately, so that the program is found at its
// path and still sees its own path as argv[0].
func systemdExecLine(argv []string) string {
	words := make([]string, 0, len(argv)+1)
	if strings.Contains(argv[0], "$") {
		words = append(words, "@"+systemdQuote(argv[0], false))
	}
	for _, a := range argv {
		words = append(words, systemdQuote(a, true))
	}
	return strings.Join(words, " ")
}

// systemdQuote quotes one word of ExecStart= or Environment= so systemd
// reads it back unchanged: double quotes around anything but plain
// characters, backslash escapes inside them, and "%" doubled (systemd
// expands specifiers in both). "$" is doubled only where systemd expands
// variables (expandsVars: the arguments of ExecStart=, not Environment=).
// The words must hold no control characters (checkSchedulePath).
func systemdQuote(s string, expandsVars bool) string {
	escaped := strings.ReplaceAll(s, "%", "%%")
	if expandsVars {
		escaped = strings.ReplaceAll(escaped, "$", "$$")
	}
	if s != "" && !strings.ContainsAny(s, " \"'\\;") {
		return escaped
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(escaped) + `"`
}

// cronSchedule is the five time fields of a crontab line running every
// period, offset by random so that many machines spread out; an error when
// cron cannot express the period.
func cronSchedule(every time.Duration, random func(n int) int) (string, error) {
	switch {
	case every < time.Hour && every%time.Minute == 0 && time.Hour%every == 0:
		m := int(every / time.Minute)
		return fmt.Sprintf("%d-59/%d * * * *", random(m), m), nil
	case every == time.Hour:
		return fmt.Sprintf("%d * * * *", random(60)), nil
	case every == 24*time.Hour:
		return fmt.Sprintf("%d %d * * *", random(60), random(24)), nil
	case every < 24*time.Hour && every%time.Hour == 0 && (24*time.Hour)%every == 0:
		h := int(every / time.Hour)
		return fmt.Sprintf("%d %d-23/%d * * *", random(60), random(h), h), nil
	}
	return "", fmt.Errorf("cron cannot run every %s: give a period that divides an hour (10m, 15m, 20m, 30m) or a day (1h, 2h, 3h, 4h, 6h, 8h, 12h, 24h), or use systemd", every)
}

// cronLine is the crontab line: time fields, the pinned environment and
// the command, shell-quoted (cron hands it to /bin/sh), with % escaped
// (crontab(5): cron reads a bare % as a newline), and the marker.
func cronLine(fields string, cmd scheduleCommand) string {
	var words []string
	for _, kv := range cmd.env {
		k, v, _ := strings.Cut(kv, "=")
		words = append(words, k+"="+cronQuote(v))
	}
	for _, a := range cmd.argv {
		words = append(words, cronQuote(a))
	}
	return fields + " " + strings.Join(words, " ") + " " + cronMarker
}

// cronQuote is shellQuote with each "%" escaped for cron, which turns
// "\%" into "%" and leaves any other backslash as it is. Inside single
// quotes, a "%" that follows a backslash of the word becomes '\%' (close
// the quotes, the escaped "%", reopen): written "\\%", cron would take
// the pair "\\" as one escape and the "%" as a newline.
func cronQuote(s string) string {
	q := shellQuote(s)
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		switch {
		case q[i] != '%':
			b.WriteByte(q[i])
		case i > 0 && q[i-1] == '\\':
			b.WriteString(`'\%'`) // only in quotes: a plain word has no backslash
		default:
			b.WriteString(`\%`)
		}
	}
	return b.String()
}

// shellQuote quotes s for sh: as it is when it is plain, else in single
// quotes.
func shellQuote(s string) string {
	plain := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r)) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// withoutCronLines returns crontab without reachprobe's lines (those
// carrying the marker), and whether it had any.
func withoutCronLines(crontab string) (string, bool) {
	var kept []string
	found := false
	for _, line := range strings.SplitAfter(crontab, "\n") {
		if strings.Contains(line, cronMarker) {
			found = true
			continue
		}
		if line != "" {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, ""), found
}

// withCronLine returns crontab with reachprobe's old lines replaced by
// line, after a comment saying what it is.
func withCronLine(crontab, line string) string {
	rest, _ := withoutCronLines(crontab)
	if rest != "" && !strings.HasSuffix(rest, "\n") {
		rest += "\n"
	}
	return rest + cronMarker + ": written by \"reachprobe schedule install\"; remove with \"reachprobe schedule remove\"\n" + line + "\n"
}

// cronLines returns reachprobe's entries in crontab (marked, not comments).
func cronLines(crontab string) []string {
	var out []string
	for _, line := range strings.Split(crontab, "\n") {
		if strings.Contains(line, cronMarker) && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			out = append(out, line)
		}
	}
	return out
}
