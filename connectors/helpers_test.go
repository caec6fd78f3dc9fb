package connectors

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

const fixtures = "../testdata/connectors"

// readAll reads a source to its end, failing the test on a fatal error.
func readAll(t testing.TB, src Source) []Record {
	t.Helper()
	recs, err := drain(src, 1<<20)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return recs
}

// drain reads a source to its end or its first fatal error, giving up
// after limit records (a source that never ends is a bug).
func drain(src Source, limit int) ([]Record, error) {
	var recs []Record
	for len(recs) <= limit {
		r, err := src.Next()
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		recs = append(recs, r)
	}
	return recs, errors.New("the source did not end")
}

func openFixture(t testing.TB, rel string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtures, rel))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// failingReader returns its data, then fails.
type failingReader struct {
	data []byte
	read int
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.read >= len(r.data) {
		return 0, r.err
	}
	n := copy(p, r.data[r.read:])
	r.read += n
	return n, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

var errDisk = errors.New("disk on fire")
