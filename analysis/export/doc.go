// Package export writes stored runs in formats other programs read: CSV
// for spreadsheets (WriteCSV), OONI's measurement format as JSON Lines for
// OONI's tools and pipeline (WriteOONI) and one JSON document of analyses
// and observations for scripts (WriteJSON). The README documents each
// format, column by column and key by key.
//
// It is pure: the writers are functions of the runs they are given (and,
// for OONI's annotations, of the platform they run on); they read no
// database, clock or network. It is not where runs are measured (probes),
// judged (analysis) or rendered for people (analysis/htmlreport, its
// neighbour: every format that carries verdicts lives under analysis, so
// measurements, the data model, knows none).
//
// # Privacy
//
// The probe's own IP address is never stored, so no export can contain it
// from the database; exports also make sure no free text smuggles an
// address in. Every writer scrubs each run first (Scrub): in failure
// strings, certificate errors and the analysis's reasons and evidence,
// every IP address that is not one the run measured (a DNS answer, an
// address connected to, a resolver) is replaced with "[scrubbed]", as
// OONI does. OONI's probe_ip is always 127.0.0.1.
//
// # Design
//
// Runs arrive as an iterator (Runs) so that an export of a thousand runs
// holds one run's observations in memory at a time; writers stream their
// output run by run. Certificates and raw DNS responses make observations
// most of an export's size.
package export
