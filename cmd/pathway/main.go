// Command pathway is the Pathway FHIR interoperability adapter: it validates,
// converts, routes and exchanges referrals between NGOs, clinics and
// community supports, under the patient's consent.
//
// Run `pathway --help` for the commands.
package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// The garbage collector's defaults, unless GOGC or GOMEMLIMIT say
// otherwise. Parsing, filtering and encoding FHIR allocate a lot of
// short-lived memory while the live heap stays small (tens of MiB), so a
// heap allowed to grow to five times the live one before a collection
// spends far less CPU in the collector; the soft limit makes it collect
// sooner near 1 GiB (or three quarters of a container's smaller limit),
// so a large run stays within that.
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
		debug.SetMemoryLimit(softLimit(cgroupLimit()))
	}
}

// softLimit is the memory limit for a machine or container that allows
// max bytes (0: unknown): 1 GiB, or three quarters of a smaller max.
func softLimit(max int64) int64 {
	if max > 0 && max/4*3 < memoryLimit {
		return max / 4 * 3
	}
	return memoryLimit
}

// cgroupLimit is the container's memory limit (cgroup v2), or 0.
func cgroupLimit() int64 {
	data, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0 // "max": no limit
	}
	return n
}
