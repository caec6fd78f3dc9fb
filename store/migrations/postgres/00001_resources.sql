-- Resources: the current version of every FHIR resource Pathway holds, and
-- every version it ever held. The payload is opaque to the database: the
-- caller chooses its encoding and names it in format.
--
-- Text keys use the "C" collation so ids sort bytewise, as they do in SQLite:
-- keyset paging returns the same pages on both stores.

-- +goose Up
CREATE TABLE resources (
    resource_type text COLLATE "C" NOT NULL,
    id            text COLLATE "C" NOT NULL,
    version       bigint      NOT NULL CHECK (version >= 1),
    last_updated  timestamptz NOT NULL,
    source        text        NOT NULL,
    format        text        NOT NULL,
    data          bytea       NOT NULL,
    hash          bytea       NOT NULL CHECK (octet_length(hash) = 32),
    patient       text COLLATE "C" NOT NULL DEFAULT '',
    status        text COLLATE "C" NOT NULL DEFAULT '',
    owner         text COLLATE "C" NOT NULL DEFAULT '',
    requester     text COLLATE "C" NOT NULL DEFAULT '',
    PRIMARY KEY (resource_type, id)
);

CREATE INDEX resources_patient_idx      ON resources (resource_type, patient, id);
CREATE INDEX resources_status_idx       ON resources (resource_type, status, id);
CREATE INDEX resources_owner_idx        ON resources (resource_type, owner, id);
CREATE INDEX resources_requester_idx    ON resources (resource_type, requester, id);
CREATE INDEX resources_last_updated_idx ON resources (resource_type, last_updated);

CREATE TABLE resource_history (
    resource_type text COLLATE "C" NOT NULL,
    id            text COLLATE "C" NOT NULL,
    version       bigint      NOT NULL CHECK (version >= 1),
    last_updated  timestamptz NOT NULL,
    source        text        NOT NULL,
    format        text        NOT NULL,
    data          bytea       NOT NULL,
    hash          bytea       NOT NULL CHECK (octet_length(hash) = 32),
    patient       text COLLATE "C" NOT NULL DEFAULT '',
    status        text COLLATE "C" NOT NULL DEFAULT '',
    owner         text COLLATE "C" NOT NULL DEFAULT '',
    requester     text COLLATE "C" NOT NULL DEFAULT '',
    PRIMARY KEY (resource_type, id, version)
);

-- History is kept by the database, so no write path can skip it. The triggers
-- are per statement with transition tables: one multi-row upsert costs one
-- INSERT ... SELECT into the history, not one call per row. An upsert that
-- finds the same content updates nothing and so records nothing. The function
-- keeps the search_path it was created with, so the history lands beside the
-- table whatever the calling session's search_path is.

-- +goose StatementBegin
CREATE FUNCTION resources_keep_history() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO resource_history (resource_type, id, version, last_updated, source, format, data, hash, patient, status, owner, requester)
    SELECT resource_type, id, version, last_updated, source, format, data, hash, patient, status, owner, requester
    FROM new_rows;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER resources_history_insert AFTER INSERT ON resources
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION resources_keep_history();

CREATE TRIGGER resources_history_update AFTER UPDATE ON resources
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION resources_keep_history();

-- +goose Down
DROP TRIGGER resources_history_update ON resources;
DROP TRIGGER resources_history_insert ON resources;
DROP FUNCTION resources_keep_history();
DROP TABLE resource_history;
DROP TABLE resources;
