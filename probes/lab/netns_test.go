//go:build lab

package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Timeouts of the lab's plumbing.
const (
	// commandTimeout bounds one ip or iptables command; they take
	// milliseconds, but the xtables lock may make iptables wait for
	// another lab running in parallel.
	commandTimeout = 30 * time.Second
	// helperReadyTimeout bounds a helper's start: the test binary's
	// start, a certificate and a few dozen listeners.
	helperReadyTimeout = 20 * time.Second
	// helperStopTimeout is how long a helper gets to close its servers
	// after its standard input closes before it is killed.
	helperStopTimeout = 5 * time.Second
)

// namePrefix starts every namespace the lab creates; the process ID that
// follows tells a leftover of a dead run from a lab running in parallel.
const namePrefix = "rp-"

// netnsConfDir is where "ip netns exec" finds the files it bind-mounts
// over /etc (resolv.conf, hosts) for a namespace.
const netnsConfDir = "/etc/netns"

// lab is one set of namespaces and the helpers running in them.
type lab struct {
	t    testing.TB
	plan *Plan
	// Namespace names.
	client, censor, internet string
	iptables                 string // the iptables command that works here
	// isp and transit are the routers of a lab built with ISP routers
	// (newISPLab), between the censor and the internet; "" otherwise.
	isp, transit string
	// env is added to the probe's environment (the ASN test hook), args
	// to its run flags.
	env, args []string

	mu      sync.Mutex
	helpers []*helper
}

// Done once per test process: picking the iptables command, and removing
// the leftovers of labs whose process died.
var (
	iptablesOnce sync.Once
	iptablesCmd  string
	iptablesErr  error
	leftovers    sync.Once
)

// newLab builds the three namespaces and their links, and registers their
// removal with t.Cleanup. It starts no server: see startInternet.
func newLab(t testing.TB, plan *Plan) *lab {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	leftovers.Do(func() { removeLeftovers(t) })

	suffix := make([]byte, 3)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%s%d-%s", namePrefix, os.Getpid(), hex.EncodeToString(suffix))
	l := &lab{t: t, plan: plan, client: id + "-client", censor: id + "-censor", internet: id + "-inet"}
	t.Cleanup(l.teardown)

	for _, ns := range []string{l.client, l.censor, l.internet} {
		l.must("ip", "netns", "add", ns)
		l.must("ip", "-n", ns, "link", "set", "lo", "up")
	}
	// The veth ends are created directly in their namespaces: no
	// interface ever appears in the host's namespace.
	l.must("ip", "-n", l.censor, "link", "add", censorLANIface, "type", "veth", "peer", "name", clientIface, "netns", l.client)
	l.must("ip", "-n", l.censor, "link", "add", censorWANIface, "type", "veth", "peer", "name", internetLinkName, "netns", l.internet)

	l.must("ip", "-n", l.client, "addr", "add", fmt.Sprintf("%s/%d", clientAddr, lanBits), "dev", clientIface)
	l.must("ip", "-n", l.client, "link", "set", clientIface, "up")
	l.must("ip", "-n", l.client, "route", "add", "default", "via", censorLANAddr)

	l.must("ip", "-n", l.censor, "addr", "add", fmt.Sprintf("%s/%d", censorLANAddr, lanBits), "dev", censorLANIface)
	l.must("ip", "-n", l.censor, "addr", "add", fmt.Sprintf("%s/%d", censorWANAddr, wanBits), "dev", censorWANIface)
	l.must("ip", "-n", l.censor, "link", "set", censorLANIface, "up")
	l.must("ip", "-n", l.censor, "link", "set", censorWANIface, "up")
	l.must("ip", "-n", l.censor, "route", "add", "default", "via", internetAddr)
	// Nothing answers at the injector's forged address: the censor
	// routes it to a blackhole, so a connect there times out and no
	// packet to it goes further.
	l.must("ip", "-n", l.censor, "route", "add", "blackhole", InjectedAddr+"/32")
	l.must("ip", "netns", "exec", l.censor, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")

	l.must("ip", "-n", l.internet, "addr", "add", fmt.Sprintf("%s/%d", internetAddr, wanBits), "dev", internetLinkName)
	l.must("ip", "-n", l.internet, "link", "set", internetLinkName, "up")
	l.must("ip", "-n", l.internet, "route", "add", lanPrefix, "via", censorWANAddr)
	for _, p := range internetPrefixes {
		l.must("ip", "-n", l.internet, "route", "add", "local", p, "dev", "lo")
	}

	l.pickIPTables()
	// TCP 443 of every address belongs to the TLS servers; the DoH
	// server listens on another port of its address.
	l.iptablesIn(l.internet, "-t", "nat", "-A", "PREROUTING", "-d", DoHAddr, "-p", "tcp", "--dport", "443",
		"-j", "DNAT", "--to-destination", fmt.Sprintf("%s:%d", DoHAddr, dohBackendPort))

	// The client's resolver: ip netns exec bind-mounts these over /etc.
	conf := filepath.Join(netnsConfDir, l.client)
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"resolv.conf": "nameserver " + ResolverAddr + "\n",
		"hosts":       "127.0.0.1 localhost\n::1 localhost\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// teardown stops the helpers and removes the namespaces and their files.
func (l *lab) teardown() {
	l.mu.Lock()
	helpers := l.helpers
	l.helpers = nil
	l.mu.Unlock()
	for _, h := range helpers {
		h.stop()
	}
	for _, ns := range []string{l.client, l.censor, l.internet, l.isp, l.transit} {
		if ns != "" {
			removeNamespace(ns)
		}
	}
}

// removeNamespace deletes ns and its /etc/netns directory, ignoring what
// is already gone.
func removeNamespace(ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	_ = exec.CommandContext(ctx, "ip", "netns", "del", ns).Run()
	_ = os.RemoveAll(filepath.Join(netnsConfDir, ns))
}

// removeLeftovers deletes the namespaces and /etc/netns directories of
// labs whose process is gone (a run killed before its cleanup).
func removeLeftovers(t testing.TB) {
	names := map[string]bool{}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				names[f[0]] = true
			}
		}
	}
	if entries, err := os.ReadDir(netnsConfDir); err == nil {
		for _, e := range entries {
			names[e.Name()] = true
		}
	}
	for name := range names {
		pid, ok := labOwner(name)
		if !ok || pid == os.Getpid() || processExists(pid) {
			continue
		}
		t.Logf("removing leftover lab namespace %s", name)
		removeNamespace(name)
	}
}

// labOwner returns the process ID in a lab namespace's name.
func labOwner(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return 0, false
	}
	pidText, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(pidText)
	return pid, err == nil && pid > 0
}

func processExists(pid int) bool {
	_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
	return err == nil
}

// run runs a command and returns its combined output.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// must runs a command of the lab's set-up and fails the test if it fails.
func (l *lab) must(name string, args ...string) string {
	l.t.Helper()
	out, err := run(name, args...)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

// pickIPTables finds the iptables command that works in a namespace here:
// "iptables" (nf_tables or legacy, whichever the system chose), else
// "iptables-legacy" on a kernel without nf_tables.
func (l *lab) pickIPTables() {
	iptablesOnce.Do(func() {
		var errs []error
		for _, cmd := range []string{"iptables", "iptables-legacy", "iptables-nft"} {
			if _, err := exec.LookPath(cmd); err != nil {
				continue
			}
			// A rule using the string match, the one most likely to
			// be missing, added and removed in the empty censor.
			rule := []string{"FORWARD", "-p", "tcp", "-m", "string", "--algo", "bm", "--string", "reachprobe-lab-check", "-j", "DROP"}
			_, err := run("ip", append([]string{"netns", "exec", l.censor, cmd, "-w", "-A"}, rule...)...)
			if err == nil {
				_, err = run("ip", append([]string{"netns", "exec", l.censor, cmd, "-w", "-D"}, rule...)...)
			}
			if err == nil {
				iptablesCmd = cmd
				version, _ := run(cmd, "--version")
				l.t.Logf("using %s (%s)", cmd, strings.TrimSpace(version))
				return
			}
			errs = append(errs, err)
		}
		iptablesErr = fmt.Errorf("no working iptables in a network namespace: %w", errors.Join(errs...))
	})
	if iptablesErr != nil {
		l.t.Fatal(iptablesErr)
	}
	l.iptables = iptablesCmd
}

// iptablesIn adds one rule in namespace ns (args as after "iptables").
func (l *lab) iptablesIn(ns string, args ...string) {
	l.t.Helper()
	l.must("ip", append([]string{"netns", "exec", ns, l.iptables, "-w"}, args...)...)
}

// rules returns iptables-save of the censor, for failure logs.
func (l *lab) rules() string {
	// iptables-save, iptables-legacy-save or iptables-nft-save.
	out, err := run("ip", "netns", "exec", l.censor, l.iptables+"-save")
	if err != nil {
		return err.Error()
	}
	return out
}

// helper is a role running in a namespace (see TestLabHelperProcess).
type helper struct {
	role   Role
	ns     string
	cmd    *exec.Cmd
	stdin  interface{ Close() error }
	stderr *lockedBuffer
	done   chan error
}

// lockedBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// start runs role in namespace ns with config and waits until it says it
// is ready. The helper is stopped at teardown.
func (l *lab) start(ns string, role Role, config any) *helper {
	l.t.Helper()
	cfg, err := json.Marshal(config)
	if err != nil {
		l.t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, self, "-test.run=^TestLabHelperProcess$")
	cmd.Env = append(os.Environ(), roleEnv+"="+string(role), configEnv+"="+string(cfg))
	h := &helper{role: role, ns: ns, cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = h.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	h.stdin = stdin
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("starting %s in %s: %v", role, ns, err)
	}
	l.mu.Lock()
	l.helpers = append(l.helpers, h)
	l.mu.Unlock()

	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		said := false
		for sc.Scan() {
			if !said && strings.TrimSpace(sc.Text()) == readyLine {
				said = true
				ready <- true
			}
		}
		if !said {
			ready <- false
		}
		h.done <- cmd.Wait()
	}()
	select {
	case ok := <-ready:
		if !ok {
			l.t.Fatalf("%s in %s exited before it was ready: %s", role, ns, h.stderr.String())
		}
	case <-time.After(helperReadyTimeout):
		l.t.Fatalf("%s in %s not ready after %s: %s", role, ns, helperReadyTimeout, h.stderr.String())
	}
	return h
}

// stop closes the helper's standard input, which ends it, and kills it if
// it does not end in time.
func (h *helper) stop() {
	_ = h.stdin.Close()
	select {
	case <-h.done:
	case <-time.After(helperStopTimeout):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
}
