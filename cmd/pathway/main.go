// Command pathway is the Pathway FHIR interoperability adapter: it validates,
// converts, routes and exchanges referrals between NGOs, clinics and
// community supports, under the patient's consent.
//
// Run `pathway --help` for the commands.
package main

import (
	"os"
	"runtime/debug"
)

// The garbage collector's defaults, unless GOGC or GOMEMLIMIT say
// otherwise. Parsing, filtering and encoding FHIR allocate a lot of
// short-lived memory while the live heap stays small (tens of MiB), so a
// heap allowed to grow to five times the live one before a collection
// spends far less CPU in the collector; the soft limit makes it collect
// sooner near 1 GiB, so a large run stays within that.
const (
	gcPercent   = 400
	memoryLimit = 1 << 30
)

func main() {
	tuneGC()
	os.Exit(run(os.Args[1:], streams{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
}

func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(memoryLimit)
	}
}
