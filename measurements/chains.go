package measurements

// # Certificate chains
//
// Every TLS and QUIC handshake keeps the chain the peer sent, and a
// network that is not tampered with sends the same few chains run after
// run. They are stored once, content-addressed: the chains table holds
// each distinct chain under the SHA-256 of its encoding (encodeChain), and
// an observation's details name that hash ("chain") instead of carrying
// the certificates. Observations reads them back into
// TLSDetails.PeerCertificates, so callers see the chain as it was sent.
// Details written before schema version 5 carry the chain inline
// ("tls.peer_certificates"); migration 5 rewrites them (rewriteChains),
// and a reader of an older database decodes them as they are.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// maxChainCertificates bounds how many certificates decodeChain returns,
// so a damaged row cannot make it allocate without limit; a TLS peer is
// limited by the handshake's size long before.
const maxChainCertificates = 1 << 12

// encodeChain encodes a chain as each certificate's length (uvarint) then
// its DER, leaf first, and returns the encoding and its SHA-256 in hex.
func encodeChain(certs [][]byte) (blob []byte, hash string) {
	for _, c := range certs {
		blob = binary.AppendUvarint(blob, uint64(len(c)))
		blob = append(blob, c...)
	}
	sum := sha256.Sum256(blob)
	return blob, hex.EncodeToString(sum[:])
}

// decodeChain is encodeChain's inverse. Each certificate is a slice of
// its own (never nil), as JSON decoding gave them before.
func decodeChain(blob []byte) ([][]byte, error) {
	certs := [][]byte{}
	for len(blob) > 0 {
		n, size := binary.Uvarint(blob)
		// Only the shortest encoding of a length is accepted: a chain has
		// one encoding, and its hash is of that one.
		if size <= 0 || size != len(binary.AppendUvarint(nil, n)) || n > uint64(len(blob)-size) || len(certs) == maxChainCertificates {
			return nil, errors.New("malformed certificate chain")
		}
		blob = blob[size:]
		certs = append(certs, append([]byte{}, blob[:n]...))
		blob = blob[n:]
	}
	return certs, nil
}

// execer is what storing a chain needs of a *sql.Tx or *sql.DB.
type execer interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}

// storeChain stores certs in chains unless they are there already and
// returns their hash, or "" for an empty chain, which is not stored.
func storeChain(ctx context.Context, db execer, certs [][]byte) (string, error) {
	if len(certs) == 0 {
		return "", nil
	}
	blob, hash := encodeChain(certs)
	if _, err := db.ExecContext(ctx, `INSERT INTO chains (sha256, certificates) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING`,
		hash, blob); err != nil {
		return "", fmt.Errorf("storing certificate chain: %w", err)
	}
	return hash, nil
}

// encodeDetails is the details column of o at this schema version, and
// the certificates it leaves out, to be stored in chains.
func encodeDetails(o *Observation) (details []byte, chain [][]byte, err error) {
	d := observationDetails{DNS: o.DNS, TCP: o.TCP, TLS: o.TLS, STUN: o.STUN, Arrival: o.Arrival, Trace: o.Trace, Confirmation: o.Confirmation, PortCheck: o.PortCheck}
	if o.TLS != nil && len(o.TLS.PeerCertificates) > 0 {
		tls := *o.TLS
		chain, tls.PeerCertificates = tls.PeerCertificates, nil
		d.TLS = &tls
		_, d.Chain = encodeChain(chain)
	}
	details, err = json.Marshal(d)
	return details, chain, err
}

// chainReader reads chains by hash for one query, remembering each: a run
// holds a handful of distinct chains in a hundred handshakes.
type chainReader struct {
	db    *sql.DB
	known map[string][][]byte
}

// fill sets d.TLS.PeerCertificates from the chain d names, if it names
// one. The certificates are copied for each observation, so that callers
// may change one observation's without changing another's.
func (r *chainReader) fill(ctx context.Context, d *observationDetails) error {
	if d.Chain == "" {
		return nil
	}
	if d.TLS == nil {
		return fmt.Errorf("chain %s named without TLS details", d.Chain)
	}
	certs, ok := r.known[d.Chain]
	if !ok {
		var blob []byte
		err := r.db.QueryRowContext(ctx, `SELECT certificates FROM chains WHERE sha256 = ?`, d.Chain).Scan(&blob)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("certificate chain %s is missing from the database", d.Chain)
		}
		if err != nil {
			return fmt.Errorf("reading certificate chain %s: %w", d.Chain, err)
		}
		if certs, err = decodeChain(blob); err != nil {
			return fmt.Errorf("certificate chain %s: %w", d.Chain, err)
		}
		if r.known == nil {
			r.known = map[string][][]byte{}
		}
		r.known[d.Chain] = certs
	}
	d.TLS.PeerCertificates = make([][]byte, len(certs))
	for i, c := range certs {
		d.TLS.PeerCertificates[i] = append([]byte{}, c...)
	}
	d.Chain = ""
	return nil
}

// rewriteBatch is how many observations rewriteChains reads at a time:
// enough to amortise the query, few enough to keep memory small on a
// database of millions.
const rewriteBatch = 1000

// rewriteChains is migration 5's rewrite: every observation whose details
// carry a chain inline gets it moved to chains, and its details encoded
// as AddObservation now encodes them. It runs in the migration's
// transaction.
func rewriteChains(ctx context.Context, tx *sql.Tx) error {
	type row struct {
		id      int64
		details string
	}
	var last int64
	for {
		rows, err := tx.QueryContext(ctx, `SELECT id, details FROM observations
WHERE id > ? AND json_type(details, '$.tls.peer_certificates') IS NOT NULL ORDER BY id LIMIT ?`, last, rewriteBatch)
		if err != nil {
			return err
		}
		var batch []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.details); err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, r)
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return err
		}
		rows.Close()
		if len(batch) == 0 {
			return nil
		}
		for _, r := range batch {
			var d observationDetails
			if err := json.Unmarshal([]byte(r.details), &d); err != nil {
				return fmt.Errorf("observation %d: decoding details: %w", r.id, err)
			}
			o := Observation{DNS: d.DNS, TCP: d.TCP, TLS: d.TLS, STUN: d.STUN, Confirmation: d.Confirmation, PortCheck: d.PortCheck}
			details, chain, err := encodeDetails(&o)
			if err != nil {
				return fmt.Errorf("observation %d: encoding details: %w", r.id, err)
			}
			if _, err := storeChain(ctx, tx, chain); err != nil {
				return fmt.Errorf("observation %d: %w", r.id, err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE observations SET details = ? WHERE id = ?`, string(details), r.id); err != nil {
				return fmt.Errorf("observation %d: %w", r.id, err)
			}
		}
		last = batch[len(batch)-1].id
	}
}

// deleteUnusedChains deletes the chains no observation names any more
// (their observations were pruned), in a row or in a pack.
func deleteUnusedChains(ctx context.Context, db execer, version int) error {
	packed := ""
	if version >= packsVersion {
		packed = ` UNION SELECT j.value FROM observation_packs p, json_each(p.chains) j`
	}
	_, err := db.ExecContext(ctx, `DELETE FROM chains WHERE sha256 NOT IN
	(SELECT details ->> '$.chain' FROM observations WHERE details ->> '$.chain' IS NOT NULL`+packed+`)`)
	return err
}
