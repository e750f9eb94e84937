package htmlreport

import (
	"strings"
	"testing"
)

// TestPathRow checks that a blocked service whose stop a trace placed is
// drawn as a row of hops (the client, the hop with its AS, Apple), and
// that no hop address reaches the page, not even from the evidence.
func TestPathRow(t *testing.T) {
	tests := []struct {
		scenario string
		want     []string
	}{
		{"call_path_dropped_in_isp", []string{`<ol class="path"`, "Your device", "hop 1", "hop 2", "AS64500 Example ISP, the network you are on: stops here", "Apple"}},
		{"call_path_dropped_at_home", []string{`<ol class="path"`, "hop 1", "your own network (a private address): stops here"}},
		{"quic_path_dropped_in_isp", []string{`<ol class="path"`, "hop 2", "AS64500 Example ISP, the network you are on: stops here", "Apple"}},
		{"call_payload_path_dropped_in_isp", []string{`<ol class="path"`, "hop 2", "AS64500 Example ISP, the network you are on: stops here", "Apple"}},
		{"push_sni_reset_in_isp", []string{`<ol class="path"`, "hop 1", "hop 2", "AS64500 Example ISP, the network you are on: the reset is injected past it", "reached, the name&#39;s handshake cut"}},
		{"push_5223_drop_in_isp", []string{`<ol class="path"`, "hop 2", "AS64500 Example ISP, the network you are on: stops here"}},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			page := string(render(t, singleInput(t, tt.scenario)))
			for _, w := range tt.want {
				if !strings.Contains(page, w) {
					t.Errorf("the page lacks %q", w)
				}
			}
			for _, hop := range []string{"192.168.77.1", "198.51.100.1", "198.51.100.9", "203.0.113.7"} {
				if strings.Contains(page, hop) {
					t.Errorf("the page shows hop address %s", hop)
				}
			}
		})
	}
	t.Run("no row without a placed stop", func(t *testing.T) {
		for _, sc := range []string{"call_path_no_icmp", "quic_path_no_icmp", "call_payload_path_no_icmp"} {
			if page := string(render(t, singleInput(t, sc))); strings.Contains(page, `<ol class="path"`) {
				t.Errorf("%s: a path row where no trace placed a stop", sc)
			}
		}
		// A stop that is this network's policy blocks nothing: no row
		// (the endpoint's words say where), and no hop address either.
		for _, sc := range []string{"quic_path_closed_for_all", "call_payload_path_filtered_for_all"} {
			page := string(render(t, singleInput(t, sc)))
			for _, hop := range []string{"192.168.77.1", "198.51.100.1", "198.51.100.9", "203.0.113.7"} {
				if strings.Contains(page, hop) {
					t.Errorf("%s: the page shows hop address %s", sc, hop)
				}
			}
		}
	})
}
