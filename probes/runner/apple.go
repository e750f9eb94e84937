package runner

import (
	"github.com/reachprobe/reachprobe/measurements"
	"github.com/reachprobe/reachprobe/probes/tlsprobe"
)

// appleFor returns the Apple authorities t's chains are verified against
// besides the system roots, or nil for a control host.
//
// A target is Apple's when the catalog puts it in one of Apple's groups
// (every group but control): the catalog is where a target's owner is
// declared, and a list of Apple's domains would need keeping up (Apple
// serves from apple.com, icloud.com, apple-dns.net, aaplimg.com and more)
// and would miss a test network's names. Control hosts are verified as
// any client verifies them, against the system roots alone.
func (r *Runner) appleFor(t *measurements.Target) *tlsprobe.AppleTrust {
	if t.Group == measurements.GroupControl {
		return nil
	}
	if r.Apple != nil {
		return r.Apple
	}
	return tlsprobe.EmbeddedApple()
}
