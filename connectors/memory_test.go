package connectors

import (
	"fmt"
	"io"
	"runtime"
	"testing"
)

// genReader produces a large input on the fly, so the test itself holds
// none of it.
type genReader struct {
	head, tail string
	item       func(i int) string
	n, i       int
	buf        []byte
	done       bool
}

func (g *genReader) Read(p []byte) (int, error) {
	for len(g.buf) == 0 {
		switch {
		case g.done:
			return 0, io.EOF
		case g.head != "":
			g.buf, g.head = []byte(g.head), ""
		case g.i < g.n:
			g.i++
			g.buf = append(g.buf[:0], g.item(g.i)...)
		default:
			g.buf, g.done = []byte(g.tail), true
		}
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

// TestMemoryFlat reads about 32 MB of each format and checks that the heap
// stays small all along: memory does not grow with the input.
func TestMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 32 MB per format")
	}
	const size = 32 << 20
	note := "تحتاج إلى معالجة نفسية ناطقة بالعربية; Хоче знайти групу підтримки"
	tests := []struct {
		name string
		open func(io.Reader) (Source, error)
		gen  *genReader
	}{
		{"csv", func(r io.Reader) (Source, error) { return OpenCSV(r, "big.csv", CSVOptions{}) }, &genReader{
			head: "id,name,language,notes,reason\n",
			item: func(i int) string {
				return fmt.Sprintf("R-%d,Layla,ar,\"%s\nsecond line\",\"Low mood, poor sleep\"\n", i, note)
			},
		}},
		{"json array", func(r io.Reader) (Source, error) { return OpenJSONArray(r, "big.json") }, &genReader{
			head: "[{\"id\":0}",
			item: func(i int) string {
				return fmt.Sprintf(",\n{\"id\":%d,\"name\":\"Layla\",\"note\":%q,\"score\":14}", i, note)
			},
			tail: "\n]\n",
		}},
		{"ndjson", func(r io.Reader) (Source, error) { return OpenNDJSON(r, "big.ndjson") }, &genReader{
			item: func(i int) string {
				return fmt.Sprintf("{\"id\":%d,\"name\":\"Layla\",\"note\":%q,\"score\":14}\n", i, note)
			},
		}},
		{"hl7v2", func(r io.Reader) (Source, error) { return OpenHL7v2(r, "big.hl7") }, &genReader{
			item: func(i int) string {
				return fmt.Sprintf("MSH|^~\\&|EHR||PATHWAY||20260120||REF^I12|M%d|P|2.5\rPID|1||P%d^^^X||Doe^Jane\rNTE|1||%s\r", i, i, note)
			},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.gen.n = size / len(tt.gen.item(1))
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			base := ms.HeapAlloc
			src, err := tt.open(tt.gen)
			if err != nil {
				t.Fatal(err)
			}
			n, peak := 0, uint64(0)
			for {
				r, err := src.Next()
				if err == io.EOF {
					break
				}
				if err != nil || r.Err != nil {
					t.Fatal(err, r.Err)
				}
				if n++; n%5000 == 0 {
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapAlloc)
				}
			}
			if n < tt.gen.n {
				t.Fatalf("%d records of %d", n, tt.gen.n)
			}
			grew := int64(peak) - int64(base)
			t.Logf("%d records, heap peak %.1f MB over the start", n, float64(grew)/(1<<20))
			if grew > 16<<20 {
				t.Errorf("the heap grew by %d MB reading %d MB", grew>>20, size>>20)
			}
		})
	}
}
