package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"path/filepath"

	"github.com/reachprobe/reachprobe/measurements"
)

// TestTextOutputEscapesControlCharacters stores what a censor could
// send (a failure text and a certificate issuer holding ESC, a C1 CSI and
// a right-to-left override) and checks list, show and analyze print them
// escaped, never raw, while JSON keeps them exact.
func TestTextOutputEscapesControlCharacters(t *testing.T) {
	ctx := t.Context()
	db := filepath.Join(t.TempDir(), "reachprobe.db")
	store, err := measurements.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now().Add(-time.Hour)
	run := addReportRun(t, store, started, measurements.RunComplete)
	const hostile = "\x1b[2J\x1b]0;pwned\x07\u009b31m\u202eexe.txt"
	failure := "unknown_failure: " + hostile
	issuer := "Evil CA " + hostile
	for _, o := range []*measurements.Observation{
		{RunID: run, Step: measurements.StepTLS, Group: measurements.GroupPush, Target: "courier-1",
			Host: "1-courier.push.apple.com", Address: "17.57.146.20", Port: 5223, Transport: "tcp",
			Started: started, Duration: 30 * time.Millisecond, Failure: failure, Operation: "tls_handshake",
			TLS: &measurements.TLSDetails{Network: "tcp", ServerName: "courier.push.apple.com"}},
		{RunID: run, Step: measurements.StepTLS, Group: measurements.GroupPush, Target: "courier-1",
			Host: "1-courier.push.apple.com", Address: "17.57.146.21", Port: 5223, Transport: "tcp",
			Started: started, Duration: 30 * time.Millisecond,
			TLS: &measurements.TLSDetails{Network: "tcp", ServerName: "courier.push.apple.com", TLSVersion: "TLSv1.3",
				PeerCertificates: [][]byte{selfSignedDER(t, issuer)}, VerifyFailure: "x509: certificate signed by unknown authority " + hostile}},
	} {
		if err := store.AddObservation(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	store.Close()

	raw := []string{"\x1b", "\x07", "\u009b", "\u202e"}
	for _, args := range [][]string{
		{"list", "--db", db},
		{"show", "latest", "--db", db},
		{"analyze", "--db", db},
	} {
		var out, errb bytes.Buffer
		env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		if code := runMain(ctx, env, args); code != exitOK {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errb.String())
		}
		for _, r := range raw {
			if i := strings.Index(out.String(), r); i >= 0 {
				t.Errorf("%v prints %q raw: %q", args, r, out.String()[max(0, i-40):i+len(r)])
			}
		}
		if args[0] != "list" && !strings.Contains(out.String(), `\x1b[2J\x1b]0;pwned\x07\u009b31m\u202eexe.txt`) {
			t.Errorf("%v does not show the failure escaped:\n%s", args, out.String())
		}
		if args[0] == "analyze" && !strings.Contains(out.String(), `Evil CA \x1b[2J`) {
			t.Errorf("%v does not show the issuer escaped:\n%s", args, out.String())
		}
	}

	// JSON is exact: the strings decode to what was stored.
	var out, errb bytes.Buffer
	env := &environ{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if code := runMain(ctx, env, []string{"show", "latest", "--json", "--db", db}); code != exitOK {
		t.Fatalf("show --json: exit %d, stderr %q", code, errb.String())
	}
	var doc struct{ Observations []measurements.Observation }
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, o := range doc.Observations {
		found = found || o.Failure == failure
	}
	if !found {
		t.Errorf("show --json did not keep the failure exactly %q", failure)
	}
}
