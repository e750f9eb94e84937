package measurements

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// samplePacked is sampleObservations as a pack holds them, chains named
// by hash.
func samplePacked(t testing.TB) []packedObservation {
	t.Helper()
	var out []packedObservation
	for i, o := range sampleObservations(1) {
		d, _, err := encodeDetails(&o)
		if err != nil {
			t.Fatal(err)
		}
		p := packedObservation{packedColumns: packedColumns{ID: int64(10 + i), Step: o.Step, Group: o.Group, Target: o.Target, Host: o.Host,
			Address: o.Address, Port: o.Port, Transport: o.Transport, Repeat: o.Repeat, Control: o.Control,
			Duration: int64(o.Duration), Failure: o.Failure, Operation: o.Operation, Skipped: o.Skipped}}
		if !o.Started.IsZero() {
			ns := o.Started.UnixNano()
			p.Started = &ns
		}
		if err := json.Unmarshal(d, &p.Details); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// packObservations packs obs as packRun would pack them from rows: the
// columns, then the details' JSON as a row holds it.
func packObservations(tb testing.TB, obs []packedObservation) []byte {
	tb.Helper()
	js := []byte{'['}
	for i := range obs {
		if i > 0 {
			js = append(js, ',')
		}
		details, err := json.Marshal(obs[i].Details)
		if err != nil {
			tb.Fatal(err)
		}
		if js, err = appendPacked(js, &obs[i].packedColumns, details); err != nil {
			tb.Fatal(err)
		}
	}
	blob, err := encodePack(append(js, ']'), len(obs))
	if err != nil {
		tb.Fatal(err)
	}
	return blob
}

func TestPackRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		obs  []packedObservation
	}{
		{"every kind of observation", samplePacked(t)},
		{"one bare observation", []packedObservation{{packedColumns: packedColumns{ID: 1, Step: StepUDP}}}},
		{"no observation", []packedObservation{}},
		{"text a terminal would act on", []packedObservation{{packedColumns: packedColumns{ID: 7, Step: StepTLS, Failure: "\x1b[2J\u202e\x00"},
			Details: observationDetails{TLS: &TLSDetails{ServerBytes: []byte("HTTP/1.1 200 OK\r\n\x00\xff")}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			blob := packObservations(t, tt.obs)
			if blob[0] != packDeflateJSON {
				t.Errorf("format byte %d, want %d", blob[0], packDeflateJSON)
			}
			got, err := decodePack(blob)
			if err != nil {
				t.Fatalf("decodePack: %v", err)
			}
			if len(got) != len(tt.obs) || len(got) > 0 && !reflect.DeepEqual(got, tt.obs) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tt.obs)
			}
		})
	}
}

// TestPackIsGenericOverDetails: every field of every details struct goes
// through a pack without the codec naming it, so a field added to one
// needs no change here. Each exported field is set to a non-zero value by
// reflection and must come back.
func TestPackIsGenericOverDetails(t *testing.T) {
	var d observationDetails
	fillNonZero(reflect.ValueOf(&d).Elem(), 0)
	in := []packedObservation{{packedColumns: packedColumns{ID: 1, Step: StepDNS}, Details: d}}
	blob := packObservations(t, in)
	got, err := decodePack(blob)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Errorf("round trip of every details field:\n got %+v\nwant %+v", got[0].Details, d)
	}
}

// fillNonZero sets every exported field reachable from v to a non-zero
// value, one element in each slice.
func fillNonZero(v reflect.Value, depth int) {
	if depth > 8 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillNonZero(v.Elem(), depth+1)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillNonZero(v.Field(i), depth+1)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fillNonZero(v.Index(0), depth+1)
	case reflect.String:
		v.SetString("x" + strings.Repeat("y", depth))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(depth + 1))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(depth + 1))
	}
}

// deflated compresses js as a pack's stream.
func deflated(t testing.TB, js []byte) []byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestSpeed)
	w.Write(js)
	w.Close()
	return buf.Bytes()
}

// rawPack makes a pack of format, stated JSON length and count, and
// stream, whatever they are.
func rawPack(format byte, size, count uint64, stream []byte) []byte {
	b := []byte{format}
	b = binary.AppendUvarint(b, size)
	b = binary.AppendUvarint(b, count)
	return append(b, stream...)
}

func TestDecodePackErrors(t *testing.T) {
	js := []byte(`[{"id":1,"step":"dns"},{"id":2,"step":"tcp"}]`)
	good := rawPack(packDeflateJSON, uint64(len(js)), 2, deflated(t, js))
	if _, err := decodePack(good); err != nil {
		t.Fatalf("the well-formed pack: %v", err)
	}
	bomb := deflated(t, bytes.Repeat([]byte{' '}, 4<<20))
	tests := []struct {
		name, blob, want string
	}{
		{"empty", "", "empty"},
		{"unknown format", string(rawPack(99, uint64(len(js)), 2, deflated(t, js))), "format 99 is unknown"},
		{"no length", string([]byte{packDeflateJSON}), "bad length"},
		{"length over the cap", string(rawPack(packDeflateJSON, maxPackJSON+1, 1, deflated(t, js))), "bad length"},
		{"count the JSON cannot hold", string(rawPack(packDeflateJSON, uint64(len(js)), 1000, deflated(t, js))), "bad count"},
		{"count that differs", string(rawPack(packDeflateJSON, uint64(len(js)), 1, deflated(t, js))), "header says 1"},
		{"stream cut short", string(good[:len(good)-4]), "malformed pack"},
		{"stream longer than stated", string(rawPack(packDeflateJSON, uint64(len(js))-1, 2, deflated(t, js))), "header says"},
		{"more inflated than stated (a bomb)", string(rawPack(packDeflateJSON, 1000, 1, bomb)), "header says 1000"},
		{"not JSON", string(rawPack(packDeflateJSON, 3, 0, deflated(t, []byte("abc")))), "malformed pack"},
		{"ids out of order", string(rawPack(packDeflateJSON, uint64(len(js)), 2, deflated(t, []byte(`[{"id":2,"step":"dns"},{"id":1,"step":"tcp"}]`)))), "observation 1 after 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodePack([]byte(tt.blob))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("decodePack = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// FuzzDecodePack: the bytes of a pack come from a file that may be
// damaged. decodePack never panics, never inflates more than maxPackJSON,
// and what it accepts encodes to a pack that decodes to the same.
func FuzzDecodePack(f *testing.F) {
	f.Add(packObservations(f, samplePacked(f)))
	f.Add(rawPack(packDeflateJSON, 2, 0, deflated(f, []byte("[]"))))
	f.Add([]byte{packDeflateJSON, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		obs, err := decodePack(b)
		if err != nil {
			return
		}
		back, err := decodePack(packObservations(t, obs))
		if err != nil || len(back) != len(obs) || len(obs) > 0 && !reflect.DeepEqual(back, obs) {
			t.Errorf("re-encoded pack decodes to %d observations (%v), want the %d accepted", len(back), err, len(obs))
		}
	})
}

func TestMergeByID(t *testing.T) {
	obs := func(ids ...int64) []packedObservation {
		var out []packedObservation
		for _, id := range ids {
			out = append(out, packedObservation{packedColumns: packedColumns{ID: id}})
		}
		return out
	}
	ids := func(obs []packedObservation) []int64 {
		var out []int64
		for _, o := range obs {
			out = append(out, o.ID)
		}
		return out
	}
	tests := []struct {
		name         string
		packed, rows []packedObservation
		want         []int64
	}{
		{"rows only", nil, obs(1, 2), []int64{1, 2}},
		{"pack only", obs(1, 2), nil, []int64{1, 2}},
		{"rows after the pack", obs(1, 2), obs(3, 4), []int64{1, 2, 3, 4}},
		{"packed while read: in both", obs(1, 2, 3), obs(1, 2, 3), []int64{1, 2, 3}},
		{"packed again while read", obs(1, 2, 3, 4), obs(3, 4), []int64{1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ids(mergeByID(tt.packed, tt.rows)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("mergeByID = %v, want %v", got, tt.want)
			}
		})
	}
}
