//go:build lab

package pathprobe

// The path lab: a chain of network namespaces, client — router1 — … —
// routerN — server, none linked to the host's namespace, with iptables
// rules in the routers. The test process builds it and runs the probe in
// the client namespace by running its own binary there (TestLabHelper),
// so no socket of the probe ever lives in the host's namespace. Run it as
// root:
//
//	flock /tmp/reachprobe-lab.lock go test -tags lab -run TestLab -v ./probes/pathprobe/

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/probes/arrival"
)

// Timeouts of the lab's plumbing.
const (
	// labCommandTimeout bounds one ip or iptables command (milliseconds,
	// unless the xtables lock makes iptables wait for another lab).
	labCommandTimeout = 30 * time.Second
	// labClientTimeout bounds the probe's run in the client namespace:
	// a few traces of a few seconds each.
	labClientTimeout = 2 * time.Minute
	// labServerReady bounds the server helper's start.
	labServerReady = 20 * time.Second
)

// labPrefix starts every namespace this lab creates, apart from the
// project's lab ("rp-").
const labPrefix = "rpp-"

// Environment of a helper process run in a namespace.
const (
	labRoleEnv    = "REACHPROBE_PATHLAB_ROLE"    // "client" or "server"
	labRequestEnv = "REACHPROBE_PATHLAB_REQUEST" // the client's labRequest, JSON
)

// labPorts are the TCP ports the server helper listens on.
var labPorts = []int{443, 8443}

// pathLab is one chain of namespaces.
type pathLab struct {
	t       *testing.T
	ns      []string // client, routers..., server
	ipt     string
	server  *exec.Cmd
	mu      sync.Mutex
	stopped bool
}

// Addresses: link i joins ns[i] (10.61.i+1.1) and ns[i+1] (10.61.i+1.2).
// A router's time-exceeded leaves from its address toward the client, so
// router k (ns[k]) answers from 10.61.k.2.
func linkAddr(link, side int) string { return fmt.Sprintf("10.61.%d.%d", link+1, side) }

// link6Addr is linkAddr's IPv6 twin: fd61:0:0:link+1::side.
func link6Addr(link, side int) string { return fmt.Sprintf("fd61:0:0:%d::%d", link+1, side) }

func (l *pathLab) routerAddr6(k int) netip.Addr { return netip.MustParseAddr(link6Addr(k-1, 2)) }
func (l *pathLab) target6() netip.Addr          { return netip.MustParseAddr(link6Addr(len(l.ns)-2, 2)) }
func (l *pathLab) controlAddr6() netip.Addr     { return netip.MustParseAddr(link6Addr(len(l.ns)-2, 3)) }

func (l *pathLab) routerAddr(k int) netip.Addr { return netip.MustParseAddr(linkAddr(k-1, 2)) }
func (l *pathLab) target() netip.Addr          { return netip.MustParseAddr(linkAddr(len(l.ns)-2, 2)) }
func (l *pathLab) controlAddr() netip.Addr     { return netip.MustParseAddr(linkAddr(len(l.ns)-2, 3)) }
func (l *pathLab) router(k int) string         { return l.ns[k] }

// leftovers removes, once per process, the namespaces of path labs
// whose test process died before its cleanup, ending the helpers still
// running in them by their process IDs.
var leftovers sync.Once

func removeLeftovers(t *testing.T) {
	out, err := labRun("ip", "netns", "list")
	if err != nil {
		return
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], labPrefix) {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(strings.TrimPrefix(f[0], labPrefix), "%d-", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // a lab running in parallel
		}
		t.Logf("removing leftover namespace %s", f[0])
		if pids, err := labRun("ip", "netns", "pids", f[0]); err == nil {
			for _, p := range strings.Fields(pids) {
				var helper int
				if _, err := fmt.Sscanf(p, "%d", &helper); err == nil && helper > 1 {
					_ = syscall.Kill(helper, syscall.SIGKILL)
				}
			}
		}
		_, _ = labRun("ip", "netns", "del", f[0])
	}
}

func labSkip(t *testing.T) {
	t.Helper()
	if os.Getenv(labRoleEnv) != "" {
		t.Skip("a lab helper runs no lab")
	}
	if os.Geteuid() != 0 {
		t.Skip("the path lab needs root (network namespaces, iptables)")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the path lab needs %s: %v", tool, err)
		}
	}
}

// newPathLab builds client, routers routers and a server, with ICMP rate
// limits off in every namespace unless defaultLimits.
func newPathLab(t *testing.T, routers int, defaultLimits bool) *pathLab {
	t.Helper()
	labSkip(t)
	suffix := make([]byte, 3)
	rand.Read(suffix)
	id := fmt.Sprintf("%s%d-%s", labPrefix, os.Getpid(), hex.EncodeToString(suffix))
	leftovers.Do(func() { removeLeftovers(t) })
	l := &pathLab{t: t}
	l.ns = append(l.ns, id+"-c")
	for k := 1; k <= routers; k++ {
		l.ns = append(l.ns, fmt.Sprintf("%s-r%d", id, k))
	}
	l.ns = append(l.ns, id+"-s")
	t.Cleanup(l.teardown)
	for _, ns := range l.ns {
		l.must("ip", "netns", "add", ns)
		l.must("ip", "-n", ns, "link", "set", "lo", "up")
		// No duplicate address detection: a link-local address
		// that is still tentative delays neighbour discovery by a
		// second, and the first probes' replies with it.
		l.must("ip", "netns", "exec", ns, "sh", "-c",
			"echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad; echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad")
	}
	last := len(l.ns) - 1
	for i := 0; i < last; i++ {
		east, west := fmt.Sprintf("e%d", i), fmt.Sprintf("w%d", i+1)
		l.must("ip", "-n", l.ns[i], "link", "add", east, "type", "veth", "peer", "name", west, "netns", l.ns[i+1])
		l.must("ip", "-n", l.ns[i], "addr", "add", linkAddr(i, 1)+"/24", "dev", east)
		l.must("ip", "-n", l.ns[i+1], "addr", "add", linkAddr(i, 2)+"/24", "dev", west)
		l.must("ip", "-n", l.ns[i], "addr", "add", link6Addr(i, 1)+"/64", "dev", east, "nodad")
		l.must("ip", "-n", l.ns[i+1], "addr", "add", link6Addr(i, 2)+"/64", "dev", west, "nodad")
		l.must("ip", "-n", l.ns[i], "link", "set", east, "up")
		l.must("ip", "-n", l.ns[i+1], "link", "set", west, "up")
	}
	l.must("ip", "-n", l.ns[last], "addr", "add", l.controlAddr().String()+"/24", "dev", fmt.Sprintf("w%d", last))
	l.must("ip", "-n", l.ns[last], "addr", "add", l.controlAddr6().String()+"/64", "dev", fmt.Sprintf("w%d", last), "nodad")
	for i, ns := range l.ns {
		if i < last {
			l.must("ip", "-n", ns, "route", "add", "default", "via", linkAddr(i, 2))
			l.must("ip", "-n", ns, "-6", "route", "add", "default", "via", link6Addr(i, 2))
		}
		for j := 0; j+1 < i; j++ { // the links west of ns, via its west neighbour
			l.must("ip", "-n", ns, "route", "add", fmt.Sprintf("10.61.%d.0/24", j+1), "via", linkAddr(i-1, 1))
			l.must("ip", "-n", ns, "-6", "route", "add", fmt.Sprintf("fd61:0:0:%d::/64", j+1), "via", link6Addr(i-1, 1))
		}
		sysctls := "echo 1 > /proc/sys/net/ipv4/ip_forward; echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"
		if !defaultLimits {
			sysctls += "; echo 0 > /proc/sys/net/ipv4/icmp_ratelimit; echo 0 > /proc/sys/net/ipv6/icmp/ratelimit"
		}
		if i > 0 {
			l.must("ip", "netns", "exec", ns, "sh", "-c", sysctls)
		}
	}
	l.ipt = "iptables"
	if _, err := labRun("ip", "netns", "exec", l.ns[1], "iptables", "-w", "-L", "-n"); err != nil {
		l.ipt = "iptables-legacy"
	}
	return l
}

// ip6tables adds an IPv6 rule in namespace ns.
func (l *pathLab) ip6tables(ns string, args ...string) {
	l.t.Helper()
	l.must("ip", append([]string{"netns", "exec", ns, strings.Replace(l.ipt, "iptables", "ip6tables", 1), "-w"}, args...)...)
}

// iptables adds a rule in namespace ns.
func (l *pathLab) iptables(ns string, args ...string) {
	l.t.Helper()
	l.must("ip", append([]string{"netns", "exec", ns, l.ipt, "-w"}, args...)...)
}

func (l *pathLab) teardown() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	if l.server != nil && l.server.Process != nil {
		_ = l.server.Process.Signal(syscall.SIGTERM)
		_ = l.server.Wait()
	}
	for _, ns := range l.ns {
		_, _ = labRun("ip", "netns", "del", ns)
	}
}

func labRun(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), labCommandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func (l *pathLab) must(name string, args ...string) {
	l.t.Helper()
	if _, err := labRun(name, args...); err != nil {
		l.t.Fatal(err)
	}
}

// startServer runs the server helper: TCP listeners on labPorts that
// accept and hold connections, silent.
func (l *pathLab) startServer() {
	l.t.Helper()
	self, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", l.ns[len(l.ns)-1], self, "-test.run=^TestLabHelper$")
	cmd.Env = append(os.Environ(), labRoleEnv+"=server")
	out, err := cmd.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.server = cmd
	ready := make(chan bool, 1)
	go func() {
		buf := make([]byte, 6)
		_, err := io.ReadFull(out, buf)
		ready <- err == nil && string(buf) == "ready\n"
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case ok := <-ready:
		if !ok {
			l.t.Fatal("the server helper did not start")
		}
	case <-time.After(labServerReady):
		l.t.Fatal("the server helper is not ready")
	}
}

// labFlow is a Flow in JSON.
type labFlow struct {
	Network string
	Dst     string
	Payload []byte
}

func (f labFlow) flow() Flow {
	return Flow{Network: f.Network, Dst: netip.MustParseAddrPort(f.Dst), Payload: f.Payload}
}

// labRequest is what the client helper runs: traces (at once, on one
// budget) or a reset trace.
type labRequest struct {
	Traces []labTrace
	// Arrival lists addresses (ip:port) to send arrival.Probe's kinds to.
	Arrival []string
	// IntervalMS replaces the budget's probe spacing when set.
	IntervalMS int
	Reset      *struct {
		Dst                 string
		ServerName, Control string
		MaxTTL              int
	}
}

// labTrace is one trace of a labRequest.
type labTrace struct {
	Test, Control labFlow
	// UseDestOf, when set, is the number (from 1) of an earlier trace
	// whose destination hop this trace takes, as the runner would pass
	// a same-address trace's to a trace toward a control address.
	UseDestOf int
}

// labResult is the client helper's answer.
type labResult struct {
	Traces  []*Trace
	Arrival []*arrival.Result
	Reset   *ResetTrace
	Sent    int
}

// runClient runs req in the client namespace and returns its result.
func (l *pathLab) runClient(req labRequest) labResult {
	l.t.Helper()
	self, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	b, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), labClientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.ns[0], self, "-test.run=^TestLabHelper$")
	cmd.Env = append(os.Environ(), labRoleEnv+"=client", labRequestEnv+"="+string(b))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		l.t.Fatalf("client helper: %v: %s", err, stderr.String())
	}
	start := bytes.Index(out, []byte("{"))
	end := bytes.LastIndex(out, []byte("}"))
	if start < 0 || end < start {
		l.t.Fatalf("client helper printed no result: %s", out)
	}
	var res labResult
	if err := json.Unmarshal(out[start:end+1], &res); err != nil {
		l.t.Fatalf("client helper result: %v: %s", err, out)
	}
	return res
}

// TestLabHelper is not a test: the lab runs the test binary with it
// selected inside a namespace, as the client (it runs a labRequest and
// prints a labResult) or as the server (it holds TCP listeners until
// SIGTERM).
func TestLabHelper(t *testing.T) {
	switch os.Getenv(labRoleEnv) {
	case "server":
		var lns []net.Listener
		for _, p := range labPorts {
			ln, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			lns = append(lns, ln)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
				}
			}()
		}
		fmt.Println("ready")
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		<-ctx.Done()
		for _, ln := range lns {
			ln.Close()
		}
		os.Exit(0)
	case "client":
		var req labRequest
		if err := json.Unmarshal([]byte(os.Getenv(labRequestEnv)), &req); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ctx, cancel := context.WithTimeout(context.Background(), labClientTimeout)
		defer cancel()
		budget := NewDefaultBudget()
		if req.IntervalMS > 0 {
			budget = NewBudget(DefaultMaxProbes, DefaultMaxDuration, time.Duration(req.IntervalMS)*time.Millisecond)
		}
		res := labResult{Traces: make([]*Trace, len(req.Traces)), Arrival: make([]*arrival.Result, len(req.Arrival))}
		var wg sync.WaitGroup
		for i, dst := range req.Arrival {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := arrival.Probe(ctx, netip.MustParseAddrPort(dst), arrival.Config{})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				res.Arrival[i] = r
			}()
		}
		done := make([]chan struct{}, len(req.Traces))
		for i := range done {
			done[i] = make(chan struct{})
		}
		for i, tr := range req.Traces {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(done[i])
				cfg := Config{Test: tr.Test.flow(), Control: tr.Control.flow(), Budget: budget}
				if j := tr.UseDestOf - 1; j >= 0 && j < i {
					<-done[j]
					cfg.DestinationHop = res.Traces[j].Stop.DestinationHop
				}
				res.Traces[i] = Run(ctx, cfg)
			}()
		}
		wg.Wait()
		if r := req.Reset; r != nil {
			hello, err := ClientHello(ctx, r.ServerName, []string{"h2"})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			control, err := ClientHello(ctx, r.Control, []string{"h2"})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			res.Reset = RunReset(ctx, ResetConfig{Dst: netip.MustParseAddrPort(r.Dst), Hello: hello, ControlHello: control,
				MaxTTL: r.MaxTTL, Budget: budget})
		}
		res.Sent = budget.Sent()
		b, _ := json.Marshal(res)
		fmt.Printf("%s\n", b)
		os.Exit(0)
	default:
		t.Skip("not a lab helper: the path lab runs this in its namespaces")
	}
}
