package analysis

import (
	"bytes"
	"encoding/json"
	"testing"
)

// smallInput is a seed for FuzzAnalyze: one target, a lookup and a
// handshake, in the stored JSON form.
const smallInput = `{"run":{"ID":7,"Status":"complete"},
"targets":[{"Name":"gsa","Group":"identity","Host":"gsa.apple.com","Ports":[443],"Transports":["tcp","tls"],
  "ServerName":"gsa.apple.com","ControlServerName":"www.example.com","Networks":["17.0.0.0/8"]}],
"observations":[
 {"Step":"dns","Group":"identity","Target":"gsa","Host":"gsa.apple.com","DNS":{"engine":"udp","resolver":"192.168.1.1:53","query_type":"A","rcode":"NXDOMAIN"},"Failure":"dns_nxdomain_error"},
 {"Step":"dns","Group":"identity","Target":"gsa","Host":"gsa.apple.com","Control":true,"DNS":{"engine":"doh","resolver":"https://doh.example/dns-query","query_type":"A","rcode":"NOERROR","answers":[{"name":"gsa.apple.com.","type":"A","data":"17.32.195.40","ttl":300}],
   "late":[{"rcode":"NOERROR","answers":[{"name":"gsa.apple.com.","type":"A","data":"::ffff:10.0.0.1","ttl":1}],"delay":5}]}},
 {"Step":"tcp","Group":"identity","Target":"gsa","Host":"gsa.apple.com","Address":"17.32.195.40","Port":443,"Transport":"tcp"},
 {"Step":"tls","Group":"identity","Target":"gsa","Host":"gsa.apple.com","Address":"17.32.195.40","Port":443,"Transport":"tcp","Control":true,"Failure":"ssl_invalid_hostname","TLS":{"network":"tcp","server_name":"www.example.com","peer_certificates":["AAEC"],"verified":false}},
 {"Step":"tls","Group":"identity","Target":"gsa","Host":"gsa.apple.com","Address":"17.32.195.40","Port":443,"Transport":"tcp","Failure":"connection_reset","Operation":"tls_handshake","TLS":{"network":"tcp","server_name":"gsa.apple.com","verified":false}},
 {"Step":"udp","Group":"call","Target":"relay","Host":"relay.example","Address":"2001:db8::1","Port":70000,"Repeat":-1,"STUN":{"expect_answer":true}},
 {"Step":"quic","Group":"quic","Target":"mask","Host":"mask.icloud.com","Address":"17.248.180.10","Port":443,"Failure":"ssl_unknown_authority","TLS":{"network":"udp","peer_certificates":[""]}}
]}`

// FuzzAnalyze feeds Analyze stored inputs, valid or not: it must not panic,
// must encode, and must never call anything blocked when it says nothing
// could be reached.
func FuzzAnalyze(f *testing.F) {
	f.Add([]byte(smallInput))
	f.Add([]byte(`{"observations":[{"Step":"tcp","Address":"::ffff:17.0.0.1","Failure":"generic_timeout_error"}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var in Input
		if json.Unmarshal(data, &in) != nil {
			return
		}
		rep := Analyze(in)
		if _, err := json.Marshal(rep); err != nil {
			t.Fatalf("report does not encode: %v", err)
		}
		var b bytes.Buffer
		if err := rep.WriteText(&b); err != nil {
			t.Fatalf("WriteText: %v", err)
		}
		checkInvariants(t, rep)
		h := History([]RunVerdicts{{Run: in.Run, Report: rep}, {Run: in.Run, Report: rep}})
		if err := h.WriteText(&b); err != nil {
			t.Fatalf("history WriteText: %v", err)
		}
	})
}

// checkInvariants holds for every report.
func checkInvariants(t *testing.T, rep Report) {
	t.Helper()
	if rep.Network.Status == NetworkNoConnectivity {
		assertNothingBlocked(t, rep)
	}
	for _, e := range rep.Endpoints {
		if (e.Verdict == VerdictBlocked) != (e.Method != "") {
			t.Errorf("endpoint %s %s:%d: verdict %s, method %q", e.Target, e.Address, e.Port, e.Verdict, e.Method)
		}
		if e.Successes > e.Attempts {
			t.Errorf("endpoint %s %s:%d: %d successes of %d attempts", e.Target, e.Address, e.Port, e.Successes, e.Attempts)
		}
	}
	for _, s := range rep.Services {
		if (s.Verdict == VerdictBlocked || s.Verdict == VerdictDegraded) != (len(s.Methods) > 0) {
			t.Errorf("service %s: verdict %s, methods %v", s.Service, s.Verdict, s.Methods)
		}
	}
}

func TestInvariantsOnScenarios(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) { checkInvariants(t, Analyze(sc.world().build())) })
	}
}

// FuzzParseLeaf feeds the certificate reader untrusted DER.
func FuzzParseLeaf(f *testing.F) {
	cas()
	f.Add(appleCA.leaf("courier.push.apple.com"))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, der []byte) {
		leaf, ok := parseLeaf([][]byte{der, der})
		if ok && leaf.issuer == "" && leaf.cert.Issuer.String() != "" {
			t.Errorf("parsed a certificate with issuer %q but no name for people", leaf.cert.Issuer.String())
		}
		_ = leaf.covers("courier.push.apple.com")
		if ok {
			_ = signedBy(leaf, appleAuthorities())
		}
	})
}
