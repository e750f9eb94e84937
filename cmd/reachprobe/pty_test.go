package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal through /dev/ptmx: the test reads the
// master, a child gets the slave as its terminal. It skips the test where
// the kernel offers none (a container without devpts).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal on this machine: %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("cannot unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("cannot name the pseudo-terminal: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		t.Skipf("cannot open the pseudo-terminal's slave: %v", err)
	}
	return m, s
}

// runOnTerminal runs the binary with a pseudo-terminal as its standard
// input, output and error, and returns what the terminal showed and the
// exit error.
func runOnTerminal(t *testing.T, args ...string) (string, error) {
	t.Helper()
	master, slave := openPTY(t)
	defer master.Close()
	cmd := exec.Command(binary, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.Env = append(os.Environ(), "TERM=xterm")
	if err := cmd.Start(); err != nil {
		slave.Close()
		t.Fatal(err)
	}
	// The child holds the slave now: closing ours lets the master read
	// EIO once the child exits.
	slave.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		io.Copy(&out, master) // ends with EIO when the last slave closes
		close(done)
	}()
	err := cmd.Wait()
	<-done
	return screenText(out.String()), err
}

// screenText turns what a terminal received into the lines it shows: CRLF
// (the terminal's output processing) becomes LF, and a line redrawn after
// carriage returns keeps only its last drawing, without the erase-line
// sequence.
func screenText(raw string) string {
	raw = strings.ReplaceAll(raw, "\r\n", "\n")
	lines := strings.Split(raw, "\n")
	for i, l := range lines {
		if j := strings.LastIndex(l, "\r"); j >= 0 {
			l = l[j+1:]
		}
		lines[i] = strings.ReplaceAll(l, "\x1b[K", "")
	}
	return strings.Join(lines, "\n")
}

func TestScreenText(t *testing.T) {
	got := screenText("a\r\n\r\x1b[Kmeasuring 1\r\x1b[Kmeasuring 2\r\x1b[K\r\nrun 1\r\n")
	if want := "a\n\nrun 1\n"; got != want {
		t.Errorf("screenText = %q, want %q", got, want)
	}
}
