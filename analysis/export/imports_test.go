package export

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the package pure and its place in the import graph:
// the standard library, measurements, analysis and the DNS codec (rcode
// numbers), never the probes or the database driver.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/reachprobe/reachprobe/measurements": true,
		"github.com/reachprobe/reachprobe/analysis":     true,
		"github.com/miekg/dns":                          true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("listing the package's files: %v (%d files)", err, len(files))
	}
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
				t.Errorf("%s imports %s: export may import only the standard library, measurements, analysis and miekg/dns", name, path)
			}
			if path == "os" || path == "net/http" || path == "database/sql" {
				t.Errorf("%s imports %s: export does no I/O of its own", name, path)
			}
		}
	}
}
