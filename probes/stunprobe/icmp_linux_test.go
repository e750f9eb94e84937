//go:build linux

package stunprobe

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/failure"
)

// TestBindingPortUnreachableFromTarget: loopback's port unreachable comes
// from the target address itself, which the probe records: the datagram
// reached the host.
func TestBindingPortUnreachableFromTarget(t *testing.T) {
	addr := closedPort(t, "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	obs := Binding(ctx, addr, true)
	if obs.Failure != failure.ConnectionRefused {
		t.Fatalf("Failure = %q, want %q", obs.Failure, failure.ConnectionRefused)
	}
	want := measurements.ICMPDetails{Type: 3, Code: 3, FromTarget: true}
	if obs.STUN.ICMP == nil || *obs.STUN.ICMP != want {
		t.Errorf("ICMP = %+v, want %+v", obs.STUN.ICMP, want)
	}
}

// TestBindingLocalFilters runs the exchange inside a private network
// namespace of its own (loopback only) whose OUTPUT chain rejects or drops
// the datagram: an ICMP administratively prohibited must be told from a
// port unreachable, and this machine's own DROP (EPERM on send) from the
// network's doing.
func TestBindingLocalFilters(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it creates a network namespace and iptables rules in it")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("needs iptables: ", err)
	}
	tests := []struct {
		name     string
		chain    string
		rule     []string
		wantFail string
		wantOp   string
		wantICMP *measurements.ICMPDetails
	}{
		// A reject in INPUT answers as the target host's firewall would:
		// the datagram left, and the ICMP comes from the target.
		{"admin prohibited", "INPUT", []string{"-j", "REJECT", "--reject-with", "icmp-admin-prohibited"}, failure.AdminProhibited, failure.OpRead,
			&measurements.ICMPDetails{Type: 3, Code: 13, FromTarget: true}},
		{"host prohibited", "INPUT", []string{"-j", "REJECT", "--reject-with", "icmp-host-prohibited"}, failure.AdminProhibited, failure.OpRead,
			&measurements.ICMPDetails{Type: 3, Code: 10, FromTarget: true}},
		{"port unreachable", "INPUT", []string{"-j", "REJECT"}, failure.ConnectionRefused, failure.OpRead,
			&measurements.ICMPDetails{Type: 3, Code: 3, FromTarget: true}},
		// In OUTPUT the datagram never leaves this machine: the send
		// fails with EPERM, whatever ICMP the local reject makes up.
		{"local drop", "OUTPUT", []string{"-j", "DROP"}, failure.LocalFirewall, failure.OpWrite, nil},
		{"local reject", "OUTPUT", []string{"-j", "REJECT", "--reject-with", "icmp-admin-prohibited"}, failure.LocalFirewall, failure.OpWrite,
			&measurements.ICMPDetails{Type: 3, Code: 13, FromTarget: true}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := fmt.Sprintf("rp-stun-%d-%d", os.Getpid(), i)
			run := func(args ...string) {
				t.Helper()
				if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
					t.Fatalf("%v: %v\n%s", args, err, out)
				}
			}
			run("ip", "netns", "add", ns)
			t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
			run("ip", "-n", ns, "link", "set", "lo", "up")
			run(append([]string{"ip", "netns", "exec", ns, "iptables", "-A", tt.chain, "-p", "udp", "-d", "127.0.0.2"}, tt.rule...)...)

			obs := inNamespace(t, ns, func() *measurements.Observation {
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				defer cancel()
				return binding(ctx, netip.MustParseAddrPort("127.0.0.2:3478"), true, fastSchedule)
			})
			if obs.Failure != tt.wantFail || obs.Operation != tt.wantOp {
				t.Errorf("Failure, Operation = %q, %q; want %q, %q", obs.Failure, obs.Operation, tt.wantFail, tt.wantOp)
			}
			switch {
			case tt.wantICMP == nil && obs.STUN.ICMP != nil:
				t.Errorf("ICMP = %+v, want none", obs.STUN.ICMP)
			case tt.wantICMP != nil && (obs.STUN.ICMP == nil || *obs.STUN.ICMP != *tt.wantICMP):
				t.Errorf("ICMP = %+v, want %+v", obs.STUN.ICMP, tt.wantICMP)
			}
		})
	}
}

// inNamespace runs f on a thread moved into the network namespace ns, so
// the sockets f opens live there.
func inNamespace(t *testing.T, ns string, f func() *measurements.Observation) *measurements.Observation {
	t.Helper()
	type result struct {
		obs *measurements.Observation
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread is never unlocked: if it cannot go back to the
		// original namespace it must die with the goroutine.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: err}
			return
		}
		obs := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		done <- result{obs: obs}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("entering namespace %s: %v", ns, r.err)
	}
	return r.obs
}
