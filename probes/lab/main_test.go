//go:build lab

package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/reachprobe/reachprobe/probes/probetest"
)

// Environment of a helper process: the role it plays and its JSON config.
const (
	roleEnv   = "REACHPROBE_LAB_ROLE"
	configEnv = "REACHPROBE_LAB_CONFIG"
	// readyLine is what a helper prints on stdout once it serves.
	readyLine = "ready"
)

// buildTimeout bounds the build of the reachprobe binary on a cold cache
// on a two-core machine.
const buildTimeout = 5 * time.Minute

// Set by TestMain for the tests of the lab process.
var (
	// skipReason, when set, is why this machine cannot run the lab.
	skipReason string
	// buildErr is the failure of the reachprobe build.
	buildErr error
	// probeBinary is the reachprobe binary the lab runs.
	probeBinary string
	// moduleRoot is the directory of go.mod.
	moduleRoot string
)

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) != "" {
		// A helper process: TestLabHelperProcess does the work.
		os.Exit(m.Run())
	}
	skipReason = prerequisites()
	var dir string
	if skipReason == "" {
		var err error
		dir, err = os.MkdirTemp("", "reachprobe-lab-")
		if err != nil {
			buildErr = err
		} else {
			probeBinary, buildErr = buildProbe(dir)
		}
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// prerequisites returns why the lab cannot run here, or "".
func prerequisites() string {
	if os.Geteuid() != 0 {
		return "the censorship lab needs root (network namespaces, iptables): run \"sudo make lab\""
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("the censorship lab needs %q (apt-get install iproute2 iptables): %v", tool, err)
		}
	}
	return ""
}

// buildProbe builds cmd/reachprobe, static, into dir.
func buildProbe(dir string) (string, error) {
	root, err := probetest.ModuleRoot()
	if err != nil {
		return "", err
	}
	moduleRoot = root
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building reachprobe: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	bin := filepath.Join(dir, "reachprobe")
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, "./cmd/reachprobe")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building reachprobe: %v\n%s", err, out)
	}
	return bin, nil
}

// TestLabHelperProcess is not a test: the lab runs the test binary with
// this test selected, in one of its namespaces, to play a role (see Role).
// It serves until its standard input closes (the lab stopped it, or the
// lab's process went away) or it gets SIGTERM.
func TestLabHelperProcess(t *testing.T) {
	role := os.Getenv(roleEnv)
	if role == "" {
		t.Skip("not a lab helper: the lab runs this in its namespaces")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	err := Serve(ctx, Role(role), []byte(os.Getenv(configEnv)), func() {
		fmt.Fprintln(os.Stdout, readyLine)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}
