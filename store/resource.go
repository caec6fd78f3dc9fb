package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Resource is one version of a FHIR resource as the store holds it: its
// identity, its version metadata, its serialised bytes and the few values
// searches need.
//
// Data and the indexed values (Patient, Status, Owner, Requester) may hold
// personal data; Resource logs as its type/id and version only.
type Resource struct {
	// Type is the FHIR resource type, such as "ServiceRequest".
	Type string
	// ID is the FHIR logical id, unique within Type.
	ID string
	// Version counts the changed writes of this resource: 1 for the first,
	// one more for each Put whose content differs. Set by the store.
	Version int64
	// LastUpdated is when this version was written, in UTC to the
	// microsecond, from the store's clock. Set by the store.
	LastUpdated time.Time
	// Source names the partner or connector this version came from.
	Source string
	// Format names the encoding of Data, such as "proto" or "json"; the
	// caller chooses it and the store only keeps it.
	Format string
	// Data is the serialised resource.
	Data []byte
	// Hash is the SHA-256 of Data. Set by the store.
	Hash [32]byte
	// Patient is the reference of the patient the resource is about, such as
	// "Patient/123", or empty.
	Patient string
	// Status is the resource's status code, such as "active", or empty.
	Status string
	// Owner is the reference of the organisation the resource is addressed
	// to (a Task's owner, a ServiceRequest's performer), or empty.
	Owner string
	// Requester is the reference of the organisation that asked (a Task's or
	// ServiceRequest's requester), or empty.
	Requester string
}

// Ref returns the resource's relative reference, "Type/ID".
func (r Resource) Ref() string { return r.Type + "/" + r.ID }

// LogValue implements slog.LogValuer: a resource logs as its reference and
// version, never its data or indexed values.
func (r Resource) LogValue() slog.Value {
	if r.Version == 0 {
		return slog.GroupValue(slog.String("ref", r.Ref()))
	}
	return slog.GroupValue(slog.String("ref", r.Ref()), slog.Int64("version", r.Version))
}

// Default and largest page sizes of Search.
const (
	DefaultSearchLimit = 100
	MaxSearchLimit     = 1000
)

// Query selects current resources of one type. Every non-zero field narrows
// the result; zero fields do not filter.
//
// Indexes serve the searches Pathway makes (searchIndexes): by patient
// for Consents and Tasks, by status and UpdatedSince for Tasks, by owner
// and requester for every type. Other searches are answered as well, by
// reading the type's rows.
type Query struct {
	// Type is the resource type searched. Required.
	Type string
	// Patient matches Resource.Patient exactly.
	Patient string
	// Status matches Resource.Status exactly.
	Status string
	// Owner matches Resource.Owner exactly.
	Owner string
	// Requester matches Resource.Requester exactly.
	Requester string
	// UpdatedSince keeps resources whose current version was written at or
	// after this time (FHIR _lastUpdated=ge).
	UpdatedSince time.Time
	// Limit caps the number of results: 0 means DefaultSearchLimit, and more
	// than MaxSearchLimit is an error.
	Limit int
	// AfterID keeps resources whose id sorts (bytewise) after it: pass the
	// last id of one page to get the next.
	AfterID string
}

// LogValue implements slog.LogValuer: a query logs its type and the names of
// the filters it uses, not their values.
func (q Query) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("type", q.Type)}
	var filters []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"patient", q.Patient != ""},
		{"status", q.Status != ""},
		{"owner", q.Owner != ""},
		{"requester", q.Requester != ""},
		{"updated_since", !q.UpdatedSince.IsZero()},
		{"after_id", q.AfterID != ""},
	} {
		if f.set {
			filters = append(filters, f.name)
		}
	}
	if len(filters) > 0 {
		attrs = append(attrs, slog.Any("filters", filters))
	}
	if q.Limit != 0 {
		attrs = append(attrs, slog.Int("limit", q.Limit))
	}
	return slog.GroupValue(attrs...)
}

// validTypeName reports whether s looks like a FHIR resource type name:
// an upper-case ASCII letter, then ASCII letters, at most 64 bytes.
func validTypeName(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// validID reports whether s is a FHIR id: 1 to 64 of A-Z a-z 0-9 - .
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// checkKey validates a type and id. Invalid values are not echoed: they came
// from outside and could be anything.
func checkKey(resourceType, id string) error {
	if !validTypeName(resourceType) {
		return errors.New("resource type is not a FHIR resource type name")
	}
	if !validID(id) {
		return fmt.Errorf("%s id is not a FHIR id (1 to 64 of A-Z a-z 0-9 - .)", resourceType)
	}
	return nil
}

// checkResource validates what Put needs. The messages name the resource by
// type/id only.
func checkResource(r *Resource) error {
	if err := checkKey(r.Type, r.ID); err != nil {
		return err
	}
	if r.Format == "" {
		return fmt.Errorf("resource %s has no format", r.Ref())
	}
	if len(r.Data) == 0 {
		return fmt.Errorf("resource %s has no data", r.Ref())
	}
	return nil
}

// stamp sets the store-owned fields of r for a write at time at.
func stamp(r *Resource, at time.Time) {
	r.Hash = sha256.Sum256(r.Data)
	r.LastUpdated = at
	r.Version = 0
}

// clock returns the store's time, in UTC truncated to the microsecond so that
// both databases return exactly what was written.
func (s *Store) clock() time.Time { return normTime(s.now()) }

func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

const resourceColumns = "resource_type, id, version, last_updated, source, format, data, hash, patient, status, owner, requester"

// statements are the fixed SQL texts of a dialect, with its placeholders.
type statements struct {
	upsert     string
	get        string
	getVersion string
	count      string
	countAll   string
	auditHead  string
	// lockRow reads the current version as get does, locking its row on
	// PostgreSQL; update writes a new version of it if it is still at a
	// given version and its content differs (Tx.Update).
	lockRow string
	update  string
}

// upsertTail is the conflict clause shared by single and multi-row upserts:
// a new version only when the content differs.
const upsertTail = ` ON CONFLICT (resource_type, id) DO UPDATE SET
	version = resources.version + 1,
	last_updated = excluded.last_updated,
	source = excluded.source,
	format = excluded.format,
	data = excluded.data,
	hash = excluded.hash,
	patient = excluded.patient,
	status = excluded.status,
	owner = excluded.owner,
	requester = excluded.requester
WHERE resources.hash <> excluded.hash OR resources.format <> excluded.format`

func newStatements(d Dialect) *statements {
	return &statements{
		upsert: rebind(d, `INSERT INTO resources (`+resourceColumns+`)
VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)`+upsertTail+`
RETURNING version`),
		get: rebind(d, `SELECT `+resourceColumns+` FROM resources WHERE resource_type = ? AND id = ?`),
		// The current version is in resources, the ones before it in
		// resource_history (migration 00007).
		getVersion: rebind(d, `SELECT `+resourceColumns+` FROM resources WHERE resource_type = ? AND id = ? AND version = ?
UNION ALL
SELECT `+resourceColumns+` FROM resource_history WHERE resource_type = ? AND id = ? AND version = ?`),
		count:     rebind(d, `SELECT count(*) FROM resources WHERE resource_type = ?`),
		countAll:  `SELECT count(*) FROM resources`,
		auditHead: auditHeadSQL(d),
		lockRow:   rebind(d, `SELECT `+resourceColumns+` FROM resources WHERE resource_type = ? AND id = ?`+lockTail(d)),
		update: rebind(d, `UPDATE resources SET version = version + 1, last_updated = ?, source = ?, format = ?, data = ?, hash = ?,
	patient = ?, status = ?, owner = ?, requester = ?
WHERE resource_type = ? AND id = ? AND version = ? AND (hash <> ? OR format <> ?)
RETURNING version`),
	}
}

// lockTail locks the rows a SELECT reads until the transaction ends, on
// PostgreSQL; a SQLite transaction holds the database's write lock already.
func lockTail(d Dialect) string {
	if d == DialectPostgres {
		return " FOR UPDATE"
	}
	return ""
}

// timeArg encodes a time as the dialect stores it.
func (s *Store) timeArg(t time.Time) any {
	if s.dialect == DialectSQLite {
		return formatSQLiteTime(t)
	}
	return t
}

func (s *Store) put(ctx context.Context, q querier, r Resource) (Resource, error) {
	if err := checkResource(&r); err != nil {
		return Resource{}, fmt.Errorf("putting resource: %w", err)
	}
	stamp(&r, s.clock())
	version, written, err := s.upsertOne(ctx, q, &r)
	if err != nil {
		return Resource{}, fmt.Errorf("putting resource %s: %w", r.Ref(), err)
	}
	if written {
		r.Version = version
		return r, nil
	}
	// Same content as the current version: return that, unchanged.
	cur, err := s.get(ctx, q, r.Type, r.ID)
	if err != nil {
		return Resource{}, fmt.Errorf("putting resource %s: reading unchanged version: %w", r.Ref(), err)
	}
	return cur, nil
}

// Update writes r as Put does, provided the current version of r is
// version: otherwise it writes nothing and returns an error wrapping
// ErrConflict, or ErrNotFound when r is not stored. As with Put, content
// the same as the current version's writes nothing and returns that
// version. The row stays locked (PostgreSQL) until the transaction ends,
// and reading it and writing it are one round trip.
func (tx *Tx) Update(ctx context.Context, r Resource, version int64) (Resource, error) {
	s := tx.s
	if err := checkResource(&r); err != nil {
		return Resource{}, fmt.Errorf("updating resource: %w", err)
	}
	stamp(&r, s.clock())
	var (
		cur   Resource
		found bool
	)
	// The row is locked before the UPDATE runs (a pipeline runs in
	// order), so the UPDATE finds the version read here.
	lock := statement{sql: s.sql.lockRow, args: []any{r.Type, r.ID}, scan: func(rs rows) error {
		if !rs.Next() {
			return nil
		}
		var err error
		cur, err = scanResource(rs)
		found = err == nil
		return err
	}}
	rs, err := tx.q.queryAfter(ctx, []statement{lock}, s.sql.update,
		s.timeArg(r.LastUpdated), r.Source, r.Format, r.Data, r.Hash[:], r.Patient, r.Status, r.Owner, r.Requester,
		r.Type, r.ID, version, r.Hash[:], r.Format)
	if err != nil {
		return Resource{}, fmt.Errorf("updating resource %s: %w", r.Ref(), err)
	}
	written := rs.Next()
	if written {
		err = rs.Scan(&r.Version)
	}
	rs.Close()
	if err == nil {
		err = rs.Err()
	}
	switch {
	case err != nil:
		return Resource{}, fmt.Errorf("updating resource %s: %w", r.Ref(), err)
	case !found:
		return Resource{}, fmt.Errorf("updating resource %s: %w", r.Ref(), ErrNotFound)
	case cur.Version != version:
		return Resource{}, fmt.Errorf("updating resource %s: at version %d, not %d: %w", r.Ref(), cur.Version, version, ErrConflict)
	case written:
		return r, nil
	}
	return cur, nil // the same content
}

// upsertOne runs the single-row upsert. written is false when the stored
// content was the same and nothing changed.
func (s *Store) upsertOne(ctx context.Context, q querier, r *Resource) (version int64, written bool, err error) {
	rs, err := q.query(ctx, s.sql.upsert,
		r.Type, r.ID, s.timeArg(r.LastUpdated), r.Source, r.Format, r.Data, r.Hash[:],
		r.Patient, r.Status, r.Owner, r.Requester)
	if err != nil {
		return 0, false, err
	}
	defer rs.Close()
	if rs.Next() {
		if err := rs.Scan(&version); err != nil {
			return 0, false, err
		}
		written = true
	}
	if err := rs.Err(); err != nil {
		return 0, false, err
	}
	return version, written, nil
}

func (s *Store) putBatch(ctx context.Context, q querier, rs []Resource) error {
	if len(rs) == 0 {
		return nil
	}
	at := s.clock()
	batch := make([]Resource, len(rs))
	for i, r := range rs {
		if err := checkResource(&r); err != nil {
			return fmt.Errorf("putting batch: item %d: %w", i, err)
		}
		if r.Hash != ([32]byte{}) && r.Version == 0 && r.LastUpdated.IsZero() {
			// Hashed by the caller, which has it (the pipeline hashes on
			// the cores that prepare, not on the one writer).
			r.LastUpdated = at
		} else {
			stamp(&r, at)
		}
		batch[i] = r
	}
	rounds := splitRounds(batch)
	var err error
	switch s.dialect {
	case DialectSQLite:
		for _, round := range rounds {
			if err = s.sqliteUpsertMany(ctx, q, round); err != nil {
				break
			}
		}
	case DialectPostgres:
		// All rounds in one pipeline: a batch holding many versions of
		// one resource (the decided bundle of a page's changes, say) is
		// one round trip, not one per version.
		var stmts []statement
		for _, round := range rounds {
			stmts = append(stmts, postgresUpserts(round, at)...)
		}
		err = execAll(ctx, q, stmts)
	default:
		err = fmt.Errorf("unhandled dialect %q", s.dialect)
	}
	if err != nil {
		return fmt.Errorf("putting batch of %d resources: %w", len(rs), err)
	}
	return nil
}

// execAll runs stmts in order, in one round trip on PostgreSQL.
func execAll(ctx context.Context, q querier, stmts []statement) error {
	if len(stmts) == 0 {
		return nil
	}
	last := stmts[len(stmts)-1]
	rs, err := q.queryAfter(ctx, stmts[:len(stmts)-1], last.sql, last.args...)
	if err != nil {
		return err
	}
	rs.Close()
	return rs.Err()
}

// splitRounds splits a batch so that no round holds the same type/id twice
// (PostgreSQL refuses to upsert one row twice in a statement). The n-th
// occurrence of a key goes into round n, so applying the rounds in order
// applies each key's writes in slice order.
func splitRounds(rs []Resource) [][]Resource {
	type key struct{ t, id string }
	seen := make(map[key]int, len(rs))
	dup := false
	for _, r := range rs {
		k := key{r.Type, r.ID}
		if seen[k] > 0 {
			dup = true
		}
		seen[k]++
	}
	if !dup {
		return [][]Resource{rs}
	}
	clear(seen)
	var rounds [][]Resource
	for _, r := range rs {
		k := key{r.Type, r.ID}
		n := seen[k]
		seen[k]++
		if n == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[n] = append(rounds[n], r)
	}
	return rounds
}

func (s *Store) get(ctx context.Context, q querier, resourceType, id string) (Resource, error) {
	if err := checkKey(resourceType, id); err != nil {
		return Resource{}, fmt.Errorf("getting resource: %w", err)
	}
	r, err := s.queryOne(ctx, q, s.sql.get, resourceType, id)
	if err != nil {
		return Resource{}, fmt.Errorf("getting resource %s/%s: %w", resourceType, id, err)
	}
	return r, nil
}

func (s *Store) getVersion(ctx context.Context, q querier, resourceType, id string, version int64) (Resource, error) {
	if err := checkKey(resourceType, id); err != nil {
		return Resource{}, fmt.Errorf("getting resource version: %w", err)
	}
	if version < 1 {
		return Resource{}, fmt.Errorf("getting resource %s/%s version %d: %w", resourceType, id, version, ErrNotFound)
	}
	r, err := s.queryOne(ctx, q, s.sql.getVersion, resourceType, id, version, resourceType, id, version)
	if err != nil {
		return Resource{}, fmt.Errorf("getting resource %s/%s version %d: %w", resourceType, id, version, err)
	}
	return r, nil
}

// queryOne runs a query for at most one resource; none is ErrNotFound.
func (s *Store) queryOne(ctx context.Context, q querier, query string, args ...any) (Resource, error) {
	rs, err := q.query(ctx, query, args...)
	if err != nil {
		return Resource{}, err
	}
	defer rs.Close()
	if !rs.Next() {
		if err := rs.Err(); err != nil {
			return Resource{}, err
		}
		return Resource{}, ErrNotFound
	}
	r, err := scanResource(rs)
	if err != nil {
		return Resource{}, err
	}
	return r, rs.Err()
}

func (s *Store) search(ctx context.Context, q querier, sq Query) ([]Resource, error) {
	query, args, err := s.searchSQL(sq)
	if err != nil {
		return nil, err
	}
	rs, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("searching %s resources: %w", sq.Type, err)
	}
	out, err := scanResources(rs)
	if err != nil {
		return nil, fmt.Errorf("searching %s resources: %w", sq.Type, err)
	}
	return out, nil
}

// searchSQL is the statement and arguments of a search.
func (s *Store) searchSQL(sq Query) (string, []any, error) {
	if !validTypeName(sq.Type) {
		return "", nil, errors.New("searching resources: query type is not a FHIR resource type name")
	}
	limit := sq.Limit
	switch {
	case limit == 0:
		limit = DefaultSearchLimit
	case limit < 0 || limit > MaxSearchLimit:
		return "", nil, fmt.Errorf("searching %s resources: limit %d is outside 1 to %d", sq.Type, sq.Limit, MaxSearchLimit)
	}
	query := `SELECT ` + resourceColumns + ` FROM resources WHERE resource_type = ?`
	args := []any{sq.Type}
	var conds []string
	for _, f := range []struct{ col, val string }{
		{"patient", sq.Patient},
		{"status", sq.Status},
		{"owner", sq.Owner},
		{"requester", sq.Requester},
	} {
		if f.val != "" {
			query += ` AND ` + f.col + ` = ?`
			args = append(args, f.val)
			conds = indexCond(conds, f.col, sq.Type, f.val)
		}
	}
	if !sq.UpdatedSince.IsZero() {
		query += ` AND last_updated >= ?`
		args = append(args, s.timeArg(normTime(sq.UpdatedSince)))
		conds = indexCond(conds, "last_updated", sq.Type)
	}
	for _, c := range conds {
		query += ` AND ` + c
	}
	if sq.AfterID != "" {
		query += ` AND id > ?`
		args = append(args, sq.AfterID)
	}
	query += ` ORDER BY id LIMIT ?`
	args = append(args, limit)
	return rebind(s.dialect, query), args, nil
}

// searchIndex is one of the partial search indexes of resources
// (migration 00011).
type searchIndex struct {
	// name is the index's name.
	name string
	// types are the resource types whose rows the index can hold; nil
	// means every type.
	types []string
	// valued says the index holds only rows with a value in its column
	// (not the empty text).
	valued bool
	// cond is the index's WHERE clause, word for word as the migration
	// states it: a query is planned with the index only when it states
	// the same condition (SQLite matches it term for term; a generic plan
	// of PostgreSQL cannot prove it from a parameter).
	cond string
}

// searchIndexes are the partial indexes of resources by the column they
// search. TestSearchIndexesMatchSchema holds them equal to the schema.
var searchIndexes = map[string]searchIndex{
	"patient":      {name: "resources_patient_idx", types: []string{"Consent", "Task"}, cond: "resource_type IN ('Consent', 'Task')"},
	"status":       {name: "resources_status_idx", types: []string{"Task"}, cond: "resource_type = 'Task'"},
	"owner":        {name: "resources_owner_idx", valued: true, cond: "owner <> ''"},
	"requester":    {name: "resources_requester_idx", valued: true, cond: "requester <> ''"},
	"last_updated": {name: "resources_last_updated_idx", types: []string{"Task"}, cond: "resource_type = 'Task'"},
}

// indexCond adds to conds, once, the condition of the search index of
// col when the index holds the rows a query of resourceType whose col is
// one of vals can find (none of them empty, if the index holds only
// valued rows). The query then implies the condition already: stating it
// changes no result, only the plan.
func indexCond(conds []string, col, resourceType string, vals ...string) []string {
	ix, ok := searchIndexes[col]
	switch {
	case !ok, slices.Contains(conds, ix.cond),
		ix.types != nil && !slices.Contains(ix.types, resourceType),
		ix.valued && slices.Contains(vals, ""):
		return conds
	}
	return append(conds, ix.cond)
}

// scanResources reads every row of rs (resourceColumns) and closes it.
func scanResources(rs rows) ([]Resource, error) {
	defer rs.Close()
	var out []Resource
	for rs.Next() {
		r, err := scanResource(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// GetAndSearch returns what Get(resourceType, id) and Search(q) return,
// read in one round trip on PostgreSQL (the two queries in one pipeline):
// a resource and the resources about it, such as a patient and its
// consents. found is false when the resource is not stored.
func (s *Store) GetAndSearch(ctx context.Context, resourceType, id string, q Query) (r Resource, found bool, rs []Resource, err error) {
	if err := s.checkOpen(); err != nil {
		return Resource{}, false, nil, fmt.Errorf("getting resource: %w", err)
	}
	if err := checkKey(resourceType, id); err != nil {
		return Resource{}, false, nil, fmt.Errorf("getting resource: %w", err)
	}
	query, args, err := s.searchSQL(q)
	if err != nil {
		return Resource{}, false, nil, err
	}
	get := statement{sql: s.sql.get, args: []any{resourceType, id}, scan: func(rs rows) error {
		if !rs.Next() {
			return nil
		}
		var err error
		r, err = scanResource(rs)
		found = err == nil
		return err
	}}
	res, err := s.be.reader().queryAfter(ctx, []statement{get}, query, args...)
	if err == nil {
		rs, err = scanResources(res)
	}
	if err != nil {
		return Resource{}, false, nil, fmt.Errorf("getting resource %s/%s and searching %s resources: %w", resourceType, id, q.Type, err)
	}
	return r, found, rs, nil
}

func (s *Store) count(ctx context.Context, q querier, resourceType string) (int64, error) {
	query, args := s.sql.countAll, []any(nil)
	if resourceType != "" {
		if !validTypeName(resourceType) {
			return 0, errors.New("counting resources: type is not a FHIR resource type name")
		}
		query, args = s.sql.count, []any{resourceType}
	}
	rs, err := q.query(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("counting %s resources: %w", resourceType, err)
	}
	defer rs.Close()
	var n int64
	if rs.Next() {
		if err := rs.Scan(&n); err != nil {
			return 0, fmt.Errorf("counting %s resources: %w", resourceType, err)
		}
	}
	if err := rs.Err(); err != nil {
		return 0, fmt.Errorf("counting %s resources: %w", resourceType, err)
	}
	return n, nil
}

// scanResource reads one row of resourceColumns.
func scanResource(rs rows) (Resource, error) {
	var (
		r    Resource
		ts   timeValue
		hash []byte
	)
	if err := rs.Scan(&r.Type, &r.ID, &r.Version, &ts, &r.Source, &r.Format, &r.Data, &hash,
		&r.Patient, &r.Status, &r.Owner, &r.Requester); err != nil {
		return Resource{}, fmt.Errorf("reading row: %w", err)
	}
	if len(hash) != len(r.Hash) {
		return Resource{}, fmt.Errorf("reading row of %s: stored hash has %d bytes, want %d", r.Ref(), len(hash), len(r.Hash))
	}
	copy(r.Hash[:], hash)
	r.LastUpdated = ts.t
	return r, nil
}

// sqliteTimeLayout is how SQLite holds times: UTC, fixed width, so that text
// order is time order.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

func formatSQLiteTime(t time.Time) string { return t.UTC().Format(sqliteTimeLayout) }

// timeValue scans a timestamp from either database: PostgreSQL hands over a
// time.Time, SQLite the text written by formatSQLiteTime.
type timeValue struct{ t time.Time }

func (v *timeValue) Scan(src any) error {
	switch x := src.(type) {
	case time.Time:
		v.t = x.UTC()
		return nil
	case string:
		return v.parse(x)
	case []byte:
		return v.parse(string(x))
	default:
		return fmt.Errorf("scanning timestamp: unexpected %T", src)
	}
}

func (v *timeValue) parse(s string) error {
	t, err := time.Parse(sqliteTimeLayout, s)
	if err != nil {
		// Accept any RFC 3339 time, should a row have been written by hand.
		t, err = time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("scanning timestamp: %w", err)
		}
	}
	v.t = t.UTC()
	return nil
}

// Head is what Heads reports of a stored resource: who sent its current
// version, its status, its version and the hash of its bytes.
type Head struct {
	Source  string
	Status  string
	Version int64
	Hash    [32]byte
}

// Heads returns the current heads of the resources keys names
// ("Type/id"), in one query, by key; keys not stored are left out.
func (tx *Tx) Heads(ctx context.Context, keys []string) (map[string]Head, error) {
	out := make(map[string]Head, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	types := make([]string, len(keys))
	ids := make([]string, len(keys))
	for i, k := range keys {
		typ, id, ok := strings.Cut(k, "/")
		if !ok {
			return nil, fmt.Errorf("heads: %q is not Type/id", k)
		}
		if err := checkKey(typ, id); err != nil {
			return nil, fmt.Errorf("heads: %w", err)
		}
		types[i], ids[i] = typ, id
	}
	from, args := tx.s.keysFrom(types, ids)
	rs, err := tx.q.query(ctx, rebind(tx.s.dialect, `SELECT r.resource_type, r.id, r.source, r.status, r.version, r.hash FROM `+from), args...)
	if err != nil {
		return nil, fmt.Errorf("heads: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		var typ, id string
		var h Head
		var hash []byte
		if err := rs.Scan(&typ, &id, &h.Source, &h.Status, &h.Version, &hash); err != nil {
			return nil, fmt.Errorf("heads: %w", err)
		}
		copy(h.Hash[:], hash)
		out[typ+"/"+id] = h
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("heads: %w", err)
	}
	return out, nil
}
