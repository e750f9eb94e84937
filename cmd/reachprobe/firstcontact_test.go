package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reachprobe/reachprobe/measurements"
)

// TestFirstContact: the reading commands, before anything was measured,
// name the database they looked at and say to run "reachprobe run", and a
// missing database is not created.
func TestFirstContact(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nothing-here.db")
	empty := filepath.Join(dir, "empty.db")
	s, err := measurements.Open(context.Background(), empty)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	home := filepath.Join(dir, "home")
	defaultDB := filepath.Join(home, ".local", "share", "reachprobe", "reachprobe.db")

	tests := []struct {
		name   string
		args   []string
		code   int
		stream string // "stderr" or "stdout": where the message is
		want   []string
	}{
		{"analyze, no database", []string{"analyze", "--db", missing}, exitUsage, "stderr",
			[]string{"analyze: no database at " + missing, `"reachprobe run --db ` + missing + `"`}},
		{"report, no database", []string{"report", "--db", missing}, exitUsage, "stderr",
			[]string{"report: no database at " + missing, "reachprobe run"}},
		{"show, no database", []string{"show", "latest", "--db", missing}, exitUsage, "stderr",
			[]string{"show: no database at " + missing, "reachprobe run"}},
		{"list, no database", []string{"list", "--db", missing}, exitUsage, "stderr",
			[]string{"list: no database at " + missing, "reachprobe run"}},
		{"analyze, default database missing", []string{"analyze"}, exitUsage, "stderr",
			[]string{"analyze: no database at " + defaultDB, `"reachprobe run" measures`}},
		{"analyze, no runs", []string{"analyze", "--db", empty}, exitUsage, "stderr",
			[]string{"analyze: the database " + empty + " has no runs yet", "reachprobe run"}},
		{"analyze --since, no runs", []string{"analyze", "--since", "7d", "--db", empty}, exitUsage, "stderr",
			[]string{"the database " + empty + " has no runs yet"}},
		{"report, no runs", []string{"report", "--db", empty}, exitUsage, "stderr",
			[]string{"report: the database " + empty + " has no runs yet"}},
		{"show, no runs", []string{"show", "3", "--db", empty}, exitUsage, "stderr",
			[]string{"show: the database " + empty + " has no runs yet"}},
		{"list, no runs", []string{"list", "--db", empty}, exitOK, "stdout",
			[]string{"no runs in " + empty + " yet", "reachprobe run --db " + empty}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			env := &environ{stdout: &out, stderr: &errb, getenv: func(k string) string {
				if k == "HOME" {
					return home
				}
				return ""
			}}
			code := runMain(context.Background(), env, tt.args)
			got := errb.String()
			if tt.stream == "stdout" {
				got = out.String()
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("%s %q: want it to contain %q", tt.stream, got, w)
				}
			}
		})
	}
	for _, p := range []string{missing, defaultDB} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: a reading command created it (stat: %v)", p, err)
		}
	}
}

// TestNoCommand: "reachprobe" alone prints the short help on standard
// error and exits 2.
func TestNoCommand(t *testing.T) {
	var out, errb bytes.Buffer
	env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code := runMain(context.Background(), env, nil)
	if code != exitUsage || out.Len() != 0 {
		t.Errorf("exit %d, stdout %q; want exit %d and nothing on stdout", code, out.String(), exitUsage)
	}
	for _, w := range []string{"Usage: reachprobe COMMAND", "run ", "analyze ", "completion "} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("help %q lacks %q", errb.String(), w)
		}
	}
}

// TestErrorsNameTheFlag: every bad value is refused with the flag (or
// argument) that carried it.
func TestErrorsNameTheFlag(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "r.db")
	s, err := measurements.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"run", "--parallel", "0", "--db", db}, []string{"--parallel 0"}},
		{[]string{"run", "--repeat", "0", "--db", db}, []string{"--repeat 0"}},
		{[]string{"run", "--timeout", "-1s", "--db", db}, []string{"--timeout -1s"}},
		{[]string{"run", "--wait", "-1s", "--db", db}, []string{"--wait -1s"}},
		{[]string{"run", "--repeat-spacing", "-1s", "--db", db}, []string{"--repeat-spacing -1s"}},
		{[]string{"run", "--log-format", "xml"}, []string{"run:", "log-format", `"xml"`}},
		{[]string{"run", "--control-doh", "http://1.1.1.1/dns-query", "--db", db}, []string{`--control-doh "http://1.1.1.1/dns-query"`, "https"}},
		{[]string{"run", "--stun-server", "stun.example", "--db", db}, []string{`--stun-server "stun.example"`, "HOST:PORT"}},
		{[]string{"analyze", "--format", "xml", "--db", db}, []string{"analyze:", "format", `"xml"`, "text or json"}},
		{[]string{"report", "--format", "pdf", "--db", db}, []string{"report:", "format", `"pdf"`, "html, csv, json or ooni"}},
		{[]string{"schedule", "install", "--method", "launchd"}, []string{"schedule install:", "method", `"launchd"`, "auto, systemd or cron"}},
		{[]string{"analyze", "--since", "soon", "--db", db}, []string{"analyze:", "since", `"soon"`}},
		{[]string{"show", "x", "--db", db}, []string{"show:", `RUN "x"`}},
		{[]string{"list", "--colour"}, []string{"list:", "colour"}},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, schedule: &scheduler{}}
		code := runMain(context.Background(), env, tt.args)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", tt.args, code, exitUsage, errb.String())
		}
		for _, w := range tt.want {
			if !strings.Contains(errb.String(), w) {
				t.Errorf("%q: stderr %q lacks %q", tt.args, errb.String(), w)
			}
		}
	}
}
