package fhir

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxLineBytes is the longest NDJSON line the reader accepts. A longer line
// is reported as a fatal issue for that line and skipped; reading goes on.
const MaxLineBytes = 16 << 20

// NDJSONReader reads newline-delimited FHIR JSON (one resource per line) and
// parses each line as it goes, so memory stays flat whatever the input size.
type NDJSONReader struct {
	r    *bufio.Reader
	line int
	buf  []byte
}

// NewNDJSONReader returns a reader over r.
func NewNDJSONReader(r io.Reader) *NDJSONReader {
	return &NDJSONReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next non-blank line's number (1-based) and its parse
// result. At the end it returns io.EOF; any other error is a read error of
// the underlying reader, after which Next should not be called again.
func (n *NDJSONReader) Next() (int, Result, error) {
	for {
		line, tooLong, err := n.readLine()
		if err != nil && (len(line) == 0 || !errors.Is(err, io.EOF)) {
			if errors.Is(err, io.EOF) && tooLong {
				return n.line, tooLongResult(), nil
			}
			return n.line, Result{}, err
		}
		if tooLong {
			return n.line, tooLongResult(), nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			if errors.Is(err, io.EOF) {
				return n.line, Result{}, io.EOF
			}
			continue
		}
		return n.line, Parse(line), nil
	}
}

func tooLongResult() Result {
	return Result{Issues: Issues{{Severity: SeverityFatal, Path: "(root)", Code: "too-large",
		Details: fmt.Sprintf("line longer than %d MiB: one NDJSON line holds one resource", MaxLineBytes>>20)}}}
}

// readLine returns the next line without its terminator, reusing one
// buffer. An over-long line is drained and reported with tooLong.
func (n *NDJSONReader) readLine() (line []byte, tooLong bool, err error) {
	n.line++
	n.buf = n.buf[:0]
	for {
		chunk, err := n.r.ReadSlice('\n')
		if len(n.buf)+len(chunk) > MaxLineBytes {
			tooLong = true
		} else {
			n.buf = append(n.buf, chunk...)
		}
		switch {
		case err == nil:
			return bytes.TrimRight(n.buf, "\r\n"), tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return bytes.TrimRight(n.buf, "\r\n"), tooLong, err
		}
	}
}

// ReadAllLimited reads r up to limit bytes. It fails with a *TooLargeError
// when r holds more, without reading it all.
func ReadAllLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{Limit: limit}
	}
	return b, nil
}

// TooLargeError says an input is larger than Pathway reads as one resource.
type TooLargeError struct{ Limit int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("larger than %d MiB, the limit for one JSON resource: split it into NDJSON (one resource per line, .ndjson) or smaller bundles", e.Limit>>20)
}

// EntryHeader names one Bundle entry's resource as written in the JSON.
type EntryHeader struct {
	ResourceType string
	ID           string
}

// BundleEntryHeaders reads the resourceType and id of each entry of a
// Bundle's JSON, for reports about bundles that may not even parse. It
// returns nil when data is not a Bundle object.
func BundleEntryHeaders(data []byte) []EntryHeader {
	var b struct {
		Entry []json.RawMessage `json:"entry"`
	}
	if json.Unmarshal(data, &b) != nil {
		return nil
	}
	out := make([]EntryHeader, len(b.Entry))
	for i, raw := range b.Entry {
		// Each entry is read leniently: one badly typed field must not
		// hide every other entry's position.
		var e struct {
			Resource map[string]json.RawMessage `json:"resource"`
		}
		_ = json.Unmarshal(raw, &e)
		var h EntryHeader
		_ = json.Unmarshal(e.Resource["resourceType"], &h.ResourceType)
		_ = json.Unmarshal(e.Resource["id"], &h.ID)
		if !IsResourceType(h.ResourceType) {
			h.ResourceType = ""
		}
		if !validID.MatchString(h.ID) {
			h.ID = ""
		}
		out[i] = h
	}
	return out
}
