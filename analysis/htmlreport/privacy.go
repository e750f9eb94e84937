package htmlreport

import (
	"net/netip"

	"github.com/reachprobe/reachprobe/measurements"
)

// scrubber removes from free text every IP address that is not one the
// latest run measured or was given by DNS. The probe's own address is not
// part of the Input, and the caller scrubs what it passes; this is the
// second lock: evidence sentences, failure text and certificate names come
// from the network, and an address in them that is not a server's (the
// probe's, a LAN device's, a resolver's) never reaches the page.
type scrubber struct {
	keep map[netip.Addr]bool
}

func newScrubber(in Input) scrubber {
	s := scrubber{keep: map[netip.Addr]bool{}}
	add := func(text string) {
		if a, err := netip.ParseAddr(text); err == nil {
			s.keep[a.Unmap()] = true
		}
	}
	for _, o := range in.Evidence {
		add(o.Address)
		if o.DNS == nil {
			continue
		}
		for _, ans := range o.DNS.Answers {
			add(ans.Data)
		}
		for _, late := range o.DNS.Late {
			for _, ans := range late.Answers {
				add(ans.Data)
			}
		}
	}
	if len(in.Runs) > 0 {
		rep := in.Runs[len(in.Runs)-1].Report
		for _, e := range rep.Endpoints {
			add(e.Address)
		}
		for _, d := range rep.DNS {
			for _, list := range [][]string{d.ResolverAnswers, d.ControlAnswers, d.Forged} {
				for _, a := range list {
					add(a)
				}
			}
		}
	}
	return s
}

// text scrubs one string.
func (s scrubber) text(x string) string {
	return measurements.ScrubExcept(x, func(a netip.Addr) bool { return s.keep[a.Unmap()] })
}

// all scrubs a list, returning a new one.
func (s scrubber) all(xs []string) []string {
	if xs == nil {
		return nil
	}
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = s.text(x)
	}
	return out
}

// scrubView scrubs every string of v that comes from the network or from
// analysis's free text. Strings this package writes (times, counts,
// coordinates) hold no address and are left alone.
func (s scrubber) scrubView(v *view) {
	for i := range v.Cards {
		c := &v.Cards[i]
		c.Reason = s.text(c.Reason)
	}
	l := &v.Latest
	l.NetReason, l.Notes = s.text(l.NetReason), s.all(l.Notes)
	for i := range v.Services {
		r := &v.Services[i]
		r.Reason, r.Methods, r.Evidence = s.text(r.Reason), s.text(r.Methods), s.all(r.Evidence)
		for j := range r.Targets {
			t := &r.Targets[j]
			t.Host, t.Method, t.Reason = s.text(t.Host), s.text(t.Method), s.text(t.Reason)
		}
	}
	for _, rows := range [][]endpointRow{v.Endpoints.Problems, v.Endpoints.Working} {
		for i := range rows {
			r := &rows[i]
			r.Host, r.Method, r.Failure, r.Operation = s.text(r.Host), s.text(r.Method), s.text(r.Failure), s.text(r.Operation)
			r.Control, r.Evidence, r.Timings = s.text(r.Control), s.text(r.Evidence), s.all(r.Timings)
			for j := range r.Certs {
				c := &r.Certs[j]
				c.Path, c.Subject, c.Names, c.Issuer, c.Status = s.text(c.Path), s.text(c.Subject), s.text(c.Names), s.text(c.Issuer), s.text(c.Status)
			}
		}
	}
	for _, rows := range [][]dnsRow{v.DNS.Problems, v.DNS.Working} {
		for i := range rows {
			r := &rows[i]
			r.Host, r.Method, r.Failure, r.Evidence = s.text(r.Host), s.text(r.Method), s.text(r.Failure), s.text(r.Evidence)
		}
	}
}
