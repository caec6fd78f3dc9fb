-- The large values (resources' and their history's FHIR bytes, the
-- outbox's and the held messages' payloads) are compressed with lz4 instead of PostgreSQL's
-- default pglz: most rows of an ingest are over the 2 kB at which
-- PostgreSQL compresses a row, and pglz took about a third of the
-- server's CPU time writing them (lz4 compresses several times faster,
-- a little less tightly). Values written before keep their pglz
-- compression and read as they did: the method is recorded with each
-- value. A server built without lz4 keeps pglz.

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    ALTER TABLE resources ALTER COLUMN data SET COMPRESSION lz4;
    ALTER TABLE resource_history ALTER COLUMN data SET COMPRESSION lz4;
    ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION lz4;
    ALTER TABLE held_messages ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this server has no lz4: values stay compressed with pglz';
END
$$;
-- +goose StatementEnd

-- +goose Down
ALTER TABLE resources ALTER COLUMN data SET COMPRESSION DEFAULT;
ALTER TABLE resource_history ALTER COLUMN data SET COMPRESSION DEFAULT;
ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION DEFAULT;
ALTER TABLE held_messages ALTER COLUMN payload SET COMPRESSION DEFAULT;
