package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// TestTuneGC: without GOGC and GOMEMLIMIT, pathway collects at 400 % with
// a 1 GiB soft limit; with them set, the environment's values stand.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Cleanup(func() { os.Setenv(k, v) })
		}
		os.Unsetenv(k)
	}
	debug.SetGCPercent(100)
	tuneGC()
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("GC percent %d, want %d", got, gcPercent)
	}
	if got, want := debug.SetMemoryLimit(-1), softLimit(cgroupLimit()); got != want {
		t.Errorf("memory limit %d, want %d", got, want)
	}
	for _, c := range []struct{ max, want int64 }{{0, memoryLimit}, {4 << 30, memoryLimit}, {512 << 20, 384 << 20}} {
		if got := softLimit(c.max); got != c.want {
			t.Errorf("softLimit(%d) = %d, want %d", c.max, got, c.want)
		}
	}

	t.Setenv("GOGC", "100")
	t.Setenv("GOMEMLIMIT", "256MiB")
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(256 << 20)
	tuneGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC=100 set: GC percent %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 256<<20 {
		t.Errorf("with GOMEMLIMIT set: memory limit %d", got)
	}
}
