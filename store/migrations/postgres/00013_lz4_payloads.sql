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
    -- SET COMPRESSION is PostgreSQL 14's: run as text, so that an older
    -- server skips it rather than fail to parse it.
    IF current_setting('server_version_num')::int < 140000 THEN
        RAISE NOTICE 'PostgreSQL before 14 has no per-column compression: values stay compressed with pglz';
        RETURN;
    END IF;
    EXECUTE 'ALTER TABLE resources ALTER COLUMN data SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE resource_history ALTER COLUMN data SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE held_messages ALTER COLUMN payload SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this server has no lz4: values stay compressed with pglz';
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'ALTER TABLE resources ALTER COLUMN data SET COMPRESSION DEFAULT';
        EXECUTE 'ALTER TABLE resource_history ALTER COLUMN data SET COMPRESSION DEFAULT';
        EXECUTE 'ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION DEFAULT';
        EXECUTE 'ALTER TABLE held_messages ALTER COLUMN payload SET COMPRESSION DEFAULT';
    END IF;
END
$$;
-- +goose StatementEnd
