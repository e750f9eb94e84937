package inputfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 101), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		limit   int64
		wantLen int
		wantErr string
	}{
		{"within the limit", small, 100, 21, ""},
		{"exactly the limit", small, 21, 21, ""},
		{"regular file over the limit", big, 100, 0, big + " is larger than 100 bytes"},
		{"endless device", "/dev/zero", 1 << 20, 0, "/dev/zero is larger than 1048576 bytes"},
		{"missing file", filepath.Join(dir, "missing"), 100, 0, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Read(tt.path, tt.limit)
			if tt.wantErr == "" {
				if err != nil || len(b) != tt.wantLen {
					t.Fatalf("Read = %d bytes, %v; want %d bytes", len(b), err, tt.wantLen)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Read error = %v, want one containing %q", err, tt.wantErr)
			}
			var tl *TooLargeError
			if strings.Contains(tt.wantErr, "larger") && !errors.As(err, &tl) {
				t.Errorf("Read error %T is not a *TooLargeError", err)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"short", "abc", `"abc"`},
		{"control bytes escaped", "a\x1b[31m", `"a\x1b[31m"`},
		{"long", strings.Repeat("x", 10<<20), `"` + strings.Repeat("x", MaxExcerptBytes) + `"... (10485760 bytes)`},
		{"cut on a character", strings.Repeat("x", MaxExcerptBytes-1) + "éé", `"` + strings.Repeat("x", MaxExcerptBytes-1) + `"... (67 bytes)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Quote(tt.in); got != tt.want {
				t.Errorf("Quote(%d bytes) = %.100s, want %.100s", len(tt.in), got, tt.want)
			}
		})
	}
}
