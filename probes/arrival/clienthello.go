package arrival

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"errors"
)

// TLS constants of the ClientHello (RFC 8446, RFC 9001 §8.2).
const (
	extServerName          = 0
	extSupportedGroups     = 10
	extSignatureAlgorithms = 13
	extALPN                = 16
	extSupportedVersions   = 43
	extPSKModes            = 45
	extKeyShare            = 51
	extQUICTransportParams = 57
	groupX25519            = 0x001d
	groupP256              = 0x0017
)

// clientHello returns a TLS 1.3 ClientHello handshake message for a QUIC
// v1 Initial: the three TLS 1.3 suites, an X25519 key share, serverName
// in SNI (IP literals included), alpn, and the transport parameters a
// client must send (initial_source_connection_id = scid). It carries no
// pre-shared key: FaceTime's relay client has one from IDS, a probe
// without an Apple account has none, so a relay can tell this Initial
// from a real call's only after decrypting it.
func clientHello(serverName string, alpn []string, scid []byte) ([]byte, error) {
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	var ext []byte
	if serverName != "" {
		if len(serverName) > 255 {
			return nil, errors.New("arrival: server name too long")
		}
		name := []byte{0} // host_name
		name = appendU16Bytes(name, []byte(serverName))
		ext = appendExt(ext, extServerName, appendU16Bytes(nil, name))
	}
	ext = appendExt(ext, extSupportedGroups, appendU16Bytes(nil, u16s(groupX25519, groupP256)))
	ext = appendExt(ext, extSignatureAlgorithms, appendU16Bytes(nil, u16s(
		0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601, 0x0807)))
	if len(alpn) > 0 {
		var list []byte
		for _, p := range alpn {
			if len(p) == 0 || len(p) > 255 {
				return nil, errors.New("arrival: ALPN protocol must be 1 to 255 bytes")
			}
			list = append(list, byte(len(p)))
			list = append(list, p...)
		}
		ext = appendExt(ext, extALPN, appendU16Bytes(nil, list))
	}
	ext = appendExt(ext, extSupportedVersions, []byte{2, 0x03, 0x04})
	ext = appendExt(ext, extPSKModes, []byte{1, 1}) // psk_dhe_ke
	share := binary.BigEndian.AppendUint16(nil, groupX25519)
	share = appendU16Bytes(share, key.PublicKey().Bytes())
	ext = appendExt(ext, extKeyShare, appendU16Bytes(nil, share))
	ext = appendExt(ext, extQUICTransportParams, transportParameters(scid))

	body := []byte{0x03, 0x03} // legacy_version
	body = append(body, randomBytes(32)...)
	body = append(body, 0) // empty legacy_session_id, as QUIC requires
	body = appendU16Bytes(body, u16s(0x1301, 0x1302, 0x1303))
	body = append(body, 1, 0) // null compression only
	body = appendU16Bytes(body, ext)

	msg := []byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
	return append(msg, body...), nil
}

// transportParameters are a plain client's QUIC transport parameters
// (RFC 9000 §18.2).
func transportParameters(scid []byte) []byte {
	var b []byte
	param := func(id uint64, v []byte) {
		b = appendVarint(b, id)
		b = appendVarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	num := func(v uint64) []byte { return appendVarint(nil, v) }
	param(0x01, num(30000))   // max_idle_timeout, ms
	param(0x04, num(1<<20))   // initial_max_data
	param(0x05, num(512<<10)) // initial_max_stream_data_bidi_local
	param(0x06, num(512<<10)) // initial_max_stream_data_bidi_remote
	param(0x07, num(512<<10)) // initial_max_stream_data_uni
	param(0x08, num(100))     // initial_max_streams_bidi
	param(0x09, num(100))     // initial_max_streams_uni
	param(0x0f, scid)         // initial_source_connection_id
	return b
}

func appendExt(b []byte, typ uint16, data []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, typ)
	return appendU16Bytes(b, data)
}

func appendU16Bytes(b, data []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

func u16s(vs ...uint16) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b
}
