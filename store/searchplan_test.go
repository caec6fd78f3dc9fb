package store

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// testStoreURLs are a new SQLite store and, when the test server is set,
// a new PostgreSQL schema, by dialect.
func testStoreURLs(t *testing.T) map[Dialect]string {
	urls := map[Dialect]string{DialectSQLite: "sqlite://" + t.TempDir() + "/pathway.db"}
	if u := testPostgresURL(t); u != "" {
		urls[DialectPostgres] = u
	}
	return urls
}

// putSearchRows stores a few thousand resources shaped like an ingest's:
// Tasks and ServiceRequests with owners and requesters, and Consents,
// Observations and kept Bundles about the same patients.
func putSearchRows(t *testing.T, s *Store) {
	t.Helper()
	var rows []Resource
	statuses := []string{"requested", "accepted", "in-progress", "completed"}
	for i := range 400 {
		patient := fmt.Sprintf("Patient/p%d", i)
		add := func(typ, id, status, owner, requester string) {
			rows = append(rows, Resource{Type: typ, ID: id, Source: "test", Format: "json", Data: []byte(`{"id":"` + id + `"}`),
				Patient: patient, Status: status, Owner: owner, Requester: requester})
		}
		add("Task", fmt.Sprintf("t%d", i), statuses[i%len(statuses)], fmt.Sprintf("Organization/o%d", i%10), fmt.Sprintf("Organization/r%d", i%5))
		add("ServiceRequest", fmt.Sprintf("sr%d", i), "active", "", fmt.Sprintf("Organization/r%d", i%5))
		add("Consent", fmt.Sprintf("c%d", i), "active", "", "")
		add("Bundle", fmt.Sprintf("b%d", i), "", "", "")
		for j := range 5 {
			add("Observation", fmt.Sprintf("obs%d-%d", i, j), "final", "", "")
		}
	}
	if err := s.PutBatch(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
}

// queryPlan is the plan the store's database makes of query, as text:
// on PostgreSQL its generic plan (the one a prepared statement settles
// on), with the table's statistics up to date.
func queryPlan(t *testing.T, s *Store, query string, args []any) string {
	t.Helper()
	ctx := t.Context()
	var plan []string
	err := s.WithTx(ctx, func(tx *Tx) error {
		rs, err := func() (rows, error) {
			if s.dialect == DialectSQLite {
				return tx.q.query(ctx, "EXPLAIN QUERY PLAN "+query, args...)
			}
			// EXPLAIN of a statement with parameters plans it for their
			// values; EXPLAIN EXECUTE of a prepared one shows the plan
			// that runs.
			lits := make([]string, len(args))
			for i, a := range args {
				lits[i] = pgLiteral(t, a)
			}
			for _, stmt := range []string{"SET LOCAL plan_cache_mode = force_generic_plan", "PREPARE plan_test AS " + query} {
				if err := tx.q.exec(ctx, stmt); err != nil {
					return nil, err
				}
			}
			return tx.q.query(ctx, "EXPLAIN EXECUTE plan_test("+strings.Join(lits, ", ")+")")
		}()
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			if s.dialect == DialectPostgres {
				var line string
				if err := rs.Scan(&line); err != nil {
					return err
				}
				plan = append(plan, line)
				continue
			}
			var id, parent, notUsed int
			var detail string
			if err := rs.Scan(&id, &parent, &notUsed, &detail); err != nil {
				return err
			}
			plan = append(plan, detail)
		}
		if err := rs.Err(); err != nil {
			return err
		}
		if s.dialect == DialectPostgres {
			return tx.q.exec(ctx, "DEALLOCATE plan_test")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("explaining %s: %v", query, err)
	}
	return strings.Join(plan, "\n")
}

// pgLiteral is a as a PostgreSQL literal.
func pgLiteral(t *testing.T, a any) string {
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	switch v := a.(type) {
	case string:
		return quote(v)
	case int:
		return fmt.Sprint(v)
	case time.Time:
		return quote(v.Format(time.RFC3339Nano))
	case []string:
		elems := make([]string, len(v))
		for i, e := range v {
			elems[i] = quote(e)
		}
		return "ARRAY[" + strings.Join(elems, ", ") + "]::text[]"
	}
	t.Fatalf("no literal for %T", a)
	return ""
}

// planIndex matches the index a plan reads, on either database.
var planIndex = regexp.MustCompile(`(?:USING (?:COVERING )?INDEX|Index (?:Only )?Scan using|Bitmap Index Scan on) (\w+)`)

// TestSearchPlansUseIndexes: every search the ingest, the partner API and
// the Task sync make is planned with a search index, on both stores,
// although the indexes are partial (migration 00011): each query states
// the condition of the index it needs.
func TestSearchPlansUseIndexes(t *testing.T) {
	for d, u := range testStoreURLs(t) {
		t.Run(string(d), func(t *testing.T) {
			ctx := t.Context()
			s, err := Open(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			putSearchRows(t, s)
			if d == DialectPostgres {
				if err := s.be.writer().exec(ctx, "ANALYZE resources"); err != nil {
					t.Fatal(err)
				}
			}
			search := func(q Query) func() (string, []any) {
				return func() (string, []any) {
					query, args, err := s.searchSQL(q)
					if err != nil {
						t.Fatal(err)
					}
					return query, args
				}
			}
			since := time.Now().Add(time.Hour) // the recent changes, none here
			for _, c := range []struct {
				name  string
				sql   func() (string, []any)
				index []string // any of them
			}{
				{"consents of a patient", search(Query{Type: "Consent", Patient: "Patient/p1", Limit: MaxSearchLimit}), []string{"resources_patient_idx"}},
				{"consents of patients", func() (string, []any) {
					return s.selectInSQL("Consent", "patient", []string{"Patient/p1", "Patient/p2"}, " ORDER BY patient, id")
				}, []string{"resources_patient_idx"}},
				{"tasks of a patient", search(Query{Type: "Task", Patient: "Patient/p1"}), []string{"resources_patient_idx"}},
				{"tasks by status", search(Query{Type: "Task", Status: "requested"}), []string{"resources_status_idx"}},
				{"tasks of an owner", search(Query{Type: "Task", Owner: "Organization/o1", Limit: MaxSearchLimit}), []string{"resources_owner_idx"}},
				{"tasks of a requester", search(Query{Type: "Task", Requester: "Organization/r1"}), []string{"resources_requester_idx"}},
				{"tasks of an owner by status", search(Query{Type: "Task", Owner: "Organization/o1", Status: "accepted", Limit: 1}), []string{"resources_owner_idx", "resources_status_idx"}},
				{"tasks of a patient and owner", search(Query{Type: "Task", Patient: "Patient/p1", Owner: "Organization/o1", Limit: 10}), []string{"resources_patient_idx", "resources_owner_idx"}},
				{"tasks of a patient and requester", search(Query{Type: "Task", Patient: "Patient/p1", Requester: "Organization/r1", Limit: 1}), []string{"resources_patient_idx", "resources_requester_idx"}},
				{"tasks updated since", search(Query{Type: "Task", UpdatedSince: since}), []string{"resources_last_updated_idx"}},
				{"open referrals", func() (string, []any) { return s.openReferralsSQL([]string{"t1"}) }, []string{"resources_status_idx", "resources_owner_idx"}},
			} {
				// PostgreSQL's generic plan of a range on last_updated (a
				// third of the rows, it guesses) walks the primary key in
				// id order under the LIMIT, as it did before migration
				// 00011.
				if c.name == "tasks updated since" && d == DialectPostgres {
					continue
				}
				query, args := c.sql()
				plan := queryPlan(t, s, query, args)
				var used []string
				for _, m := range planIndex.FindAllStringSubmatch(plan, -1) {
					used = append(used, m[1])
				}
				if !slices.ContainsFunc(used, func(ix string) bool { return slices.Contains(c.index, ix) }) {
					t.Errorf("%s: planned without %s:\n%s\n%s", c.name, strings.Join(c.index, " or "), query, plan)
				}
			}
		})
	}
}

// TestSearchIndexesMatchSchema: searchIndexes states each partial index
// of resources with its WHERE clause word for word, and both dialects
// create the same indexes.
func TestSearchIndexesMatchSchema(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, "sqlite://"+t.TempDir()+"/pathway.db")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, err := s.be.reader().query(ctx, `SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'resources' AND sql IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	schema := map[string]string{}
	for rs.Next() {
		var name, def string
		if err := rs.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		schema[name] = def
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	if len(schema) != len(searchIndexes) {
		t.Errorf("resources has %d indexes, searchIndexes states %d", len(schema), len(searchIndexes))
	}
	for col, ix := range searchIndexes {
		def := schema[ix.name]
		if !strings.Contains(def, "("+`resource_type, `+col) || !strings.HasSuffix(def, " WHERE "+ix.cond) {
			t.Errorf("index %s of %s: schema has %q, want an index on it WHERE %s", ix.name, col, def, ix.cond)
		}
	}
	// The two dialects' migration create the same indexes.
	creates := func(dir string) []string {
		data, err := migrations.ReadFile("migrations/" + dir + "/00011_partial_search_indexes.sql")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "CREATE INDEX") {
				out = append(out, line)
			}
		}
		return out
	}
	if lite, pg := creates("sqlite"), creates("postgres"); len(lite) == 0 || !slices.Equal(lite, pg) {
		t.Errorf("migration 00011 creates other indexes on SQLite than on PostgreSQL:\n%s\n%s", strings.Join(lite, "\n"), strings.Join(pg, "\n"))
	}
}
