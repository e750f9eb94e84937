package htmlreport

import (
	"bytes"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the package pure: the standard library, analysis and
// measurements only; no network, no files, no clock outside the tests.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("listing the package's files: %v (%d files)", err, len(files))
	}
	allowed := map[string]bool{
		"github.com/reachprobe/reachprobe/analysis":     true,
		"github.com/reachprobe/reachprobe/measurements": true,
	}
	forbidden := map[string]bool{"net": true, "net/http": true, "os": true, "os/exec": true, "database/sql": true}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			stdlib := !strings.Contains(strings.Split(path, "/")[0], ".")
			if !stdlib && !allowed[path] {
				t.Errorf("%s imports %s: htmlreport may import only the standard library, analysis and measurements", name, path)
			}
			if forbidden[path] {
				t.Errorf("%s imports %s: htmlreport does no I/O but to the writer it is given", name, path)
			}
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, call := range []string{"time.Now(", "time.Since(", "time.Until("} {
			if bytes.Contains(src, []byte(call)) {
				t.Errorf("%s calls %s: the report's times come from its Input", name, call)
			}
		}
	}
}
