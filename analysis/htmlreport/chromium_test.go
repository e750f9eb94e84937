package htmlreport

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// The page checked as a reader sees it: headless Chromium (Debian's
// chromium package) renders it to screenshots and a PDF, and measures its
// layout at a phone's width. Skipped where Chromium is not installed.

// updateScreenshots rewrites docs/report-desktop.png and
// docs/report-phone.png from the lab report:
// go test ./analysis/htmlreport -run TestScreenshots -update-screenshots
var updateScreenshots = flag.Bool("update-screenshots", false, "rewrite docs/report-*.png")

// chromiumTimeout bounds one Chromium invocation: a cold start with a new
// profile takes a few seconds on a shared two-core machine; a minute
// leaves room for a slow one without letting a hung browser stall the
// suite.
const chromiumTimeout = time.Minute

// phoneWidth is the CSS width of a common phone (iPhone 12 to 15).
const phoneWidth = 390

// chromiumArgs keep the browser off the network: no background services,
// every host name unresolvable and every connection sent to a dead
// loopback proxy. The report fetches nothing anyway (its CSP forbids it).
var chromiumArgs = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--disable-extensions", "--disable-default-apps", "--no-default-browser-check",
	"--disable-domain-reliability", "--disable-breakpad", "--metrics-recording-only",
	"--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
	"--hide-scrollbars", "--force-device-scale-factor=1",
}

// findChromium returns the browser's path, or skips t.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("Chromium is not installed (apt-get install chromium): the page was not checked in a browser")
	return ""
}

// chromium runs the browser with args after the common ones, in a
// throwaway profile and home, and returns its standard output.
func chromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), chromiumTimeout)
	defer cancel()
	home := t.TempDir()
	all := append(append([]string{}, chromiumArgs...), "--user-data-dir="+filepath.Join(home, "profile"))
	cmd := exec.CommandContext(ctx, bin, append(all, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_CACHE_HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, lastLines(stderr.Bytes(), 10))
	}
	return stdout.Bytes()
}

func lastLines(b []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, []byte("\n"))
}

// writeReport renders the lab report into dir and returns its file URL.
func writeReport(t *testing.T, dir string) (path, url string) {
	t.Helper()
	path = filepath.Join(dir, "report.html")
	if err := os.WriteFile(path, render(t, labInput(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, "file://" + path
}

// checkPNG decodes a screenshot and checks it has the size asked for and
// is not blank: a page that failed to render is one flat colour.
func checkPNG(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), w, h)
	}
	if n := colours(img); n < 50 {
		t.Errorf("screenshot has %d colours: blank or broken, want a rendered page", n)
	}
}

func colours(img image.Image) int {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
		}
	}
	return len(seen)
}

func TestScreenshots(t *testing.T) {
	bin := findChromium(t)
	dir := t.TempDir()
	_, url := writeReport(t, dir)
	shots := []struct {
		name string
		w, h int
		doc  string // the docs/ file it updates
	}{
		{"desktop", 1280, 2000, "report-desktop.png"},
		{"phone", phoneWidth, 2400, "report-phone.png"},
	}
	for _, s := range shots {
		t.Run(s.name, func(t *testing.T) {
			out := filepath.Join(dir, s.name+".png")
			chromium(t, bin, "--screenshot="+out, fmt.Sprintf("--window-size=%d,%d", s.w, s.h), url)
			checkPNG(t, out, s.w, s.h)
			if *updateScreenshots && !t.Failed() {
				b, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join("..", "..", "docs", s.doc), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// pdfPages counts page objects; Chromium writes them uncompressed.
var pdfPages = regexp.MustCompile(`/Type\s*/Page[^s]`)

func TestPrintToPDF(t *testing.T) {
	bin := findChromium(t)
	dir := t.TempDir()
	_, url := writeReport(t, dir)
	out := filepath.Join(dir, "report.pdf")
	chromium(t, bin, "--no-pdf-header-footer", "--print-to-pdf="+out, url)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("no PDF: %v", err)
	}
	if !bytes.HasPrefix(b, []byte("%PDF-")) {
		t.Fatalf("%s is not a PDF (starts %q)", out, b[:min(len(b), 8)])
	}
	pages := len(pdfPages.FindAll(b, -1))
	t.Logf("PDF: %d bytes, %d pages", len(b), pages)
	if pages < 2 || pages > 12 {
		t.Errorf("PDF has %d pages, want 2 to 12 for the lab report", pages)
	}
}

// layoutProbe loads the report into an iframe of a phone's width and
// reports, in an attribute of its own body, how wide the report's content
// is and which elements stick out of the screen (tables scroll inside
// their wrapper, so those are left out). The probe page holds a script;
// the report inside it does not, and its CSP still applies to it.
const layoutProbe = `<!DOCTYPE html><html><body style="margin:0">
<iframe id="f" width="%d" height="900" style="border:0"></iframe>
<script>
const f = document.getElementById("f");
f.onload = () => {
  const d = f.contentDocument, w = d.documentElement.clientWidth, wide = [];
  for (const e of d.body.querySelectorAll("*")) {
    if (e.closest(".table-wrap")) continue;
    const r = e.getBoundingClientRect();
    if (r.width > 0 && r.right > w + 0.5) wide.push(e.tagName.toLowerCase() + "." + (e.getAttribute("class") || ""));
  }
  document.body.setAttribute("data-layout", JSON.stringify({scroll: d.documentElement.scrollWidth, client: w, wide: wide.slice(0, 10)}));
};
f.srcdoc = %s;
</script></body></html>`

var layoutAttr = regexp.MustCompile(`data-layout="([^"]*)"`)

// TestPhoneLayout checks that nothing but the tables' own scrolling
// wrapper is wider than a phone.
func TestPhoneLayout(t *testing.T) {
	bin := findChromium(t)
	dir := t.TempDir()
	src, err := json.Marshal(string(render(t, labInput(t))))
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(dir, "probe.html")
	if err := os.WriteFile(probe, fmt.Appendf(nil, layoutProbe, phoneWidth, src), 0o644); err != nil {
		t.Fatal(err)
	}
	// The virtual time budget lets the frame load before the DOM is dumped.
	dom := chromium(t, bin, "--window-size=800,1000", "--virtual-time-budget=5000", "--dump-dom", "file://"+probe)
	m := layoutAttr.FindSubmatch(dom)
	if m == nil {
		t.Fatalf("the probe reported nothing; DOM: %.300s", dom)
	}
	raw := bytes.ReplaceAll(m[1], []byte("&quot;"), []byte(`"`))
	var got struct {
		Scroll, Client int
		Wide           []string
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("probe result %s: %v", raw, err)
	}
	t.Logf("at %d px: content %d px wide in a %d px viewport", phoneWidth, got.Scroll, got.Client)
	if got.Client == 0 || got.Client > phoneWidth {
		t.Fatalf("viewport is %d px, want at most %d: the probe did not emulate a phone", got.Client, phoneWidth)
	}
	if got.Scroll > got.Client {
		t.Errorf("the page scrolls sideways on a phone: content %d px wide, viewport %d px", got.Scroll, got.Client)
	}
	if len(got.Wide) > 0 {
		t.Errorf("elements wider than a phone: %v", got.Wide)
	}
}
