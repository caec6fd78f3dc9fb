package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pathway-fhir/pathway/fhir"
	"github.com/spf13/cobra"
)

type validateOptions struct {
	paths      []string
	json       bool
	showValues bool
}

func newValidateCmd(s streams) *cobra.Command {
	var o validateOptions
	cmd := &cobra.Command{
		Use:   "validate [--json] PATH...",
		Short: "Check FHIR R4 JSON and NDJSON files",
		Long: `Validate FHIR R4 resources: strict parsing (types, cardinality, required
elements, required code bindings, reference types) plus the rules Pathway
relies on (no empty or null values, bundle entry rules, Task and
ServiceRequest invariants).

PATH may be a file, a directory (searched recursively for *.json and
*.ndjson) or - for standard input. A .ndjson file holds one resource per
line; a .json file holds one resource, which may be a Bundle (its entries
are reported one by one).

Issues name a FHIR path and a rule, never the offending value, so reports
are safe to share and to log. --show-values adds the values, for fixing
your own files; do not share that output.

Exit status: 0 when everything is valid, 1 when anything is invalid or
unreadable, 2 for usage errors (such as a path that does not exist).`,
		Example: `  pathway validate referral.json
  pathway validate testdata/ exports/patients.ndjson
  cat bundle.json | pathway validate -
  pathway validate --json exports/ | jq 'select(.valid == false)'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.paths = args
			return runValidate(o, s)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print one JSON object per resource: {file, index, resourceType, id, valid, issues}")
	cmd.Flags().BoolVar(&o.showValues, "show-values", false, "also show the offending values (unknown keys, bad codes): the output then holds personal data")
	return cmd
}

// validationRecord is one line of `validate --json`.
type validationRecord struct {
	File string `json:"file"`
	// Index is the line (from 1) in NDJSON, the entry (from 0) in a Bundle,
	// and null for a resource that is the whole file.
	Index        *int         `json:"index"`
	ResourceType string       `json:"resourceType"`
	ID           string       `json:"id"`
	Valid        bool         `json:"valid"`
	Issues       []fhir.Issue `json:"issues"`
	kind         positionKind // how Index reads in text output
}

// issueWithValue is an issue with its diagnostics, for --show-values only.
type issueWithValue struct {
	fhir.Issue
	Diagnostics string `json:"diagnostics,omitempty"`
}

type positionKind int

const (
	positionFile positionKind = iota
	positionLine
	positionEntry
)

type validateReport struct {
	o                         validateOptions
	w                         *bufio.Writer
	errw                      io.Writer
	files, resources, invalid int
	started, lastProgress     time.Time
	progress                  bool
}

func runValidate(o validateOptions, s streams) error {
	var missing []string
	for _, p := range o.paths {
		if p == "-" {
			continue
		}
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return usageErrorf("no such file or directory: %s", strings.Join(missing, ", "))
	}
	if o.showValues {
		fmt.Fprintln(s.err, "pathway: --show-values: this report contains values from the input, which may be personal data; do not share or log it")
	}
	r := &validateReport{o: o, w: bufio.NewWriter(s.out), errw: s.err, started: time.Now(), progress: isTerminal(s.err)}
	r.lastProgress = r.started
	for _, p := range o.paths {
		if p == "-" {
			r.stdin(s.in)
			continue
		}
		r.path(p)
	}
	r.summary()
	if err := r.w.Flush(); err != nil {
		return &exitError{code: exitInvalid, msg: fmt.Sprintf("writing report: %v", err)}
	}
	if r.invalid > 0 {
		return &exitError{code: exitInvalid}
	}
	return nil
}

func (r *validateReport) path(p string) {
	info, err := os.Stat(p)
	if err != nil {
		r.fileError(p, err)
		return
	}
	if !info.IsDir() {
		r.file(p, strings.HasSuffix(strings.ToLower(p), ".ndjson"))
		return
	}
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			r.fileError(path, err)
			return nil
		}
		if d.IsDir() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".json":
			r.file(path, false)
		case ".ndjson":
			r.file(path, true)
		}
		return nil
	})
	if err != nil {
		r.fileError(p, err)
	}
}

func (r *validateReport) file(path string, ndjson bool) {
	f, err := os.Open(path)
	if err != nil {
		r.fileError(path, err)
		return
	}
	defer f.Close()
	r.files++
	if ndjson {
		r.ndjson(path, f)
		return
	}
	if info, err := f.Stat(); err == nil && info.Mode().IsRegular() && info.Size() > fhir.MaxResourceBytes {
		r.fileError(path, &fhir.TooLargeError{Limit: fhir.MaxResourceBytes}) // without reading it
		return
	}
	data, err := fhir.ReadAllLimited(f, fhir.MaxResourceBytes)
	if err != nil {
		r.fileError(path, err)
		return
	}
	r.single(path, data)
}

// stdin reads one JSON resource, or NDJSON when the first line is a
// complete JSON value and more follows.
func (r *validateReport) stdin(in io.Reader) {
	const name = "<stdin>"
	r.files++
	br := bufio.NewReaderSize(in, 64<<10)
	first, err := readLineLimited(br, fhir.MaxResourceBytes)
	if err != nil && !errors.Is(err, io.EOF) {
		r.fileError(name, err)
		return
	}
	rest, _ := br.Peek(1)
	if len(bytes.TrimSpace(first)) > 0 && json.Valid(first) && len(rest) > 0 {
		r.ndjson(name, io.MultiReader(bytes.NewReader(first), br))
		return
	}
	data, err := fhir.ReadAllLimited(io.MultiReader(bytes.NewReader(first), br), fhir.MaxResourceBytes)
	if err != nil {
		r.fileError(name, err)
		return
	}
	r.single(name, data)
}

// readLineLimited reads up to and including the first newline, failing
// with a *fhir.TooLargeError past limit bytes rather than buffering an
// endless line.
func readLineLimited(br *bufio.Reader, limit int64) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if int64(len(line)) > limit {
			return nil, &fhir.TooLargeError{Limit: limit}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, err
	}
}

func (r *validateReport) ndjson(name string, in io.Reader) {
	nr := fhir.NewNDJSONReader(in)
	for {
		line, res, err := nr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			n := line
			r.emit(validationRecord{File: name, Index: &n, kind: positionLine, Issues: []fhir.Issue{{
				Severity: fhir.SeverityFatal, Path: "(file)", Code: "unreadable", Details: describeReadError(err)}}})
			return
		}
		n := line
		r.emit(validationRecord{File: name, Index: &n, kind: positionLine, ResourceType: res.ResourceType,
			ID: res.ID, Valid: res.Valid(), Issues: res.Issues})
	}
}

func (r *validateReport) single(name string, data []byte) {
	res := fhir.Parse(data)
	bundleIssues, entries := fhir.SplitBundle(data, res)
	valid := res.Valid()
	if len(entries) > 0 {
		// The Bundle's record judges the Bundle's own elements; each entry
		// has its record, so an invalid entry is counted once.
		valid = !bundleIssues.HasErrors()
	}
	r.emit(validationRecord{File: name, kind: positionFile, ResourceType: res.ResourceType, ID: res.ID,
		Valid: valid, Issues: bundleIssues})
	for _, e := range entries {
		n := e.Index
		r.emit(validationRecord{File: name, Index: &n, kind: positionEntry, ResourceType: e.ResourceType,
			ID: e.ID, Valid: e.Valid(), Issues: e.Issues})
	}
}

func (r *validateReport) fileError(name string, err error) {
	code := "unreadable"
	if errors.As(err, new(*fhir.TooLargeError)) {
		code = "too-large"
	}
	r.emit(validationRecord{File: name, kind: positionFile, Issues: []fhir.Issue{{
		Severity: fhir.SeverityFatal, Path: "(file)", Code: code, Details: describeReadError(err)}}})
}

// describeReadError keeps the error's cause but not a path we already print.
func describeReadError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

func (r *validateReport) emit(rec validationRecord) {
	r.resources++
	if !rec.Valid {
		r.invalid++
	}
	if rec.Issues == nil {
		rec.Issues = []fhir.Issue{}
	}
	if r.o.json && r.o.showValues {
		withValues := make([]issueWithValue, len(rec.Issues))
		for i, is := range rec.Issues {
			withValues[i] = issueWithValue{is, is.Diagnostics}
		}
		enc := json.NewEncoder(r.w)
		enc.SetEscapeHTML(false)
		enc.Encode(struct {
			validationRecord
			Issues []issueWithValue `json:"issues"`
		}{rec, withValues})
	} else if r.o.json {
		enc := json.NewEncoder(r.w)
		enc.SetEscapeHTML(false) // "<stdin>", not "\u003cstdin\u003e"
		enc.Encode(rec)
	} else if len(rec.Issues) > 0 {
		r.text(rec)
	}
	if r.progress && time.Since(r.lastProgress) > 2*time.Second {
		r.lastProgress = time.Now()
		r.w.Flush()
		fmt.Fprintf(r.errw, "\rvalidated %d resources in %d files (%d invalid)...", r.resources, r.files, r.invalid)
	}
}

func (r *validateReport) text(rec validationRecord) {
	pos := rec.File
	switch rec.kind {
	case positionLine:
		pos = fmt.Sprintf("%s:%d", rec.File, *rec.Index)
	case positionEntry:
		pos = fmt.Sprintf("%s entry[%d]", rec.File, *rec.Index)
	}
	name := rec.ResourceType
	if rec.ID != "" {
		name += "/" + rec.ID
	}
	verdict := "invalid"
	if rec.Valid {
		verdict = "valid, with warnings"
	}
	if name != "" {
		fmt.Fprintf(r.w, "%s: %s: %s\n", pos, name, verdict)
	} else {
		fmt.Fprintf(r.w, "%s: %s\n", pos, verdict)
	}
	for _, is := range rec.Issues {
		fmt.Fprintf(r.w, "  %-7s %s [%s] %s\n", is.Severity, is.Path, is.Code, is.Details)
		if r.o.showValues && is.Diagnostics != "" {
			fmt.Fprintf(r.w, "          value: %s\n", is.Diagnostics)
		}
	}
}

func (r *validateReport) summary() {
	if r.progress && time.Since(r.started) > 2*time.Second {
		fmt.Fprint(r.errw, "\r\033[K")
	}
	msg := fmt.Sprintf("%d resources in %d files: %d valid, %d invalid", r.resources, r.files, r.resources-r.invalid, r.invalid)
	if r.o.json {
		fmt.Fprintln(r.errw, msg)
		return
	}
	fmt.Fprintln(r.w, msg)
}

// isTerminal reports whether w is a character device (a terminal), where
// progress lines help rather than clutter.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
