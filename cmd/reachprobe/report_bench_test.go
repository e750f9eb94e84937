package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/reachprobe/reachprobe/measurements"
)

// benchRuns is how many runs BenchmarkReport1000Runs reports on: about six
// weeks of hourly runs.
const benchRuns = 1000

// BenchmarkReport1000Runs times "reachprobe report --since" in each format
// over a database of benchRuns runs of the default catalog, each with the
// observations a real run makes (DNS by every engine, TCP, both TLS
// handshakes with 2048-bit RSA chains, QUIC, STUN, skipped IPv6), and
// reports the size of what it writes.
func BenchmarkReport1000Runs(b *testing.B) {
	db := cachedBenchDB(b, benchRuns)
	fi, err := os.Stat(db)
	if err != nil {
		b.Fatal(err)
	}
	_, observations := benchCounts(b, db)
	b.Logf("database: %d runs, %d observations, %.1f MB", benchRuns, observations, float64(fi.Size())/1e6)
	for _, format := range []string{formatHTML, formatCSV, formatJSON, formatOONI} {
		b.Run(format, func(b *testing.B) {
			out := filepath.Join(b.TempDir(), "report."+format)
			args := []string{"report", "--db", db, "--format", format, "--since", "60d", "-o", out}
			for b.Loop() {
				env := &environ{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
				if code := runMain(b.Context(), env, args); code != exitOK {
					var errb bytes.Buffer
					env.stderr = &errb
					runMain(b.Context(), env, args)
					b.Fatalf("report --format %s: exit %d: %s", format, code, errb.String())
				}
			}
			fi, err := os.Stat(out)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(fi.Size())/1e6, "MB/report")
		})
	}
}

// buildBenchDB makes a database of n hourly runs, the newest an hour ago.
// Four template runs (a clean network, SNI filtering of push, NXDOMAIN
// for identity, silent FaceTime relays) go through the Store; the others
// are copied from their rows in SQL, one transaction, since storing
// hundreds of thousands of observations one commit at a time would take
// minutes. Opening the Store again then packs the copies, as it packs the
// rows of a database an earlier release wrote, and the templates are
// packed as they end.
func buildBenchDB(b *testing.B, n int) string {
	b.Helper()
	ctx := b.Context()
	db := filepath.Join(b.TempDir(), "reachprobe.db")
	store, err := measurements.Open(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	cat, err := loadCatalog("")
	if err != nil {
		b.Fatal(err)
	}
	chain := benchChain(b)
	first := time.Now().Add(-time.Duration(n) * time.Hour).UTC().Truncate(time.Second)
	const templates = 4
	var ids []int64
	for v := range templates {
		started := first.Add(time.Duration(v) * time.Hour)
		id, err := store.BeginRun(ctx, measurements.Run{Started: started, SoftwareVersion: "bench", CatalogName: cat.Name}, cat)
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range benchObservations(b, cat.Targets, id, started, v, chain) {
			if err := store.AddObservation(ctx, o); err != nil {
				b.Fatal(err)
			}
		}
		id2 := measurements.Identity{ProbeASN: 3320, ProbeNetworkName: "Deutsche Telekom AG", ProbeCC: "DE"}
		if err := store.SetRunNetwork(ctx, id, id2); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	store.Close()

	raw, err := sql.Open("sqlite", db)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	tx, err := raw.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	for i := templates; i < n; i++ {
		shift := int64(time.Duration(i) * time.Hour)
		template := i%templates + 1
		offset := shift - int64(time.Duration(template-1)*time.Hour)
		res, err := tx.ExecContext(ctx, `INSERT INTO runs (started, ended, status, software_version, catalog_digest, catalog_name)
SELECT started + ?, started + ? + ?, ?, software_version, catalog_digest, catalog_name FROM runs WHERE id = ?`,
			offset, offset, int64(40*time.Second), measurements.RunComplete, template)
		if err != nil {
			b.Fatal(err)
		}
		id, _ := res.LastInsertId()
		if _, err := tx.ExecContext(ctx, `INSERT INTO observations (run_id, step, grp, target, host, address, port,
	transport, repeat, control, started, duration_ns, failure, operation, skipped, details)
SELECT ?, step, grp, target, host, address, port, transport, repeat, control, started + ?, duration_ns,
	failure, operation, skipped, details FROM observations WHERE run_id = ? ORDER BY id`, id, offset, template); err != nil {
			b.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO run_networks SELECT ?, probe_asn, probe_network_name, probe_cc,
	resolver_asn, resolver_network_name, resolver_cc FROM run_networks WHERE run_id = ?`, id, template); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	raw.Close()

	store, err = measurements.Open(ctx, db) // packs the copies
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	for v, id := range ids {
		if err := store.EndRun(ctx, id, measurements.RunComplete, first.Add(time.Duration(v)*time.Hour+40*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	// The templates' rows, packed, left free pages that a database of
	// hourly runs would fill with the next run's rows.
	if err := store.Compact(ctx); err != nil {
		b.Fatal(err)
	}
	if err := store.Close(); err != nil {
		b.Fatal(err)
	}
	return db
}

// storageBenchRuns is how many runs BenchmarkStorage stores: enough that
// the schema and the catalog's text are a small part of the file.
const storageBenchRuns = 200

// BenchmarkStorage reports what a run of the default catalog (clean,
// SNI-filtered, NXDOMAIN and silent-relay variants in turn) costs in the
// database: the file's bytes over the runs, after a checkpoint.
func BenchmarkStorage(b *testing.B) {
	for b.Loop() {
		db := buildBenchDB(b, storageBenchRuns)
		fi, err := os.Stat(db)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fi.Size())/storageBenchRuns, "bytes/run")
	}
}

// listBenchRuns is how many runs BenchmarkList lists: more than a year of
// hourly runs.
const listBenchRuns = 10000

// BenchmarkList times "reachprobe list" and "list --json" over
// listBenchRuns runs of the default catalog (3.5 million observations).
func BenchmarkList(b *testing.B) {
	db := cachedBenchDB(b, listBenchRuns)
	for _, args := range [][]string{{"list", "--db", db}, {"list", "--json", "--db", db}} {
		b.Run(strings.Join(args[:len(args)-2], "_"), func(b *testing.B) {
			for b.Loop() {
				env := &environ{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
				if code := runMain(b.Context(), env, args); code != exitOK {
					b.Fatalf("%v: exit %d", args, code)
				}
			}
		})
	}
}

// benchCacheEnv names the directory where cachedBenchDB keeps the
// databases it builds; "make bench" sets it (BENCH_CACHE in the Makefile).
const benchCacheEnv = "REACHPROBE_BENCH_CACHE"

// benchDBVersion changes when buildBenchDB's runs change, so a cached
// database of the old runs is rebuilt.
const benchDBVersion = 2

// cachedBenchDB is buildBenchDB(b, n), kept in $REACHPROBE_BENCH_CACHE
// when that is set (building a year of runs takes minutes) and reused
// while the builder and the schema are the same. The cached file is
// copied, so a benchmark that writes (prune) leaves it as it was.
func cachedBenchDB(b *testing.B, n int) string {
	b.Helper()
	dir := os.Getenv(benchCacheEnv)
	if dir == "" {
		return buildBenchDB(b, n)
	}
	cached := filepath.Join(dir, fmt.Sprintf("bench-%d-runs-v%d-schema%d.db", n, benchDBVersion, measurements.SchemaVersion()))
	if _, err := os.Stat(cached); err != nil {
		built := buildBenchDB(b, n)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		if err := copyFile(built, cached+".tmp"); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(cached+".tmp", cached); err != nil {
			b.Fatal(err)
		}
	}
	db := filepath.Join(b.TempDir(), "reachprobe.db")
	if err := copyFile(cached, db); err != nil {
		b.Fatal(err)
	}
	return db
}

// copyFile copies a closed database (no WAL) from src to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// benchCounts counts the runs and the observations stored in db.
func benchCounts(b *testing.B, db string) (runs, observations int) {
	store, err := measurements.OpenReadOnly(b.Context(), db, measurements.ReadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	all, err := store.Runs(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range all {
		observations += r.Observations
	}
	return len(all), observations
}

// benchChain is a leaf and an intermediate, 2048-bit RSA like Apple's, for
// the peer certificates of every handshake.
func benchChain(b testing.TB) [][]byte {
	b.Helper()
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	leafKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Apple Public Server RSA CA 12 - G1", Organization: []string{"Apple Inc."}},
		NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		b.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "courier.push.apple.com", Organization: []string{"Apple Inc."}},
		DNSNames:  []string{"courier.push.apple.com", "*.push.apple.com", "*.ess.apple.com", "*.apple.com", "*.icloud.com"},
		NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		b.Fatal(err)
	}
	return [][]byte{leafDER, caDER}
}

// benchObservations is what a run of targets makes, in variant v (see
// buildBenchDB), starting at started.
func benchObservations(b testing.TB, targets []measurements.Target, runID int64, started time.Time, v int, chain [][]byte) []*measurements.Observation {
	var out []*measurements.Observation
	at := started
	add := func(o *measurements.Observation) {
		o.RunID, o.Started = runID, at
		if o.Duration == 0 {
			o.Duration = 35 * time.Millisecond
		}
		at = at.Add(5 * time.Millisecond)
		out = append(out, o)
	}
	for ti, t := range targets {
		base := func(step measurements.Step, transport string) *measurements.Observation {
			return &measurements.Observation{Step: step, Group: t.Group, Target: t.Name, Host: t.Host, Transport: transport}
		}
		v4 := []string{benchAddr(t, ti, 1), benchAddr(t, ti, 2)}
		v6 := "2620:149:a44::" + fmt.Sprint(ti+1)
		nx := v == 2 && t.Group == measurements.GroupIdentity
		resolvers := []struct{ engine, resolver string }{
			{measurements.EngineSystem, ""}, {measurements.EngineUDP, "192.168.1.1:53"},
			{measurements.EngineDoH, defaultDoH[0]}, {measurements.EngineDoH, defaultDoH[1]},
		}
		for _, r := range resolvers {
			for _, qtype := range []string{"A", "AAAA"} {
				o := base(measurements.StepDNS, "udp")
				o.Control = r.engine == measurements.EngineDoH
				d := &measurements.DNSDetails{Engine: r.engine, Resolver: r.resolver, QueryType: qtype, Rcode: "NOERROR"}
				switch {
				case nx && !o.Control:
					d.Rcode, o.Failure, o.Operation = "NXDOMAIN", "dns_nxdomain_error", "resolve"
				case qtype == "A":
					for _, a := range v4 {
						d.Answers = append(d.Answers, measurements.DNSAnswer{Name: t.Host + ".", Type: "A", Data: a, TTL: 300})
					}
				default:
					d.Answers = []measurements.DNSAnswer{{Name: t.Host + ".", Type: "AAAA", Data: v6, TTL: 300}}
				}
				if r.engine != measurements.EngineSystem {
					d.TransactionID = uint16(mrand.Uint32())
					d.RawResponse = benchWire(b, t.Host, d)
				}
				o.DNS = d
				add(o)
			}
		}
		if nx {
			continue
		}
		for _, port := range t.Ports {
			skip := base(measurements.StepTCP, "tcp")
			if t.Has("udp") {
				skip = base(measurements.StepUDP, "udp")
			}
			skip.Address, skip.Port, skip.Skipped = v6, port, measurements.SkipNoIPv6Route
			add(skip)
			for _, a := range v4 {
				if t.Has("tcp") || t.Has("tls") {
					o := base(measurements.StepTCP, "tcp")
					o.Address, o.Port, o.TCP = a, port, &measurements.TCPDetails{Family: "ipv4"}
					add(o)
				}
				if t.Has("tls") {
					for _, control := range []bool{true, false} {
						o := base(measurements.StepTLS, "tcp")
						o.Address, o.Port, o.Control = a, port, control
						d := &measurements.TLSDetails{Network: "tcp", ServerName: t.ServerName, ALPN: t.ALPN, ClientHello: "iOS_14",
							TLSVersion: "TLSv1.3", CipherSuite: "TLS_AES_128_GCM_SHA256", PeerCertificates: chain, Verified: true}
						switch {
						case control:
							d.ServerName, d.Verified = t.ControlServerName, false
							d.VerifyFailure = "x509: certificate is valid for courier.push.apple.com, not " + t.ControlServerName
							o.Failure, o.Operation = "ssl_invalid_hostname", "tls_handshake"
						case v == 1 && t.Group == measurements.GroupPush:
							d = &measurements.TLSDetails{Network: "tcp", ServerName: t.ServerName, ALPN: t.ALPN, ClientHello: "iOS_14"}
							o.Failure, o.Operation = "connection_reset", "tls_handshake"
						}
						if len(d.ALPN) > 0 && d.Verified {
							d.NegotiatedProtocol = d.ALPN[0]
						}
						o.TLS = d
						add(o)
					}
				}
				if t.Has("quic") {
					o := base(measurements.StepQUIC, "udp")
					o.Address, o.Port = a, port
					o.TLS = &measurements.TLSDetails{Network: "udp", ServerName: t.ServerName, ALPN: []string{"h3"}, TLSVersion: "TLSv1.3",
						CipherSuite: "TLS_AES_128_GCM_SHA256", NegotiatedProtocol: "h3", PeerCertificates: chain, Verified: true}
					add(o)
				}
				if t.Has("udp") {
					o := base(measurements.StepUDP, "udp")
					o.Address, o.Port = a, port
					s := &measurements.STUNDetails{TransactionID: bytes.Repeat([]byte{7}, 12), ExpectAnswer: t.STUNAnswers, Attempts: 1,
						Responded: true, Class: "success", MappedAddressSeen: true, ResponseBytes: 44}
					if v == 3 && t.Group == measurements.GroupCall || !t.STUNAnswers {
						*s = measurements.STUNDetails{TransactionID: s.TransactionID, ExpectAnswer: t.STUNAnswers, Attempts: 4}
						o.Failure, o.Operation, o.Duration = "generic_timeout_error", "read", 3500*time.Millisecond
					}
					o.STUN = s
					add(o)
				}
			}
		}
	}
	return out
}

// benchWire is the response a resolver sends for the lookup d of host, in
// wire format with EDNS, as the probe keeps it (DNSDetails.RawResponse).
func benchWire(b testing.TB, host string, d *measurements.DNSDetails) []byte {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(host), dns.StringToType[d.QueryType])
	m.Id, m.Response, m.RecursionDesired, m.RecursionAvailable = d.TransactionID, true, true, true
	m.Rcode = dns.StringToRcode[d.Rcode]
	for _, a := range d.Answers {
		rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", a.Name, a.TTL, a.Type, a.Data))
		if err != nil {
			b.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	m.SetEdns0(1232, false)
	raw, err := m.Pack()
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// benchAddr is address i of target t: in its first expected IPv4 network
// when it has one (Apple's 17.0.0.0/8), else a public address.
func benchAddr(t measurements.Target, ti, i int) string {
	for _, p := range t.Networks {
		if p.Addr().Is4() {
			a := p.Addr().As4()
			return netip.AddrFrom4([4]byte{a[0], 57 + byte(ti), 146, byte(i)}).String()
		}
	}
	return fmt.Sprintf("142.250.%d.%d", 74+ti, i)
}
