package analysis

import (
	"net/netip"

	"github.com/reachprobe/reachprobe/measurements"
)

// A series is one step repeated: the same target, address, port, step and
// server name (target or control) in every repetition of a run. Series are
// the reference paths verdicts lean on ("the control host connected in
// every try") and the way packet loss shows (a series that fails only in
// some tries).
type series struct {
	target    *measurements.Target
	address   string
	addr      netip.Addr
	port      int
	step      measurements.Step
	control   bool
	attempts  int
	successes int // the server was reached (see reached)
	verified  int // TLS and QUIC: the chain verified for the target name
	tainted   bool
	// confirmed: measured in the run's confirmation pass too.
	confirmed bool
}

// steady reports whether the series succeeded in every try.
func (s *series) steady() bool { return s.attempts > 0 && s.successes == s.attempts }

// flaky reports whether the series succeeded in some tries and failed in
// others.
func (s *series) flaky() bool { return s.attempts > 1 && s.successes > 0 && s.successes < s.attempts }

// reached reports whether an observation got an answer from the server:
// a connect, a handshake (even one whose chain did not verify: the server
// presented it), a STUN response.
func reached(o *measurements.Observation) bool {
	if o == nil || o.Skipped != "" {
		return false
	}
	if o.Failure == "" {
		return true
	}
	return isCertFailure(o.Failure) && o.TLS != nil && len(o.TLS.PeerCertificates) > 0
}

// verified reports whether a handshake completed with a chain that
// verified for its server name.
func verified(o *measurements.Observation) bool {
	return o != nil && o.Failure == "" && o.Skipped == "" && o.TLS != nil && o.TLS.Verified
}

// seriesSet holds every series of a run.
type seriesSet struct {
	all []*series
	// confirmedOnly, while set, makes find skip series the confirmation
	// pass did not measure: an endpoint measured again after a pause is
	// judged only against references measured in that pass too, so that
	// a burst of loss during it cannot pass for a pattern that held.
	confirmedOnly bool
}

type seriesKey struct {
	target, address string
	port            int
	step            measurements.Step
	control         bool
}

func buildSeries(ix *index) *seriesSet {
	byKey := map[seriesKey]*series{}
	set := &seriesSet{}
	add := func(e *endpointObs, o *measurements.Observation, confirm bool) {
		if o == nil {
			return
		}
		k := seriesKey{e.key.target, e.key.address, o.Port, o.Step, o.Control}
		s := byKey[k]
		if s == nil {
			s = &series{target: e.target, address: e.key.address, addr: e.addr, port: o.Port, step: o.Step, control: o.Control}
			byKey[k] = s
			set.all = append(set.all, s)
		}
		s.attempts++
		s.confirmed = s.confirmed || confirm
		if reached(o) {
			s.successes++
		}
		if verified(o) {
			s.verified++
		}
	}
	for _, k := range ix.endpointIDs {
		e := ix.endpoints[k]
		for _, a := range e.attempts {
			add(e, a.connect, a.confirm)
			add(e, a.control, a.confirm)
			add(e, a.main, a.confirm)
		}
	}
	return set
}

// taint marks the series of a forged address of target: what answers
// there (a block page, nothing) says nothing about the real servers.
func (ss *seriesSet) taint(target string, addr netip.Addr) {
	for _, s := range ss.all {
		if s.target.Name == target && s.addr == addr {
			s.tainted = true
		}
	}
}

// find returns the first untainted series satisfying pred.
func (ss *seriesSet) find(pred func(*series) bool) *series {
	for _, s := range ss.all {
		if !s.tainted && (s.confirmed || !ss.confirmedOnly) && pred(s) {
			return s
		}
	}
	return nil
}

// controlTCP returns a control host's connect that worked in every try,
// over the family fam.
func (ss *seriesSet) controlTCP(fam string) *series {
	return ss.find(func(s *series) bool {
		return s.target.Group == measurements.GroupControl && s.step == measurements.StepTCP &&
			family(s.addr) == fam && s.steady()
	})
}

// controlTLS returns a control host's handshake (with its own name) that
// verified in every try.
func (ss *seriesSet) controlTLS(fam string) *series {
	return ss.find(func(s *series) bool {
		return s.target.Group == measurements.GroupControl && s.step == measurements.StepTLS && !s.control &&
			family(s.addr) == fam && s.attempts > 0 && s.verified == s.attempts
	})
}

// otherUDP returns evidence that UDP gets through over fam: a control STUN
// server that answered in every try, or a QUIC handshake that reached its
// server in every try, other than at exclude.
func (ss *seriesSet) otherUDP(fam string, exclude netip.Addr) *series {
	if s := ss.find(func(s *series) bool {
		return s.target.Group == measurements.GroupControl && s.step == measurements.StepUDP &&
			s.addr != exclude && family(s.addr) == fam && s.steady()
	}); s != nil {
		return s
	}
	return ss.otherQUIC(fam, exclude)
}

// controlSTUNOn returns a control STUN server's series on port over fam
// (the first, steady ones first), or nil: the same port toward a
// destination that is not Apple's and is known to answer.
func (ss *seriesSet) controlSTUNOn(fam string, port int) *series {
	var found *series
	for _, s := range ss.all {
		if s.tainted || s.target.Group != measurements.GroupControl || s.step != measurements.StepUDP ||
			s.port != port || family(s.addr) != fam || !s.target.STUNAnswers {
			continue
		}
		if s.steady() {
			return s
		}
		if found == nil {
			found = s
		}
	}
	return found
}

// otherQUIC returns a QUIC handshake that reached its server in every try,
// at an address other than exclude.
func (ss *seriesSet) otherQUIC(fam string, exclude netip.Addr) *series {
	return ss.find(func(s *series) bool {
		return s.step == measurements.StepQUIC && s.addr != exclude && family(s.addr) == fam && s.steady()
	})
}

// controlQUIC returns a control host's QUIC handshake over fam that
// reached its server in every try: QUIC gets through to hosts that are
// not Apple's.
func (ss *seriesSet) controlQUIC(fam string) *series {
	return ss.find(func(s *series) bool {
		return s.target.Group == measurements.GroupControl && s.step == measurements.StepQUIC &&
			family(s.addr) == fam && s.steady()
	})
}

// otherPort returns a connect to addr on a port other than port that
// worked in every try.
func (ss *seriesSet) otherPort(addr netip.Addr, port int) *series {
	return ss.find(func(s *series) bool {
		return s.step == measurements.StepTCP && s.addr == addr && s.port != port && s.steady()
	})
}

// tcpAt returns a connect or TLS handshake to addr that worked in every
// try (any port).
func (ss *seriesSet) tcpAt(addr netip.Addr) *series {
	return ss.find(func(s *series) bool {
		return (s.step == measurements.StepTCP || s.step == measurements.StepTLS && !s.control) && s.addr == addr && s.steady()
	})
}

// tcpInNetworks returns a connect that worked in every try to an address
// of fam inside t's networks (the same operator's servers).
func (ss *seriesSet) tcpInNetworks(t *measurements.Target, fam string) *series {
	if len(t.Networks) == 0 {
		return nil
	}
	return ss.find(func(s *series) bool {
		return s.step == measurements.StepTCP && family(s.addr) == fam && inNetworks(t, s.addr) && s.steady()
	})
}

// controlsAllFailed reports whether control hosts were measured and none
// was reached by any step.
func (ss *seriesSet) controlsAllFailed() bool {
	measured := false
	for _, s := range ss.all {
		if s.tainted || s.target.Group != measurements.GroupControl {
			continue
		}
		measured = true
		if s.successes > 0 {
			return false
		}
	}
	return measured
}

// check summarises the control series matching pred as a NetworkChecks
// value.
func (ss *seriesSet) check(pred func(*series) bool) string {
	out := checkNotMeasured
	for _, s := range ss.all {
		if s.tainted || s.target.Group != measurements.GroupControl || !pred(s) {
			continue
		}
		switch {
		case s.steady():
			return checkOK
		case s.successes > 0:
			out = checkFlaky
		case out == checkNotMeasured:
			out = checkFailed
		}
	}
	return out
}
