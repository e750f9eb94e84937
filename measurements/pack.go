package measurements

// # Packed observations
//
// A run's observations are written one row each while the run goes on,
// so that a crash loses at most the steps in flight. Once the run has
// ended, its rows are packed: one row of observation_packs holds them
// all, encoded by encodePack, and the rows are deleted in the same
// transaction (packRun). A run of the default catalog is about 125 KB of
// JSON as rows and about 8 KB packed: its observations repeat each other
// (the same names, addresses, answers and server names from every
// resolver and every handshake), which no single row can exploit. Each
// row compressed alone, even against a preset dictionary made of the very
// runs it was tried on, still took about 100 bytes, 35 KB a run, before a
// row's own header, keys, index entries and page slack.
//
// A pack is one byte of format, then the uvarint length of its JSON and
// the uvarint count of its observations, then the JSON, compressed with
// DEFLATE (compress/flate). The JSON is an array of packedObservation:
// the columns of a row and, under "details", the row's details JSON as it
// was stored, so a field added to a details struct needs no change here,
// and a field only a newer reachprobe knows is kept as it is. Certificate
// chains stay in chains, named by hash as in a row. The format byte
// versions the encoding: a reader refuses a format it does not know, and
// a new format is added beside the old ones, which stay readable.
//
// Packing builds the JSON from the rows' columns and their details text,
// without decoding the details, and checks the pack before any row is
// deleted: the JSON must be valid and the pack must inflate to it. A run
// whose JSON would exceed maxPackJSON stays as rows. Readers read both
// forms, so a run is always whole in one or the other, and packing can
// stop between any two runs and resume (packEndedRuns).

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Formats of a pack, its first byte. Never reuse a number.
const (
	// packDeflateJSON: the JSON array of packedObservation, DEFLATE.
	packDeflateJSON byte = 1
)

// maxPackJSON caps the JSON of one pack, written or read. A run of the
// default catalog is about 125 KB; a network flooding every lookup with
// late answers (MaxLateResponses of 64 KB each) could make one of about
// 80 MB. A larger run stays as rows, and a pack claiming more is refused
// before it is inflated, so a damaged file cannot make a reader allocate
// without limit.
const maxPackJSON = 128 << 20

// minObservationJSON is fewer bytes than the JSON of one packed
// observation can take ({"id":1,"step":""} and a comma, details aside): a
// pack claiming more observations than its JSON can hold is damaged.
const minObservationJSON = 19

// packPrealloc is the most inflatePack allocates on a pack's word: a run
// of the default catalog fits, and a damaged length costs no more.
const packPrealloc = 1 << 20

// packCompression is the DEFLATE level of new packs: the best ratio costs
// little more time than the default on the small packs of one run.
const packCompression = flate.BestCompression

// errCannotPack: the run's observations would make too big a pack, or do
// not follow its pack's; they stay as rows.
var errCannotPack = errors.New("observations left as rows")

// packedObservation is one observation of a pack: an Observation without
// its RunID (the pack's), its times as stored in rows, and its details.
type packedObservation struct {
	packedColumns
	Details observationDetails `json:"details"`
}

// packedColumns are the columns of an observation's row but its run and
// its details.
type packedColumns struct {
	ID        int64  `json:"id"`
	Step      Step   `json:"step"`
	Group     string `json:"group,omitempty"`
	Target    string `json:"target,omitempty"`
	Host      string `json:"host,omitempty"`
	Address   string `json:"address,omitempty"`
	Port      int    `json:"port,omitempty"`
	Transport string `json:"transport,omitempty"`
	Repeat    int    `json:"repeat,omitempty"`
	Control   bool   `json:"control,omitempty"`
	// Started is UTC unix nanoseconds, absent for an observation without
	// a start time.
	Started   *int64 `json:"started,omitempty"`
	Duration  int64  `json:"duration_ns,omitempty"`
	Failure   string `json:"failure,omitempty"`
	Operation string `json:"operation,omitempty"`
	Skipped   string `json:"skipped,omitempty"`
}

// appendPacked appends to js the JSON of one packedObservation: c, and
// details, the JSON object of its details as a row stores it.
func appendPacked(js []byte, c *packedColumns, details []byte) ([]byte, error) {
	cols, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	js = append(js, cols[:len(cols)-1]...) // without its closing brace
	js = append(js, `,"details":`...)
	js = append(js, details...)
	return append(js, '}'), nil
}

// encodePack makes a pack of js, the JSON array of count observations in
// order of ID, and checks that it inflates to js.
func encodePack(js []byte, count int) ([]byte, error) {
	if len(js) > maxPackJSON {
		return nil, fmt.Errorf("%w: %d bytes of JSON, more than a pack holds (%d)", errCannotPack, len(js), maxPackJSON)
	}
	if !json.Valid(js) {
		return nil, errors.New("packing observations: the JSON made of them is not valid")
	}
	blob := []byte{packDeflateJSON}
	blob = binary.AppendUvarint(blob, uint64(len(js)))
	blob = binary.AppendUvarint(blob, uint64(count))
	buf := bytes.NewBuffer(blob)
	w, err := flate.NewWriter(buf, packCompression)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(js); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	back, n, err := inflatePack(buf.Bytes())
	if err != nil || n != uint64(count) || !bytes.Equal(back, js) {
		return nil, fmt.Errorf("packing observations: the pack does not inflate to its JSON (%v)", err)
	}
	return buf.Bytes(), nil
}

// decodePack is encodePack's inverse. The bytes come from a file that may
// be damaged: anything malformed is an error, never a panic, and no more
// than maxPackJSON is inflated.
func decodePack(blob []byte) ([]packedObservation, error) {
	js, count, err := inflatePack(blob)
	if err != nil {
		return nil, err
	}
	var obs []packedObservation
	if err := json.Unmarshal(js, &obs); err != nil {
		return nil, fmt.Errorf("malformed pack: %w", err)
	}
	if uint64(len(obs)) != count {
		return nil, fmt.Errorf("malformed pack: %d observations, its header says %d", len(obs), count)
	}
	for i := 1; i < len(obs); i++ {
		if obs[i].ID <= obs[i-1].ID {
			return nil, fmt.Errorf("malformed pack: observation %d after %d", obs[i].ID, obs[i-1].ID)
		}
	}
	return obs, nil
}

// inflatePack checks a pack's header and returns its JSON and how many
// observations the header says it holds.
func inflatePack(blob []byte) (js []byte, count uint64, err error) {
	if len(blob) == 0 {
		return nil, 0, errors.New("malformed pack: empty")
	}
	if blob[0] != packDeflateJSON {
		return nil, 0, fmt.Errorf("pack format %d is unknown to this reachprobe (a newer one wrote it?)", blob[0])
	}
	rest := blob[1:]
	size, n := binary.Uvarint(rest)
	if n <= 0 || size > maxPackJSON {
		return nil, 0, errors.New("malformed pack: bad length")
	}
	rest = rest[n:]
	count, n = binary.Uvarint(rest)
	if n <= 0 || count > size/minObservationJSON+1 {
		return nil, 0, errors.New("malformed pack: bad count")
	}
	rest = rest[n:]
	// Read one byte past the stated length to tell a longer stream. The
	// stated length is trusted for an allocation up to packPrealloc only:
	// beyond, the buffer grows as the data comes.
	buf := bytes.NewBuffer(make([]byte, 0, min(size+1, packPrealloc)))
	if _, err := buf.ReadFrom(io.LimitReader(flate.NewReader(bytes.NewReader(rest)), int64(size)+1)); err != nil {
		return nil, 0, fmt.Errorf("malformed pack: %w", err)
	}
	js = buf.Bytes()
	if uint64(len(js)) != size {
		return nil, 0, fmt.Errorf("malformed pack: %d bytes of JSON, its header says %d", len(js), size)
	}
	return js, count, nil
}

// observation is p as an Observation of run runID; the details are p's,
// shared.
func (p *packedObservation) observation(runID int64) Observation {
	o := Observation{ID: p.ID, RunID: runID, Step: p.Step, Group: p.Group, Target: p.Target, Host: p.Host,
		Address: p.Address, Port: p.Port, Transport: p.Transport, Repeat: p.Repeat, Control: p.Control,
		Duration: time.Duration(p.Duration), Failure: p.Failure, Operation: p.Operation, Skipped: p.Skipped}
	if p.Started != nil {
		o.Started = fromUnixNanos(*p.Started)
	}
	d := &p.Details
	o.DNS, o.TCP, o.TLS, o.STUN, o.Arrival, o.Trace = d.DNS, d.TCP, d.TLS, d.STUN, d.Arrival, d.Trace
	o.Confirmation, o.PortCheck = d.Confirmation, d.PortCheck
	return o
}
