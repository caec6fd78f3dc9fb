package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pathway-fhir/pathway/mappings"
)

// What convert keeps per record (the duplicate-id index) must stay small:
// a hash and a compact position, not a string per record. The test
// converts a generated CSV and measures the heap the converter retains
// afterwards (runtime.MemStats after a GC), per record, with a generous
// bound: the map entry alone is about 24 bytes plus the map's slack.
func TestConvertRetainedMemoryPerRecord(t *testing.T) {
	const rows = 4000
	// A long directory name, as real paths are: a string per record would
	// cost at least its length.
	dir := filepath.Join(t.TempDir(), strings.Repeat("exports-", 8))
	var b strings.Builder
	b.WriteString("referral_id,service,referrer_org,referral_date\r\n")
	for i := range rows {
		fmt.Fprintf(&b, "R-%06d,mental-health,ngo-harbour,20/11/2026\r\n", i)
	}
	p := writeFile(t, dir, "generated.csv", b.String())
	m, err := mappings.Builtin("ngo-referral-csv")
	if err != nil {
		t.Fatal(err)
	}
	newConverter := func() *converter {
		c := &converter{m: m, s: streams{in: strings.NewReader(""), out: io.Discard, err: io.Discard}, started: time.Now(),
			seen: map[uint64]seenAt{}, pathIndex: map[string]uint32{}}
		c.out = bufio.NewWriter(io.Discard)
		return c
	}
	// Warm up: the first conversion fills caches that live as long as the
	// process (validators, code tables), which are not a per-record cost.
	warm := writeFile(t, dir, "warm.csv", b.String()[:strings.Index(b.String(), "\r\n")+2]+"R-X,mental-health,ngo-harbour,20/11/2026\r\n")
	if err := newConverter().file(warm); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := newConverter()
	if err := c.file(p); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if c.sum.Converted != rows {
		t.Fatalf("%d converted", c.sum.Converted)
	}
	perRecord := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / rows
	t.Logf("%d bytes retained per record (%d records)", perRecord, rows)
	if perRecord > 96 {
		t.Errorf("convert retains %d bytes per record; want at most 96", perRecord)
	}
	runtime.KeepAlive(c)
	_ = os.Remove(p)
}
