package analysis

import (
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the package pure: the standard library, measurements
// and appleca (Apple's certificates, embedded) only, never the probes, the
// network's libraries or a database driver.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("listing the package's files: %v (%d files)", err, len(files))
	}
	const (
		measurements = "github.com/reachprobe/reachprobe/measurements"
		appleca      = "github.com/reachprobe/reachprobe/appleca"
	)
	for _, name := range files {
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			stdlib := !strings.Contains(strings.Split(path, "/")[0], ".")
			if !stdlib && path != measurements && path != appleca {
				t.Errorf("%s imports %s: analysis may import only the standard library, measurements and appleca", name, path)
			}
			if !strings.HasSuffix(name, "_test.go") && (path == "time" && usesClock(t, name) || path == "net" || path == "os" || path == "database/sql") {
				t.Errorf("%s imports %s: analysis does no I/O and reads no clock", name, path)
			}
		}
	}
}

// usesClock reports whether a file calls time.Now or time.Since.
func usesClock(t *testing.T, name string) bool {
	t.Helper()
	b := readFile(t, name)
	return bytes.Contains(b, []byte("time.Now(")) || bytes.Contains(b, []byte("time.Since("))
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// TestJSONKeys checks every key of the report and history formats is
// snake_case, as FORMAT.md promises.
func TestJSONKeys(t *testing.T) {
	rep := Analyze(scenarios()[0].world().build())
	hist := History(historyRuns())
	for name, v := range map[string]any{"report": rep, "history": hist} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var tree any
		if err := json.Unmarshal(b, &tree); err != nil {
			t.Fatal(err)
		}
		walkKeys(tree, func(k string) {
			if !snakeCase.MatchString(k) {
				t.Errorf("%s: key %q is not snake_case", name, k)
			}
		})
	}
}

func walkKeys(v any, visit func(string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			visit(k)
			walkKeys(e, visit)
		}
	case []any:
		for _, e := range x {
			walkKeys(e, visit)
		}
	}
}

// TestDeterministic checks that the same input gives the same bytes, JSON
// and text alike, whatever the order of the observations.
func TestDeterministic(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			in := sc.world().build()
			a := Analyze(in)
			// Reverse the observations: maps and order must not leak.
			rev := in
			rev.Observations = nil
			for i := len(in.Observations) - 1; i >= 0; i-- {
				rev.Observations = append(rev.Observations, in.Observations[i])
			}
			b := Analyze(rev)
			if ja, jb := marshal(t, a), marshal(t, b); !bytes.Equal(ja, jb) {
				t.Errorf("the report depends on observation order: %s", firstDiff(ja, jb))
			}
			var ta, tb bytes.Buffer
			if err := a.WriteText(&ta); err != nil {
				t.Fatal(err)
			}
			if err := b.WriteText(&tb); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ta.Bytes(), tb.Bytes()) {
				t.Errorf("the text depends on observation order: %s", firstDiff(ta.Bytes(), tb.Bytes()))
			}
		})
	}
}
