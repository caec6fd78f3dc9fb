package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pathway-fhir/pathway/connectors"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/mappings"
	"github.com/spf13/cobra"
)

type convertOptions struct {
	mapping      string
	sourceSystem string
	out          string
	rejects      string
	json         bool
	inputs       []string
}

func newConvertCmd(s streams) *cobra.Command {
	var o convertOptions
	cmd := &cobra.Command{
		Use:   "convert --mapping NAME|FILE [--source-system URI] [--out FILE] [--rejects FILE] [--json] INPUT...",
		Short: "Convert source records into FHIR referral bundles",
		Long: `Convert each record of the inputs (CSV rows, JSON objects, HL7 v2
messages, the ServiceRequests of FHIR documents) with a mapping into one
FHIR transaction Bundle: Patient, ServiceRequest, Consent, Task, and the
referring practitioner, screening, risk and outcome resources where the
record has them. Every bundle is validated before it is written.

Bundles are written as NDJSON, one per line, to --out or standard output.
A rejected record goes to the rejects file (or, without one, its position
and reasons to standard error) with every reason; the others go on. With
--out, the output file appears only when the run is complete, so no
half-written bundle is ever read. Inputs are streamed: memory stays flat
however large they are.

Every id derives from the source system and the record id. A built-in
mapping's source system is a constant naming the mapping, the same for
everyone who uses it: in a network where more than one NGO converts with
the same built-in, each must name its own with --source-system URI (such as
https://ngo-a.example/cases), or two NGOs' "R-001" become the same
resources and overwrite each other. Convert warns when the default is used.
--source-system replaces a mapping file's source.system too.

--mapping takes a built-in mapping's name (see 'pathway mapping list') or a
mapping file (see docs/mappings.md).

An input that cannot be read to its end (an unusable CSV header, a CSV
header without a column a required field reads, a JSON array broken by a
syntax error) keeps what was converted before the problem; the problem,
with the input's name and position, goes to the rejects file (or standard
error), and the next input is read. The summary is always printed.

Exit status: 0 when every record of every input converted; 1 when any
record was rejected or any input could not be read to its end (the
bundles written are whole and valid); 2 for usage or mapping errors
(nothing is written).`,
		Example: `  pathway convert --mapping ngo-referral-csv --source-system https://ngo-a.example/cases --out bundles.ndjson referrals.csv
  pathway convert --mapping my-ngo.yaml --rejects rejects.ndjson export1.csv export2.csv
  pathway convert --mapping ngo-referral-csv --json referrals.csv > bundles.ndjson
  pathway convert --mapping kobo-json --out bundles.ndjson submissions.json
  pathway convert --mapping fhir-referral --rejects rejects.ndjson clinic-bundle.json
  pathway convert --mapping hl7v2-ref-i12 --out bundles.ndjson referrals.hl7`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.inputs = args
			return runConvert(o, s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.mapping, "mapping", "", "built-in mapping name or mapping file (required)")
	f.StringVar(&o.sourceSystem, "source-system", "", "URI naming the system the records come from (your NGO's case system); seeds every id, in place of the mapping's default")
	f.StringVar(&o.out, "out", "", "write bundles to this file (default: standard output)")
	f.StringVar(&o.rejects, "rejects", "", "write rejected records with their reasons to this NDJSON file")
	f.BoolVar(&o.json, "json", false, "print the summary as JSON on standard error")
	_ = cmd.MarkFlagRequired("mapping")
	return cmd
}

// loadMapping opens a mapping file when one exists at name, else a built-in.
func loadMapping(name string) (*mappings.Mapping, error) {
	if _, err := os.Stat(name); err == nil {
		return mappings.LoadFile(name, os.ReadFile)
	}
	return mappings.Builtin(name)
}

// convertSummary is what convert did.
type convertSummary struct {
	Mapping   string `json:"mapping"`
	Inputs    int    `json:"inputs"`
	Read      int    `json:"records_read"`
	Converted int    `json:"converted"`
	Rejected  int    `json:"rejected"`
	// Failed counts the inputs that could not be read to the end (an
	// unusable CSV header, a JSON array broken by a syntax error...).
	Failed  int     `json:"inputs_failed"`
	Elapsed float64 `json:"elapsed_seconds"`
}

// convertReject is one line of the rejects file.
type convertReject struct {
	Position string   `json:"position"`
	Reasons  []string `json:"reasons"`
	// Record is the source record as read (capped): the rejects file holds
	// personal data like the input does, so it can be fixed and replayed.
	Record string `json:"record,omitempty"`
}

func runConvert(o convertOptions, s streams) error {
	m, err := loadMapping(o.mapping)
	if err != nil {
		return usageErrorf("%v", err)
	}
	if o.sourceSystem != "" {
		if m, err = m.WithSourceSystem(o.sourceSystem); err != nil {
			return usageErrorf("--source-system: %v", err)
		}
	} else if def, ok := m.DefaultSourceSystem(); ok {
		fmt.Fprintf(s.err, "warning: the records' ids derive from the mapping's default source system %s: "+
			"where another NGO converts with the same mapping, records with the same id overwrite each other; name yours with --source-system URI\n", def)
	}
	for _, in := range o.inputs {
		if _, err := os.Stat(in); err != nil {
			return usageErrorf("no such input: %s", in)
		}
	}
	c := &converter{m: m, s: s, started: time.Now(), progress: isTerminal(s.err), seen: map[uint64]seenAt{}, pathIndex: map[string]uint32{}}
	c.sum.Mapping = m.Name

	out := s.out
	var tmp *os.File
	if o.out != "" {
		tmp, err = os.CreateTemp(filepath.Dir(o.out), ".pathway-convert-*")
		if err != nil {
			return usageErrorf("creating output next to %s: %v", o.out, err)
		}
		defer os.Remove(tmp.Name()) // a no-op once renamed
		out = tmp
	}
	c.out = bufio.NewWriterSize(out, 256<<10)
	if o.rejects != "" {
		rf, err := os.Create(o.rejects)
		if err != nil {
			return usageErrorf("creating rejects file: %v", err)
		}
		defer rf.Close()
		c.rejects = bufio.NewWriter(rf)
	}

	for _, in := range o.inputs {
		if err := c.file(in); err != nil {
			// The records before the failure are converted or rejected
			// already; the others of this input are lost. Say so, and go
			// on with the next input.
			c.failInput(in, err)
		}
	}
	if err := c.out.Flush(); err != nil {
		return &exitError{code: exitInvalid, msg: fmt.Sprintf("writing bundles: %v", err)}
	}
	if c.rejects != nil {
		if err := c.rejects.Flush(); err != nil {
			return &exitError{code: exitInvalid, msg: fmt.Sprintf("writing rejects: %v", err)}
		}
	}
	if tmp != nil {
		if err := tmp.Close(); err != nil {
			return &exitError{code: exitInvalid, msg: fmt.Sprintf("writing bundles: %v", err)}
		}
		if err := os.Rename(tmp.Name(), o.out); err != nil {
			return &exitError{code: exitInvalid, msg: fmt.Sprintf("writing bundles: %v", err)}
		}
	}
	c.sum.Inputs = len(o.inputs)
	c.sum.Elapsed = time.Since(c.started).Seconds()
	c.clearProgress()
	if o.json {
		enc := json.NewEncoder(s.err)
		enc.SetEscapeHTML(false)
		enc.Encode(c.sum)
	} else {
		failed := ""
		if c.sum.Failed > 0 {
			failed = fmt.Sprintf(", %d of %d inputs not read to the end", c.sum.Failed, c.sum.Inputs)
		}
		fmt.Fprintf(s.err, "%d records read, %d converted, %d rejected%s in %.1fs\n", c.sum.Read, c.sum.Converted, c.sum.Rejected, failed, c.sum.Elapsed)
	}
	if c.sum.Rejected > 0 || c.sum.Failed > 0 {
		return &exitError{code: exitInvalid}
	}
	return nil
}

type converter struct {
	m                     *mappings.Mapping
	s                     streams
	out, rejects          *bufio.Writer
	sum                   convertSummary
	started, lastProgress time.Time
	progress              bool
	cur                   *os.File // the input being read, for the progress bar
	curSize               int64
	// seen holds a 64-bit hash of each record id converted in this run, to
	// reject duplicates, with where it was first seen: 8 bytes and a 16-byte
	// seenAt per record, never a string per record.
	seen map[uint64]seenAt
	// files are the inputs read so far, and paths the distinct FHIR paths
	// of referrals inside documents, that seenAt refers to by index.
	files     []string
	paths     []string
	pathIndex map[string]uint32
}

// seenAt is a compact position: the input's index in converter.files, the
// row, line, element or message number, its unit, and for a referral
// inside a FHIR document the index+1 of its path in converter.paths.
type seenAt struct {
	file, n, path uint32
	unit          uint8
}

var seenUnits = []connectors.PositionUnit{connectors.UnitRow, connectors.UnitLine, connectors.UnitElement, connectors.UnitMessage, connectors.UnitDocument}

// at makes the compact form of a record's position.
func (c *converter) at(p connectors.Position, path string) seenAt {
	a := seenAt{file: uint32(len(c.files) - 1), n: uint32(p.Row)}
	if p.Unit == connectors.UnitMessage {
		a.n = uint32(p.Message)
	}
	for i, u := range seenUnits {
		if u == p.Unit {
			a.unit = uint8(i)
		}
	}
	if path != "" {
		i, ok := c.pathIndex[path]
		if !ok {
			c.paths = append(c.paths, path)
			i = uint32(len(c.paths))
			c.pathIndex[path] = i
		}
		a.path = i
	}
	return a
}

// position gives back a compact position as Position.String spells it.
func (c *converter) position(a seenAt) string {
	p := connectors.Position{File: c.files[a.file], Unit: seenUnits[a.unit], Row: int(a.n), Message: int(a.n)}
	s := p.String()
	if a.path > 0 {
		s += ":" + c.paths[a.path-1]
	}
	return s
}

func (c *converter) file(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening input: %w", err)
	}
	defer f.Close()
	c.files = append(c.files, path)
	c.cur, c.curSize = f, 0
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		c.curSize = st.Size()
	}
	defer func() { c.cur = nil }()
	src, err := c.open(f, path)
	if err != nil {
		return err
	}
	defer src.Close()
	if h, ok := src.(connectors.Headed); ok {
		if err := c.checkHeader(path, h.Header()); err != nil {
			return err
		}
	}
	for {
		rec, err := src.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		c.record(rec)
		c.tick()
	}
}

// checkHeader compares a CSV header with the columns the mapping reads. A
// missing column that a required field reads makes the file unusable; a
// missing optional column, or a header column the mapping never reads, is
// a warning on stderr (louder when it decides triage or risk). Only
// column names are printed, never a cell.
func (c *converter) checkHeader(path string, header []string) error {
	hc := c.m.CheckHeader(header)
	if req := hc.RequiredMissing(); len(req) > 0 {
		msgs := make([]string, len(req))
		for i, m := range req {
			msgs[i] = fmt.Sprintf("no column %q (required by %s)%s", m.Name, strings.Join(m.RequiredBy, ", "), didYouMean(m.Closest))
		}
		return fmt.Errorf("%s: header: %s: no record of this file can convert", path, strings.Join(msgs, "; "))
	}
	c.clearProgress()
	var optional []string
	for _, m := range hc.Missing {
		if m.Important() {
			fmt.Fprintf(c.s.err, "%s: WARNING: no column %q, which decides %s: every record of this file converts without its triage or risk (routine priority, no risk flag)%s\n",
				path, m.Name, strings.Join(m.Targets, ", "), didYouMean(m.Closest))
			continue
		}
		optional = append(optional, strconv.Quote(m.Name)+didYouMean(m.Closest))
	}
	if len(optional) > 0 {
		fmt.Fprintf(c.s.err, "%s: warning: no column %s: left empty in every record\n", path, strings.Join(optional, ", "))
	}
	if len(hc.Unknown) > 0 {
		q := make([]string, len(hc.Unknown))
		for i, u := range hc.Unknown {
			q[i] = strconv.Quote(u)
		}
		fmt.Fprintf(c.s.err, "%s: warning: the mapping reads no column %s: ignored\n", path, strings.Join(q, ", "))
	}
	return nil
}

func didYouMean(name string) string {
	if name == "" {
		return ""
	}
	return fmt.Sprintf(" (the header has %q: misspelt?)", name)
}

func (c *converter) open(r io.Reader, name string) (connectors.Source, error) {
	in := c.m.Input
	switch in.Format {
	case mappings.FormatCSV:
		delim, _ := utf8.DecodeRuneInString(in.Delimiter)
		return connectors.OpenCSV(r, name, connectors.CSVOptions{Delimiter: delim, Encoding: in.Encoding})
	case mappings.FormatJSON:
		return connectors.OpenJSONArray(r, name)
	case mappings.FormatNDJSON:
		return connectors.OpenNDJSON(r, name)
	case mappings.FormatHL7v2:
		return connectors.OpenHL7v2(r, name)
	case mappings.FormatFHIR:
		return connectors.OpenJSONObject(r, name)
	}
	return nil, fmt.Errorf("input format %q is not supported by convert yet", in.Format)
}

// fieldsOf adapts a connector record to what a mapping reads.
func fieldsOf(rec connectors.Record) mappings.Fields {
	switch {
	case rec.Fields != nil:
		return mappings.MapFields(rec.Fields)
	case rec.JSON != nil:
		return mappings.JSONFields(rec.JSON)
	case rec.HL7 != nil:
		return hl7Fields{rec.HL7}
	}
	return mappings.MapFields{}
}

// hl7Fields reads HL7 v2 field paths (PID-5.1, PID-3[2].1, PRD[2]-2.1; see
// connectors.HL7Path) for a mapping, with two additions:
//
//   - a segment may be picked by the value of one of its fields instead of
//     its position: "PRD[1=RP]-2.1" is PRD-2.1 of the first PRD whose PRD-1
//     (first component) is RP, the referring provider; "SEG[F.C=VALUE]"
//     compares component C. Referral messages carry one PRD per role, in no
//     fixed order.
//   - the HL7 null, written "", reads as empty: it says "no value", which
//     is all a referral can do with it.
type hl7Fields struct{ m *connectors.HL7Message }

func (h hl7Fields) Lookup(ref string) ([]string, bool) {
	path, ok := h.selectSegment(ref)
	if !ok {
		return nil, false
	}
	vals := h.m.All(path)
	for i, v := range vals {
		if v == `""` {
			vals[i] = ""
		}
	}
	return vals, len(vals) > 0
}

// selectSegment rewrites "SEG[F=VALUE]-..." or "SEG[F.C=VALUE]-..." to
// "SEG[o]-...", o being the first occurrence of SEG whose field F
// (component C, default 1) equals VALUE without regard to case. Other
// paths are returned as they are. ok is false when no segment matches.
func (h hl7Fields) selectSegment(ref string) (string, bool) {
	if len(ref) < 6 || ref[3] != '[' {
		return ref, true
	}
	end := strings.IndexByte(ref, ']')
	sel, rest := ref[4:max(end, 4)], ref[max(end, 4)+1:]
	field, want, isSel := strings.Cut(sel, "=")
	if end < 0 || !isSel {
		return ref, true
	}
	fieldNum, comp, _ := strings.Cut(field, ".")
	f, err1 := strconv.Atoi(fieldNum)
	c, err2 := 1, error(nil)
	if comp != "" {
		c, err2 = strconv.Atoi(comp)
	}
	if err1 != nil || err2 != nil || f < 1 || c < 1 {
		return "", false
	}
	for o, seg := range h.m.SegmentsNamed(ref[:3]) {
		if strings.EqualFold(seg.Value(f, 1, c, 1), want) {
			return ref[:3] + "[" + strconv.Itoa(o+1) + "]" + rest, true
		}
	}
	return "", false
}

func (c *converter) record(rec connectors.Record) {
	pos := rec.Pos.String()
	if rec.Err != nil {
		c.sum.Read++
		reason := rec.Err.Error()
		if re, ok := rec.Err.(*connectors.RecordError); ok {
			reason = re.Reason // the position is already on the reject
		}
		c.reject(rec, pos, []string{reason})
		return
	}
	if c.m.Input.Format != mappings.FormatFHIR {
		c.sum.Read++
		c.convert(rec, pos, "", fieldsOf(rec))
		return
	}
	// A FHIR document holds one referral per ServiceRequest.
	for _, fr := range mappings.FHIRRecords(rec.JSON) {
		c.sum.Read++
		p := pos
		if fr.Path != "" {
			p += ":" + fr.Path
		}
		if fr.Err != nil {
			c.reject(rec, p, reasonsOf(fr.Err))
			continue
		}
		c.convert(rec, p, fr.Path, fr.Fields)
	}
}

// reasonsOf lists the reasons of a mapping error: one per problem.
func reasonsOf(err error) []string {
	var re *mappings.RecordError
	if errors.As(err, &re) {
		reasons := make([]string, len(re.Problems))
		for i, p := range re.Problems {
			reasons[i] = p.String()
		}
		return reasons
	}
	return []string{err.Error()}
}

// convert maps one record at pos and writes its bundle, or rejects it.
// fhirPath is the referral's path inside a FHIR document, or "".
func (c *converter) convert(rec connectors.Record, pos, fhirPath string, fields mappings.Fields) {
	ref, err := c.m.Apply(fields)
	if err != nil {
		c.reject(rec, pos, reasonsOf(err))
		return
	}
	h := fnv.New64a()
	h.Write([]byte(ref.SourceSystem + "\x00" + ref.RecordID))
	if first, dup := c.seen[h.Sum64()]; dup {
		c.reject(rec, pos, []string{"source.record_id: the same record id as " + c.position(first) + ": each record needs its own id"})
		return
	}
	bundle, err := mappings.Build(ref)
	if err != nil {
		c.reject(rec, pos, reasonsOf(err))
		return
	}
	if issues := fhir.Validate(bundle); issues.HasErrors() {
		var reasons []string
		for _, is := range issues.Errors() {
			reasons = append(reasons, "invalid bundle: "+is.String())
		}
		c.reject(rec, pos, reasons)
		return
	}
	data, err := fhir.Marshal(bundle)
	if err != nil {
		c.reject(rec, pos, []string{err.Error()})
		return
	}
	c.seen[h.Sum64()] = c.at(rec.Pos, fhirPath)
	data = append(data, '\n')
	// Flush only between bundles, so what reached the output is always
	// whole bundles, whatever happens next. A bundle larger than the
	// buffer is written in one call.
	if c.out.Available() < len(data) {
		c.out.Flush() // errors are sticky and surface at the last Flush
	}
	c.out.Write(data)
	c.sum.Converted++
}

// failInput records an input that could not be read to its end: in the
// rejects file (or on stderr) with the input's name and where it stopped.
// The error names the file, line or element and the syntax problem, never
// a value.
func (c *converter) failInput(path string, err error) {
	c.sum.Failed++
	reason := "input not read to the end: " + err.Error()
	if c.rejects == nil {
		c.clearProgress()
		fmt.Fprintf(c.s.err, "%s: %s\n", path, reason)
		return
	}
	b, _ := json.Marshal(convertReject{Position: path, Reasons: []string{reason}})
	c.rejects.Write(append(b, '\n'))
	fmt.Fprintf(c.s.err, "%s: %s (see the rejects file)\n", path, "input not read to the end")
}

func (c *converter) reject(rec connectors.Record, pos string, reasons []string) {
	c.sum.Rejected++
	if c.rejects == nil {
		c.clearProgress()
		fmt.Fprintf(c.s.err, "%s: rejected:\n", pos)
		for _, r := range reasons {
			fmt.Fprintf(c.s.err, "  %s\n", r)
		}
		return
	}
	b, _ := json.Marshal(convertReject{Position: pos, Reasons: reasons, Record: string(rec.Raw)})
	c.rejects.Write(append(b, '\n'))
}

func (c *converter) tick() {
	if !c.progress || time.Since(c.lastProgress) < 250*time.Millisecond {
		return
	}
	c.lastProgress = time.Now()
	rate := float64(c.sum.Read) / time.Since(c.started).Seconds()
	bar := ""
	if c.cur != nil && c.curSize > 0 {
		// The reader buffers ahead a little: the bar is the file's read
		// position, close enough to show how far along it is.
		if pos, err := c.cur.Seek(0, io.SeekCurrent); err == nil {
			bar = progressBar(float64(pos)/float64(c.curSize)) + " "
		}
	}
	fmt.Fprintf(c.s.err, "\r%s%d records: %d converted, %d rejected (%.0f/s)\033[K", bar, c.sum.Read, c.sum.Converted, c.sum.Rejected, rate)
}

func (c *converter) clearProgress() {
	if c.progress && !c.lastProgress.IsZero() {
		fmt.Fprint(c.s.err, "\r\033[K")
	}
}

// progressBar draws a fraction done as [#####.....] 50%.
func progressBar(done float64) string {
	done = min(max(done, 0), 1)
	const width = 20
	n := int(done*width + 0.5)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "] " + fmt.Sprintf("%3.0f%%", done*100)
}
