// Package inputfile reads the files a user hands reachprobe (catalogs,
// resolv.conf, PEM roots, the config file) with a size limit, and quotes
// what it read in errors with a short excerpt.
//
// A path can name anything: /dev/zero, a log file, a 10 GB mistake. Read
// stops at the limit with an error that names the file, so a wrong path
// costs a clear message, not the machine's memory; Quote keeps an error
// about a 10 MB line to a line of its own.
//
// This package does not parse anything.
package inputfile

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"unicode/utf8"
)

// MaxLineBytes caps a line of a text input file. The longest line of a
// reachprobe catalog or config is a list of a few prefixes or URLs, under
// a kilobyte; a file with longer lines (/dev/zero, a binary) is not one.
const MaxLineBytes = 4096

// MaxExcerptBytes is how much of a bad value an error quotes.
const MaxExcerptBytes = 64

// TooLargeError says a file is larger than its limit.
type TooLargeError struct {
	Path  string
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than %d bytes", e.Path, e.Limit)
}

// Read returns the contents of the file at path, or a *TooLargeError when
// it holds more than limit bytes. It reads at most limit+1 bytes, whatever
// the file is (a device, a pipe), and stats a regular file first so that a
// large one is refused without reading it.
func Read(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > limit {
		return nil, &TooLargeError{Path: path, Limit: limit}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &TooLargeError{Path: path, Limit: limit}
	}
	return data, nil
}

// Quote returns s quoted as %q does, cut to its first MaxExcerptBytes
// (on a character boundary) with its whole size noted when longer:
// "\"aaaa\"... (10485760 bytes)".
func Quote(s string) string {
	if len(s) <= MaxExcerptBytes {
		return strconv.Quote(s)
	}
	cut := MaxExcerptBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
}

// LineTooLong is the message for a line over MaxLineBytes.
func LineTooLong(n int) string {
	return fmt.Sprintf("line is %d bytes long, more than %d: not a text file of this kind", n, MaxLineBytes)
}
