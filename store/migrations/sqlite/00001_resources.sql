-- Resources: the current version of every FHIR resource Pathway holds, and
-- every version it ever held. The payload is opaque to the database: the
-- caller chooses its encoding and names it in format.
--
-- Timestamps are UTC text in one fixed-width layout
-- (2006-01-02T15:04:05.000000Z), so text order is time order.

-- +goose Up
CREATE TABLE resources (
    resource_type TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    version       INTEGER NOT NULL CHECK (version >= 1),
    last_updated  TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    format        TEXT    NOT NULL,
    data          BLOB    NOT NULL,
    hash          BLOB    NOT NULL CHECK (length(hash) = 32),
    patient       TEXT    NOT NULL DEFAULT '',
    status        TEXT    NOT NULL DEFAULT '',
    owner         TEXT    NOT NULL DEFAULT '',
    requester     TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (resource_type, id)
) STRICT;

CREATE INDEX resources_patient_idx      ON resources (resource_type, patient, id);
CREATE INDEX resources_status_idx       ON resources (resource_type, status, id);
CREATE INDEX resources_owner_idx        ON resources (resource_type, owner, id);
CREATE INDEX resources_requester_idx    ON resources (resource_type, requester, id);
CREATE INDEX resources_last_updated_idx ON resources (resource_type, last_updated);

CREATE TABLE resource_history (
    resource_type TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    version       INTEGER NOT NULL CHECK (version >= 1),
    last_updated  TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    format        TEXT    NOT NULL,
    data          BLOB    NOT NULL,
    hash          BLOB    NOT NULL CHECK (length(hash) = 32),
    patient       TEXT    NOT NULL DEFAULT '',
    status        TEXT    NOT NULL DEFAULT '',
    owner         TEXT    NOT NULL DEFAULT '',
    requester     TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (resource_type, id, version)
) STRICT;

-- History is kept by the database, so no write path can skip it. An upsert
-- that finds the same content updates nothing and so records nothing.

-- +goose StatementBegin
CREATE TRIGGER resources_history_insert AFTER INSERT ON resources
BEGIN
    INSERT INTO resource_history (resource_type, id, version, last_updated, source, format, data, hash, patient, status, owner, requester)
    VALUES (NEW.resource_type, NEW.id, NEW.version, NEW.last_updated, NEW.source, NEW.format, NEW.data, NEW.hash, NEW.patient, NEW.status, NEW.owner, NEW.requester);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER resources_history_update AFTER UPDATE ON resources
BEGIN
    INSERT INTO resource_history (resource_type, id, version, last_updated, source, format, data, hash, patient, status, owner, requester)
    VALUES (NEW.resource_type, NEW.id, NEW.version, NEW.last_updated, NEW.source, NEW.format, NEW.data, NEW.hash, NEW.patient, NEW.status, NEW.owner, NEW.requester);
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER resources_history_update;
DROP TRIGGER resources_history_insert;
DROP TABLE resource_history;
DROP TABLE resources;
