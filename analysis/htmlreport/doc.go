// Package htmlreport renders reachprobe's verdicts as one self-contained
// HTML page: a headline a person reads at a glance (can people on this
// network receive push notifications, use iMessage, place FaceTime calls),
// a timeline of every service across the runs in range, the evidence per
// endpoint for a technical reader, the network measured and the method
// with its caveats.
//
// It is for presenting verdicts, not for reaching them: every verdict comes
// from package analysis, and this package never second-guesses one. It
// does not read the database, the clock or the network; Render is a pure
// function of its Input, so the same input gives the same bytes.
//
// # Design
//
// The page is built with html/template from an embedded template, so every
// string that came from the network (certificate names, DNS answers,
// failure text, evidence sentences) is escaped for the context it lands
// in. The output holds no script and fetches nothing: CSS and SVG are
// inline, there are no external links, and a Content-Security-Policy meta
// element forbids loading anything should a string ever slip through.
//
// The probe's own IP address is not part of the Input, so it cannot reach
// the page; the addresses shown are those of the servers measured.
//
// Colour is never the only cue: each verdict has a word and an icon, and
// timeline marks differ in height as well as colour. The layout is one
// column on a phone, tables turn into stacked blocks there, and print CSS
// keeps cards and table rows whole on a page.
package htmlreport
