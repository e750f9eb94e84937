package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/measurements"
)

// fileSizeLimitEnv turns this test binary into a wrapper that runs its
// first argument under a file size limit of that many bytes, with SIGXFSZ
// ignored so that a write past the limit fails with EFBIG instead of
// killing the process. Go cannot set a child's rlimits, and a shell's
// "ulimit -f" counts in blocks whose size depends on the shell.
const fileSizeLimitEnv = "REACHPROBE_TEST_FILE_SIZE_LIMIT"

func init() {
	limit := os.Getenv(fileSizeLimitEnv)
	if limit == "" {
		return
	}
	n, err := strconv.ParseUint(limit, 10, 64)
	if err != nil || len(os.Args) < 2 {
		fmt.Fprintf(os.Stderr, "%s=%q: want a byte count and a command\n", fileSizeLimitEnv, limit)
		os.Exit(100)
	}
	signal.Ignore(syscall.SIGXFSZ)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
		fmt.Fprintf(os.Stderr, "setrlimit: %v\n", err)
		os.Exit(100)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, fileSizeLimitEnv+"=") {
			env = append(env, kv)
		}
	}
	err = syscall.Exec(os.Args[1], os.Args[1:], env)
	fmt.Fprintf(os.Stderr, "exec %s: %v\n", os.Args[1], err)
	os.Exit(100)
}

// fastCatalog writes the lab's catalog without its slow targets (the
// blackhole's connect takes 5 s, the silent STUN server's retries 4 s), for
// runs that should end within a second or two.
func (l *loopbackLab) fastCatalog(t *testing.T) string {
	t.Helper()
	text, err := os.ReadFile(l.catalog)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(string(text), "\n[target ")
	out := parts[0]
	for _, p := range parts[1:] {
		if name, _, _ := strings.Cut(p, "]"); name == "blackhole" || name == "silent" {
			continue
		}
		out += "\n[target " + p
	}
	path := filepath.Join(l.dir, "fast.catalog")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// testEnviron is the environment of a binary under test: ours, with the
// XDG directories moved to dir so that no config file or database of the
// machine's user is read.
func testEnviron(dir string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") && !strings.HasPrefix(kv, "XDG_DATA_HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
	return append(env, extra...)
}

// binaryResult is what a run of the binary printed and its exit code.
type binaryResult struct {
	stdout, stderr string
	code           int
}

// runBinary runs argv (the reachprobe binary unless argv[0] is a path)
// with standard streams that are not terminals, as under cron.
func runBinary(t *testing.T, env []string, argv ...string) binaryResult {
	t.Helper()
	if !filepath.IsAbs(argv[0]) {
		argv = append([]string{binary}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := binaryResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%v: %v", argv, err)
	}
	return res
}

// storedRun is a run and its observations, to compare before and after.
type storedRun struct {
	Run          measurements.Run
	Observations []measurements.Observation
}

// readRuns reads every run of the database and its observations.
func readRuns(t *testing.T, db string) []storedRun {
	t.Helper()
	store, err := measurements.Open(context.Background(), db)
	if err != nil {
		t.Fatalf("opening %s: %v", db, err)
	}
	defer store.Close()
	runs, err := store.RunsSince(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var out []storedRun
	for _, r := range runs {
		obs, err := store.Observations(context.Background(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, storedRun{r, obs})
	}
	return out
}

// checkIntegrity runs PRAGMA integrity_check, which also checks every
// index against its table, on a read-only connection.
func checkIntegrity(t *testing.T, db string) {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var report string
	if err := conn.QueryRow("PRAGMA integrity_check").Scan(&report); err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	if report != "ok" {
		t.Errorf("integrity_check of %s: %s", db, report)
	}
}

// sameRun fails unless got is want, observations included.
func sameRun(t *testing.T, what string, got, want storedRun) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("%s changed:\n got %s\nwant %s", what, g, w)
	}
}

// startRunUntilStored starts a run of the full lab catalog, whose blackhole
// target keeps it going for 5 s, and returns once it has stored an
// observation (its -v progress line says so).
func startRunUntilStored(t *testing.T, l *loopbackLab, db string, env []string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, l.runArgs(db, "-v")...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "measuring:") {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd
		}
	}
	cmd.Wait()
	t.Fatalf("the run ended before storing anything")
	return nil
}

func TestKilledRun(t *testing.T) {
	l := startLoopbackLab(t)
	env := testEnviron(l.dir)
	db := filepath.Join(l.dir, "killed.db")
	fast := l.fastCatalog(t)
	if r := runBinary(t, env, l.runArgs(db, "--targets", fast)...); r.code != exitOK {
		t.Fatalf("first run: exit %d, stderr %q", r.code, r.stderr)
	}
	earlier := readRuns(t, db)

	cmd := startRunUntilStored(t, l, db, env)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("run ended with %v, want killed by SIGKILL", err)
	}

	checkIntegrity(t, db)
	afterKill := readRuns(t, db)
	if len(afterKill) != 2 {
		t.Fatalf("%d runs after the kill, want 2", len(afterKill))
	}
	sameRun(t, "the earlier run", afterKill[0], earlier[0])
	killed := afterKill[1]
	if killed.Run.Status != measurements.RunRunning || len(killed.Observations) == 0 {
		t.Errorf("killed run = %+v with %d observations; want still running, with what it stored", killed.Run, len(killed.Observations))
	}

	// The next start finds it unfinished.
	if r := runBinary(t, env, l.runArgs(db, "--targets", fast)...); r.code != exitOK || r.stdout != "" || r.stderr != "" {
		t.Fatalf("next run: exit %d, stdout %q, stderr %q; want 0 and silence", r.code, r.stdout, r.stderr)
	}
	checkIntegrity(t, db)
	final := readRuns(t, db)
	if len(final) != 3 {
		t.Fatalf("%d runs, want 3", len(final))
	}
	sameRun(t, "the earlier run", final[0], earlier[0])
	marked := final[1]
	if marked.Run.Status != measurements.RunInterrupted || marked.Run.Ended.IsZero() {
		t.Errorf("killed run after the next start = %+v, want interrupted with an end time", marked.Run)
	}
	if !reflect.DeepEqual(marked.Observations, killed.Observations) {
		t.Errorf("the killed run's observations changed: %d, then %d", len(killed.Observations), len(marked.Observations))
	}
	if final[2].Run.Status != measurements.RunComplete {
		t.Errorf("next run = %+v, want complete", final[2].Run)
	}
}

// mountNamespaceCheck skips the test unless it can mount in a private
// mount namespace (root and util-linux's unshare).
func mountNamespaceCheck(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a file system in a private mount namespace")
	}
	if out, err := exec.Command("unshare", "-m", "--propagation", "private", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot make a private mount namespace: %v %s", err, out)
	}
}

func TestRunOnFullDisk(t *testing.T) {
	mountNamespaceCheck(t)
	l := startLoopbackLab(t)
	env := testEnviron(l.dir)
	fast := l.fastCatalog(t)
	src := filepath.Join(l.dir, "src", "reachprobe.db")
	if r := runBinary(t, env, l.runArgs(src, "--targets", fast)...); r.code != exitOK {
		t.Fatalf("first run: exit %d, stderr %q", r.code, r.stderr)
	}
	earlier := readRuns(t, src)
	mnt, out := filepath.Join(l.dir, "mnt"), filepath.Join(l.dir, "out")
	for _, d := range []string{mnt, out} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// A 2 MB tmpfs holding a copy of the database, filled but for 96 kB:
	// room for the -shm index (32 kB), the lock file and the start of the
	// run, not for the run. The database is copied out afterwards: the
	// tmpfs ends with the namespace.
	const script = `set -e
mount -t tmpfs -o size=2m tmpfs "$MNT"
cp "$SRC" "$MNT/reachprobe.db"
avail=$(df -B1 --output=avail "$MNT" | tail -n 1)
dd if=/dev/zero of="$MNT/filler" bs=4096 count=$(( (avail - 96 * 1024) / 4096 )) 2>/dev/null
set +e
"$@" --db "$MNT/reachprobe.db"
echo $? > "$OUT/exit-code"
cp "$MNT"/reachprobe.db* "$OUT/"
`
	argv := append([]string{"/usr/bin/env", "unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", binary},
		withoutDB(l.runArgs("", "--targets", fast))...)
	r := runBinary(t, append(env, "MNT="+mnt, "SRC="+src, "OUT="+out), argv...)
	code, err := os.ReadFile(filepath.Join(out, "exit-code"))
	if err != nil {
		t.Fatalf("the script did not finish: %v\nstderr: %s", err, r.stderr)
	}
	t.Logf("run on a full disk: exit %s, stderr: %s", strings.TrimSpace(string(code)), r.stderr)
	if strings.TrimSpace(string(code)) != strconv.Itoa(exitDatabase) {
		t.Errorf("exit code %s, want %d", strings.TrimSpace(string(code)), exitDatabase)
	}
	for _, want := range []string{"database or disk is full", "no space left for the database", "what was stored before is kept"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q does not say %q", r.stderr, want)
		}
	}
	checkStoredAfterFailure(t, l, env, filepath.Join(out, "reachprobe.db"), earlier, fast)
}

// withoutDB drops "--db X" from run's arguments.
func withoutDB(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--db" {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// checkStoredAfterFailure checks a database a run failed to write to: it
// opens and is consistent, the earlier run is intact, and the next run
// (with room to write) works and leaves no run marked running.
func checkStoredAfterFailure(t *testing.T, l *loopbackLab, env []string, db string, earlier []storedRun, catalog string) {
	t.Helper()
	checkIntegrity(t, db)
	after := readRuns(t, db)
	if len(after) == 0 {
		t.Fatal("no run left in the database")
	}
	sameRun(t, "the earlier run", after[0], earlier[0])
	for _, r := range after[1:] {
		t.Logf("the failed run: %s with %d observations stored before the disk filled", r.Run.Status, len(r.Observations))
	}
	if r := runBinary(t, env, l.runArgs(db, "--targets", catalog)...); r.code != exitOK {
		t.Fatalf("run with room again: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, r := range readRuns(t, db) {
		if r.Run.Status == measurements.RunRunning {
			t.Errorf("run %d still running after the next run", r.Run.ID)
		}
	}
}

func TestRunOverFileSizeLimit(t *testing.T) {
	l := startLoopbackLab(t)
	env := testEnviron(l.dir)
	fast := l.fastCatalog(t)
	db := filepath.Join(l.dir, "limited", "reachprobe.db")
	if r := runBinary(t, env, l.runArgs(db, "--targets", fast)...); r.code != exitOK {
		t.Fatalf("first run: exit %d, stderr %q", r.code, r.stderr)
	}
	earlier := readRuns(t, db)
	// 64 kB: more than the -shm index (32 kB) and the database so far, so
	// that opening works, and a few observations' worth of WAL.
	limited := append(env, fileSizeLimitEnv+"=65536")
	r := runBinary(t, limited, append([]string{os.Args[0], binary}, l.runArgs(db, "--targets", fast)...)...)
	t.Logf("run over a file size limit: exit %d, stderr: %s", r.code, r.stderr)
	if r.code != exitDatabase || !strings.Contains(r.stderr, "what was stored before is kept") {
		t.Errorf("exit %d, stderr %q; want %d and an explanation", r.code, r.stderr, exitDatabase)
	}
	checkStoredAfterFailure(t, l, env, db, earlier, fast)
}

func TestRunOnReadOnlyDatabase(t *testing.T) {
	mountNamespaceCheck(t)
	l := startLoopbackLab(t)
	env := testEnviron(l.dir)
	fast := l.fastCatalog(t)
	dir := filepath.Join(l.dir, "ro")
	db := filepath.Join(dir, "reachprobe.db")
	if r := runBinary(t, env, l.runArgs(db, "--targets", fast)...); r.code != exitOK {
		t.Fatalf("first run: exit %d, stderr %q", r.code, r.stderr)
	}
	earlier := readRuns(t, db)
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	// chmod does not stop root; a read-only bind mount does.
	const script = `set -e
mount --bind "$DIR" "$DIR"
mount -o remount,bind,ro "$DIR"
set +e
"$@"
`
	argv := append([]string{"/usr/bin/env", "unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", binary}, l.runArgs(db, "--targets", fast)...)
	r := runBinary(t, append(env, "DIR="+dir), argv...)
	t.Logf("run on a read-only database: exit %d, stderr: %s", r.code, r.stderr)
	if r.code != exitDatabase || !strings.Contains(r.stderr, "read-only file system") || !strings.Contains(r.stderr, db) {
		t.Errorf("exit %d, stderr %q; want %d and a message naming %s and saying read-only", r.code, r.stderr, exitDatabase, db)
	}
	if after, _ := os.ReadFile(db); !bytes.Equal(after, before) {
		t.Error("the database file changed")
	}
	checkStoredAfterFailure(t, l, env, db, earlier, fast)
}
