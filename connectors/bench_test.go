package connectors

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkCSV reads a generated 10k-row CSV of 25 columns (multilingual
// text, quoted cells) and reports rows per second.
func BenchmarkCSV(b *testing.B) {
	data := genCSV(10000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	rows := 0
	for b.Loop() {
		src, err := OpenCSV(bytes.NewReader(data), "bench.csv", CSVOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			r, err := src.Next()
			if err == io.EOF {
				break
			}
			if err != nil || r.Err != nil {
				b.Fatal(err, r.Err)
			}
			rows++
		}
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkJSONArray streams a generated 10k-element JSON array.
func BenchmarkJSONArray(b *testing.B) {
	data := genJSONArray(10000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		src, err := OpenJSONArray(bytes.NewReader(data), "bench.json")
		if err != nil {
			b.Fatal(err)
		}
		for {
			r, err := src.Next()
			if err == io.EOF {
				break
			}
			if err != nil || r.Err != nil {
				b.Fatal(err, r.Err)
			}
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkHL7v2Parse parses the REF^I12 referral from the corpus (25
// segments, 5.7 KB) and reads a handful of fields, as a mapping would.
func BenchmarkHL7v2Parse(b *testing.B) {
	msg, err := os.ReadFile(filepath.Join(fixtures, "hl7v2", "REF-I12-01.hl7"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := ParseHL7Message(msg)
		if err != nil {
			b.Fatal(err)
		}
		if m.Get("PID-5.1") != "EVERYMAN" || m.Get("PRD[2]-1.1") != "RT" || len(m.All("PID-3.1")) != 2 {
			b.Fatal("wrong values")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "messages/s")
}

// BenchmarkHL7v2Source reads a file of 1,000 REF^I12 messages through
// OpenHL7v2 (segment splitting, envelopes and parsing).
func BenchmarkHL7v2Source(b *testing.B) {
	msg, err := os.ReadFile(filepath.Join(fixtures, "hl7v2", "REF-I12-01.hl7"))
	if err != nil {
		b.Fatal(err)
	}
	msg = bytes.TrimPrefix(msg, utf8BOM)
	data := bytes.Repeat(append(msg, '\n'), 1000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		src, _ := OpenHL7v2(bytes.NewReader(data), "bench.hl7")
		for {
			r, err := src.Next()
			if err == io.EOF {
				break
			}
			if err != nil || r.Err != nil {
				b.Fatal(err, r.Err)
			}
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "messages/s")
}
