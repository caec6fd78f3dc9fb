package store_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"modernc.org/sqlite"

	"github.com/pathway-fhir/pathway/store"
)

// The insert benchmarks write benchResources resources, benchBatch to a
// transaction, into a fresh store each iteration (opening it is not timed).
const (
	benchResources = 10_000
	benchBatch     = 500
)

var benchData = sync.OnceValue(func() []store.Resource {
	rs := make([]store.Resource, benchResources)
	for i := range rs {
		id := fmt.Sprintf("sr-%06d", i)
		rs[i] = store.Resource{
			Type:      "ServiceRequest",
			ID:        id,
			Source:    "ngo-a",
			Format:    "json",
			Data:      benchPayload(i, id),
			Patient:   fmt.Sprintf("Patient/p-%05d", i/3),
			Status:    []string{"draft", "active", "completed"}[i%3],
			Owner:     fmt.Sprintf("Organization/partner-%02d", i%17),
			Requester: fmt.Sprintf("Organization/ngo-%02d", i%5),
		}
		rs[i].Hash = sha256.Sum256(rs[i].Data) // for the raw inserts
	}
	return rs
})

// benchPayload is a social-prescribing ServiceRequest of about 1.5 KB, as
// FHIR JSON, different for every i.
func benchPayload(i int, id string) []byte {
	p := fmt.Sprintf(`{"resourceType":"ServiceRequest","id":%q,`+
		`"meta":{"versionId":"1","lastUpdated":"2025-05-01T12:00:00Z","security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"},{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},`+
		`"identifier":[{"system":"https://ngo-a.example.org/case","value":"case-%07d"}],`+
		`"status":"active","intent":"order","priority":%q,`+
		`"category":[{"coding":[{"system":"http://snomed.info/sct","code":"410606002","display":"Social service procedure"}]}],`+
		`"code":{"coding":[{"system":"http://snomed.info/sct","code":"%d","display":"Referral to community link worker"}],"text":"Link worker referral %d"},`+
		`"subject":{"reference":"Patient/p-%05d"},"authoredOn":"2025-04-%02dT09:%02d:00Z",`+
		`"requester":{"reference":"Organization/ngo-%02d"},"performer":[{"reference":"Organization/partner-%02d"}],`+
		`"reasonCode":[{"coding":[{"system":"http://snomed.info/sct","code":"%d","display":"Social isolation"}],"text":"Lives alone since arrival, no local network, asks for Arabic-speaking group activities (ref %08x)"}],`+
		`"note":[{"text":"Prefers a female link worker. Interpreter needed for first contact. Available weekday mornings. Has young children; childcare during sessions would help. Previously attended a walking group and found it useful. Case %d."}],`+
		`"extension":[{"url":"https://pathway.example.org/fhir/StructureDefinition/interpreter-needed","valueBoolean":true},{"url":"https://pathway.example.org/fhir/StructureDefinition/delivery-format","valueCode":"in-person"}],`+
		`"occurrencePeriod":{"start":"2025-05-%02d","end":"2025-08-%02d"}}`,
		id, i, []string{"routine", "urgent", "asap"}[i%3], 306000000+i%997, i,
		i/3, 1+i%28, i%60, i%5, i%17, 1000000+i*7919%1000003, uint32(i)*2654435761, i, 1+i%28, 1+i%28)
	return []byte(p)
}

func BenchmarkPutBatch(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchPutBatch(b, func(b *testing.B) string { return sqliteURL(b) }) })
	b.Run("postgres", func(b *testing.B) { benchPutBatch(b, func(b *testing.B) string { return postgresURL(b) }) })
}

func benchPutBatch(b *testing.B, newURL func(b *testing.B) string) {
	rs := benchData()
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		s, err := store.Open(ctx, newURL(b))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for j := 0; j < len(rs); j += benchBatch {
			if err := s.PutBatch(ctx, rs[j:min(j+benchBatch, len(rs))]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if n, err := s.Count(ctx, "ServiceRequest"); err != nil || n != benchResources {
			b.Fatalf("Count = %d, %v; want %d", n, err, benchResources)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportRate(b)
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N*benchResources)/b.Elapsed().Seconds(), "resources/s")
}

// rawTable is the resources table without the store: same columns, keys and
// indexes, no history, no upsert.
const rawTable = `CREATE TABLE raw_resources (
	resource_type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
	last_updated %[1]s NOT NULL, source TEXT NOT NULL, format TEXT NOT NULL,
	data %[2]s NOT NULL, hash %[2]s NOT NULL,
	patient TEXT NOT NULL, status TEXT NOT NULL, owner TEXT NOT NULL, requester TEXT NOT NULL,
	PRIMARY KEY (resource_type, id));
CREATE INDEX raw_patient ON raw_resources (resource_type, patient, id);
CREATE INDEX raw_status ON raw_resources (resource_type, status, id);
CREATE INDEX raw_owner ON raw_resources (resource_type, owner, id);
CREATE INDEX raw_requester ON raw_resources (resource_type, requester, id);
CREATE INDEX raw_last_updated ON raw_resources (resource_type, last_updated);`

// rawHistorySQLite and rawHistoryPostgres add to the raw table the copy of
// every row into a history table that the store makes, by the same kind of
// trigger, so the cost of keeping history and the cost of the rest of the
// store's layer can be told apart.
const (
	rawHistorySQLite = `CREATE TABLE raw_history AS SELECT * FROM raw_resources WHERE 0;
CREATE UNIQUE INDEX raw_history_pk ON raw_history (resource_type, id, version);
CREATE TRIGGER raw_keep_history AFTER INSERT ON raw_resources BEGIN
	INSERT INTO raw_history VALUES (NEW.resource_type, NEW.id, NEW.version, NEW.last_updated, NEW.source, NEW.format,
		NEW.data, NEW.hash, NEW.patient, NEW.status, NEW.owner, NEW.requester);
END;`
	rawHistoryPostgres = `CREATE TABLE raw_history (LIKE raw_resources, PRIMARY KEY (resource_type, id, version));
CREATE FUNCTION raw_keep_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO raw_history SELECT * FROM new_rows; RETURN NULL; END $$;
CREATE TRIGGER raw_keep_history AFTER INSERT ON raw_resources
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION raw_keep_history();`
)

// rawTables lists the tables a raw benchmark fills.
func rawTables(extraDDL string) []string {
	if extraDDL == "" {
		return []string{"raw_resources"}
	}
	return []string{"raw_resources", "raw_history"}
}

func BenchmarkRawInsert(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchRawSQLite(b, "") })
	b.Run("postgres", func(b *testing.B) { benchRawPostgres(b, "") })
	b.Run("sqlite+history", func(b *testing.B) { benchRawSQLite(b, rawHistorySQLite) })
	b.Run("postgres+history", func(b *testing.B) { benchRawPostgres(b, rawHistoryPostgres) })
}

// benchRawSQLite inserts with database/sql and modernc.org/sqlite directly:
// the same file settings as the store (WAL, IMMEDIATE transactions), the same
// 100-row multi-row INSERT, one transaction per batch.
// extraDDL runs after the table is created.
func benchRawSQLite(b *testing.B, extraDDL string) {
	const rowsPerStmt = 100
	rs := benchData()
	ctx := context.Background()
	stmt := `INSERT INTO raw_resources VALUES ` + strings.TrimSuffix(strings.Repeat(`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?),`, rowsPerStmt), ",")
	for range b.N {
		b.StopTimer()
		params := url.Values{"_busy_timeout": {"10000"}, "_foreign_keys": {"1"}, "_journal_mode": {"WAL"}, "_txlock": {"immediate"}}
		dsn := (&url.URL{Scheme: "file", Path: filepath.Join(b.TempDir(), "raw.db"), RawQuery: params.Encode()}).String()
		c, err := sqlite.NewConnector(dsn)
		if err != nil {
			b.Fatal(err)
		}
		db := sql.OpenDB(c)
		db.SetMaxOpenConns(1)
		if _, err := db.ExecContext(ctx, fmt.Sprintf(rawTable, "TEXT", "BLOB")+extraDDL); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for j := 0; j < len(rs); j += benchBatch {
			ts := time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			batch := rs[j:min(j+benchBatch, len(rs))]
			for k := 0; k < len(batch); k += rowsPerStmt {
				chunk := batch[k:min(k+rowsPerStmt, len(batch))]
				if len(chunk) != rowsPerStmt {
					b.Fatal("batch is not a multiple of rowsPerStmt")
				}
				args := make([]any, 0, 12*len(chunk))
				for _, r := range chunk {
					args = append(args, r.Type, r.ID, 1, ts, r.Source, r.Format, r.Data, r.Hash[:], r.Patient, r.Status, r.Owner, r.Requester)
				}
				if _, err := tx.ExecContext(ctx, stmt, args...); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		for _, table := range rawTables(extraDDL) {
			var n int
			if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != benchResources {
				b.Fatalf("%s holds %d rows (%v), want %d", table, n, err, benchResources)
			}
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportRate(b)
}

// benchRawPostgres inserts with pgx's COPY protocol directly, one CopyFrom
// per batch: the fastest way into PostgreSQL, so a ceiling for the store's
// upserts rather than a like-for-like statement.
// extraDDL runs after the table is created.
func benchRawPostgres(b *testing.B, extraDDL string) {
	rs := benchData()
	ctx := context.Background()
	cols := []string{"resource_type", "id", "version", "last_updated", "source", "format", "data", "hash", "patient", "status", "owner", "requester"}
	for range b.N {
		b.StopTimer()
		conn, err := pgx.Connect(ctx, postgresURL(b))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Exec(ctx, fmt.Sprintf(rawTable, "timestamptz", "bytea")+extraDDL); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for j := 0; j < len(rs); j += benchBatch {
			ts := time.Now()
			batch := rs[j:min(j+benchBatch, len(rs))]
			n, err := conn.CopyFrom(ctx, pgx.Identifier{"raw_resources"}, cols,
				pgx.CopyFromSlice(len(batch), func(k int) ([]any, error) {
					r := &batch[k]
					return []any{r.Type, r.ID, int64(1), ts, r.Source, r.Format, r.Data, r.Hash[:], r.Patient, r.Status, r.Owner, r.Requester}, nil
				}))
			if err != nil || n != int64(len(batch)) {
				b.Fatalf("CopyFrom: %d rows, %v", n, err)
			}
		}
		b.StopTimer()
		for _, table := range rawTables(extraDDL) {
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != benchResources {
				b.Fatalf("%s holds %d rows (%v), want %d", table, n, err, benchResources)
			}
		}
		if err := conn.Close(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportRate(b)
}
