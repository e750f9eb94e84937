package measurements

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportGraph keeps the layering of the module: measurements imports
// nothing of ours, the probes never import analysis, and analysis never
// imports the probes. It asks the go command, so it sees the transitive
// dependencies, not just the import lines.
func TestImportGraph(t *testing.T) {
	const mod = "github.com/reachprobe/reachprobe/"
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
		if err != nil {
			t.Skipf("go list unavailable: %v", err)
		}
		return strings.Fields(string(out))
	}
	rules := []struct {
		pkg       string
		forbidden []string
	}{
		// The data model and everything under it know no verdicts: the
		// formats that carry them live under analysis.
		{"measurements/...", []string{mod + "probes", mod + "analysis", mod + "cmd"}},
		// Apple's embedded certificates are read by the probes and by
		// analysis alike, so they depend on nothing of ours.
		{"appleca", []string{mod + "measurements", mod + "probes", mod + "analysis", mod + "cmd"}},
		// analysis does link the SQLite driver, through this package's
		// store; it never opens a database (its own test forbids the
		// database/sql import).
		{"analysis", []string{mod + "probes", mod + "cmd"}},
		{"probes/runner", []string{mod + "analysis", mod + "cmd"}},
		{"probes/netid", []string{mod + "analysis", mod + "cmd"}},
	}
	for _, r := range rules {
		for _, d := range deps(r.pkg) {
			for _, f := range r.forbidden {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s depends on %s", r.pkg, d)
				}
			}
		}
	}
}
