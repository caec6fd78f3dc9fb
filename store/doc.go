// Package store keeps Pathway's FHIR resources, with every version of each,
// in an embedded SQLite file or in PostgreSQL. Both pass the same conformance
// suite (package storetest), so everything above this package works the same
// on a laptop in a field office and on a shared database at scale.
//
// # Opening
//
// Open takes one URL, as given to --database or PATHWAY_DATABASE_URL:
//
//	""                            ./pathway.db (the default)
//	sqlite:///var/lib/pathway.db  an SQLite file at an absolute path
//	sqlite://pathway.db           an SQLite file at a relative path (a bare path works too)
//	postgres://user@host/db       PostgreSQL (postgresql:// too); ?search_path=schema picks the schema
//
// Open applies the embedded migrations (goose, one folder per dialect) before
// it returns, and is safe to run from several processes at once.
//
// SQLite runs in WAL mode with a busy timeout and foreign keys on. It has one
// writer at a time, so the store sends every write through a single
// connection whose transactions begin IMMEDIATE; reads use a separate pool and
// do not wait for writes. PostgreSQL uses a pgx/v5 pool.
//
// # Resources and versions
//
// A Resource is the serialised bytes of one FHIR resource (Data, in a Format
// the caller chooses, such as "proto") with the few values searches need
// (Patient, Status, Owner, Requester). Put writes a new version only when the
// bytes change: re-ingesting the same record is a no-op that returns the
// stored version. Every version is kept, by a database trigger, and GetVersion
// reads any of them, which the audit log relies on.
//
// Search filters one resource type on the indexed values and UpdatedSince,
// ordered by id, and pages by keyset (AfterID), never by offset.
//
// # Transactions
//
// WithTx runs a function in one transaction: it commits when the function
// returns nil and rolls back on an error or a panic. Inside it, use only the
// Tx it is given. The referral, its decision, its audit entry and its outbox
// message are written this way, together or not at all.
//
// # Personal data
//
// Resource and Query implement slog.LogValuer and log as type/id and version
// (or the names of the filters) only. Errors name resources by type/id and
// never carry their contents or indexed values.
//
// # Example
//
//	s, err := store.Open(ctx, "sqlite:///var/lib/pathway/pathway.db",
//		store.WithNowFunc(clock.Now), store.WithLogger(logger))
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//
//	task := store.Resource{
//		Type: "Task", ID: "referral-1", Source: "ngo-a",
//		Format: "proto", Data: data, // the caller's encoding of the resource
//		Patient: "Patient/p1", Status: "requested", Owner: "Organization/clinic-a",
//	}
//	err = s.WithTx(ctx, func(tx *store.Tx) error {
//		stored, err := tx.Put(ctx, task)
//		if err != nil {
//			return err
//		}
//		logger.Info("stored", "resource", stored) // resource.ref=Task/referral-1 resource.version=1
//		return nil // and the outbox message, in the same transaction
//	})
//
//	inbox, err := s.Search(ctx, store.Query{Type: "Task", Owner: "Organization/clinic-a", Status: "requested"})
//	first, err := s.GetVersion(ctx, "Task", "referral-1", 1)
//	_, err = s.Get(ctx, "Task", "unknown")
//	if errors.Is(err, store.ErrNotFound) { ... }
//
// The runnable Example in the tests does the same end to end.
package store
