package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	"github.com/pathway-fhir/pathway/fhir"
	"github.com/pathway-fhir/pathway/store"
	"github.com/spf13/cobra"
)

type demoOptions struct {
	database string
	data     string
	rejects  string
	json     bool
}

func newDemoCmd(s streams) *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Validate the sample referral data and store it",
		Long: `Validate the sample referrals in testdata/demo (an NGO referral Bundle, a
clinic's NDJSON export and a deliberately broken record) and store every
valid record in the embedded SQLite store (or the database you name).

A record is one NDJSON line or one JSON file; a Bundle is stored whole or
not at all. Each rejected record goes to the rejects file with its position
and issues, and the others go on. Running the demo again changes nothing:
stored resources are versioned by content.

Routing, consent filtering and delivery to partners are not built yet, so
the demo sends nothing anywhere.`,
		Example: `  pathway demo
  pathway demo --database sqlite:///tmp/demo.db --json
  pathway demo --database postgres://postgres@127.0.0.1:5432/test`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), o, s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.database, "database", "", "store URL: sqlite:///path.db or postgres://... (default $PATHWAY_DATABASE_URL, else sqlite://pathway.db)")
	f.StringVar(&o.data, "data", "testdata/demo", "folder of sample .json and .ndjson files")
	f.StringVar(&o.rejects, "rejects", "pathway-demo-rejects.ndjson", "file to write rejected records to, with their issues")
	f.BoolVar(&o.json, "json", false, "print the summary as one JSON object")
	return cmd
}

// demoSummary is what the demo did, printed as text or JSON.
type demoSummary struct {
	Database  string           `json:"database"`
	Files     int              `json:"files"`
	Records   int              `json:"records"`
	Stored    int              `json:"stored"`
	Changed   int              `json:"changed"`
	Rejected  int              `json:"rejected"`
	Rejects   string           `json:"rejects_file,omitempty"`
	InStore   map[string]int64 `json:"in_store"`
	Exchanged int              `json:"exchanged"`
}

// reject is one line of the rejects file: where the record was, why it was
// rejected, and the record itself, so nothing is lost and it can be fixed
// and loaded again. The file holds personal data like its source does.
type reject struct {
	File   string          `json:"file"`
	Index  *int            `json:"index"`
	Issues []rejectIssue   `json:"issues"`
	Record json.RawMessage `json:"record"`
}

type rejectIssue struct {
	Severity fhir.Severity `json:"severity"`
	Path     string        `json:"path"`
	Code     string        `json:"code"`
	Details  string        `json:"details"`
}

func runDemo(ctx context.Context, o demoOptions, s streams) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if info, err := os.Stat(o.data); err != nil || !info.IsDir() {
		return usageErrorf("sample data folder %q not found: run from the repository root, or pass --data", o.data)
	}
	url := databaseURL(o.database)
	st, err := store.Open(ctx, url)
	if err != nil {
		return &exitError{code: exitInvalid, msg: err.Error()}
	}
	defer st.Close()

	sum := demoSummary{Database: store.RedactURL(url), InStore: map[string]int64{}}
	var rejects []reject
	err = filepath.WalkDir(o.data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ext := strings.ToLower(filepath.Ext(path))
		if ext != ".json" && ext != ".ndjson" {
			return nil
		}
		sum.Files++
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		var records [][]byte
		if ext == ".ndjson" {
			records = bytes.Split(data, []byte("\n"))
		} else {
			records = [][]byte{data}
		}
		for i, rec := range records {
			rec = bytes.TrimSpace(rec)
			if len(rec) == 0 {
				continue
			}
			sum.Records++
			var index *int
			if ext == ".ndjson" {
				line := i + 1
				index = &line
			}
			r := fhir.Parse(rec)
			if !r.Valid() {
				sum.Rejected++
				rejects = append(rejects, newReject(path, index, r.Issues, rec))
				continue
			}
			stored, changed, err := storeRecord(ctx, st, r.Resource, path)
			if err != nil {
				return err
			}
			sum.Stored += stored
			sum.Changed += changed
		}
		return nil
	})
	if err != nil {
		return &exitError{code: exitInvalid, msg: err.Error()}
	}
	if len(rejects) > 0 {
		if err := writeRejects(o.rejects, rejects); err != nil {
			return &exitError{code: exitInvalid, msg: err.Error()}
		}
		sum.Rejects = o.rejects
	}
	for _, t := range []string{"Patient", "ServiceRequest", "Consent", "Task"} {
		n, err := st.Count(ctx, t)
		if err != nil {
			return &exitError{code: exitInvalid, msg: err.Error()}
		}
		sum.InStore[t] = n
	}
	return printDemo(s.out, sum, o.json)
}

// storeRecord stores one valid record: every resource of a transaction or
// batch Bundle in one database transaction, or a single resource. It
// returns how many resources were stored and how many of them changed.
func storeRecord(ctx context.Context, st *store.Store, cr *fhir.ContainedResource, source string) (stored, changed int, err error) {
	resources := []*fhir.ContainedResource{cr}
	if b := cr.GetBundle(); b != nil && (b.GetType().GetValue() == cpb.BundleTypeCode_TRANSACTION || b.GetType().GetValue() == cpb.BundleTypeCode_BATCH) {
		// A transaction or batch is processed as a FHIR server would: its
		// entries become resources. Other bundles are stored as they are.
		if resources, err = fhir.TransactionResources(b); err != nil {
			return 0, 0, fmt.Errorf("storing %s: %w", source, err)
		}
	}
	err = st.WithTx(ctx, func(tx *store.Tx) error {
		for _, res := range resources {
			row, err := storeRow(res, source)
			if err != nil {
				return err
			}
			var before int64
			if cur, err := tx.Get(ctx, row.Type, row.ID); err == nil {
				before = cur.Version
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			after, err := tx.Put(ctx, row)
			if err != nil {
				return err
			}
			stored++
			if after.Version != before {
				changed++
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("storing %s: %w", source, err)
	}
	return stored, changed, nil
}

func storeRow(res *fhir.ContainedResource, source string) (store.Resource, error) {
	data, err := fhir.MarshalBinary(res)
	if err != nil {
		return store.Resource{}, err
	}
	sf := fhir.SearchFieldsOf(res)
	return store.Resource{
		Type: fhir.TypeOf(res), ID: fhir.IDOf(res), Source: filepath.ToSlash(source),
		Format: "proto", Data: data, Hash: sha256.Sum256(data),
		Patient: sf.Patient, Status: sf.Status, Owner: sf.Owner, Requester: sf.Requester,
	}, nil
}

func newReject(file string, index *int, issues fhir.Issues, record []byte) reject {
	r := reject{File: file, Index: index, Record: json.RawMessage(record)}
	if !json.Valid(record) {
		quoted, _ := json.Marshal(string(record))
		r.Record = quoted
	}
	for _, is := range issues {
		r.Issues = append(r.Issues, rejectIssue{is.Severity, is.Path, is.Code, is.Details})
	}
	return r
}

func writeRejects(path string, rejects []reject) error {
	var buf bytes.Buffer
	for _, r := range rejects {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("writing rejects file: %w", err)
	}
	return nil
}

func printDemo(w io.Writer, sum demoSummary, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(sum)
	}
	fmt.Fprintf(w, "Read %d records from %d files.\n", sum.Records, sum.Files)
	fmt.Fprintf(w, "Stored %d resources in %s (%d new or changed versions).\n", sum.Stored, sum.Database, sum.Changed)
	if sum.Rejected > 0 {
		fmt.Fprintf(w, "Rejected %d records; each is in %s with its issues.\n", sum.Rejected, sum.Rejects)
	}
	types := make([]string, 0, len(sum.InStore))
	for t := range sum.InStore {
		types = append(types, t)
	}
	sort.Strings(types)
	counts := make([]string, len(types))
	for i, t := range types {
		counts[i] = fmt.Sprintf("%s %d", t, sum.InStore[t])
	}
	fmt.Fprintf(w, "Now in the store: %s.\n", strings.Join(counts, ", "))
	fmt.Fprintln(w, "Nothing was sent to any partner: routing, consent filtering and delivery are not built yet.")
	return nil
}
