package arrival

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseVersionNegotiation(t *testing.T) {
	dcid, scid := []byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{9, 10, 11, 12}
	many := make([]uint32, maxVNVersions+3)
	for i := range many {
		many[i] = uint32(i + 1)
	}
	tests := []struct {
		name    string
		b       []byte
		wantErr error
		want    VersionNegotiation
	}{
		{"two versions", AppendVersionNegotiation(nil, dcid, scid, 1, 0x6b3343cf), nil,
			VersionNegotiation{DCID: scid, SCID: dcid, Versions: []uint32{1, 0x6b3343cf}}},
		{"capped", AppendVersionNegotiation(nil, dcid, scid, many...), nil,
			VersionNegotiation{DCID: scid, SCID: dcid, Versions: many[:maxVNVersions], More: 3}},
		{"empty IDs", AppendVersionNegotiation(nil, nil, nil, 1), nil,
			VersionNegotiation{DCID: []byte{}, SCID: []byte{}, Versions: []uint32{1}}},
		{"short header", []byte{0x40, 0, 0, 0, 0, 0, 0}, ErrNotVN, VersionNegotiation{}},
		{"version 1 packet", []byte{0xc0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1}, ErrNotVN, VersionNegotiation{}},
		{"no versions", AppendVersionNegotiation(nil, dcid, scid), ErrBadVN, VersionNegotiation{}},
		{"partial version", append(AppendVersionNegotiation(nil, dcid, scid, 1), 0), ErrBadVN, VersionNegotiation{}},
		{"ID past the end", []byte{0x80, 0, 0, 0, 0, 20, 1}, ErrBadVN, VersionNegotiation{}},
		{"too short", []byte{0x80, 0, 0}, ErrNotVN, VersionNegotiation{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseVersionNegotiation(tt.b)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestVersionNegotiationCheck(t *testing.T) {
	dcid, scid := []byte{1, 1, 1, 1}, []byte{2, 2, 2, 2}
	const sent = 0x1a2a3a4a
	tests := []struct {
		name string
		vn   []byte
		want string
	}{
		{"echoes our IDs", AppendVersionNegotiation(nil, dcid, scid, 1), VNValid},
		{"IDs not swapped", AppendVersionNegotiation(nil, scid, dcid, 1), VNWrongIDs},
		{"other IDs", AppendVersionNegotiation(nil, []byte{3}, scid, 1), VNWrongIDs},
		{"lists the version sent", AppendVersionNegotiation(nil, dcid, scid, 1, sent), VNListsSentVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vn, err := ParseVersionNegotiation(tt.vn)
			if err != nil {
				t.Fatal(err)
			}
			if got := vn.Check(dcid, scid, sent); got != tt.want {
				t.Errorf("Check = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParseVersionNegotiation(f *testing.F) {
	f.Add(AppendVersionNegotiation(nil, []byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{9}, 1, 0x6b3343cf))
	f.Add(AppendVersionNegotiation(nil, nil, nil, 1))
	f.Add(NewReservedInitial().Wire)
	f.Add([]byte{0x80, 0, 0, 0, 0, 255})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		vn, err := ParseVersionNegotiation(b)
		if err != nil {
			return
		}
		if len(vn.Versions) > maxVNVersions || len(vn.DCID) > maxConnIDLen || len(vn.SCID) > maxConnIDLen {
			t.Fatalf("%+v exceeds the caps", vn)
		}
		// Re-encoding what was kept parses to the same thing when
		// nothing was capped.
		if vn.More == 0 {
			re := AppendVersionNegotiation(nil, vn.SCID, vn.DCID, vn.Versions...)
			vn2, err := ParseVersionNegotiation(re)
			if err != nil || !reflect.DeepEqual(vn2, vn) {
				t.Fatalf("round trip of %+v = %+v, %v", vn, vn2, err)
			}
		}
		_ = vn.Check(vn.SCID, vn.DCID, 1)
	})
}
