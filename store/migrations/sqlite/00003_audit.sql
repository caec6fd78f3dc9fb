-- The audit log: an append-only Merkle tree (RFC 6962) of audit entries, and
-- the signed checkpoints of its size and root hash. Package audit defines
-- what the bytes mean; docs/audit.md describes them for outside verifiers.
--
-- audit_entries: one row per leaf. seq is the leaf index, from 0, without
-- gaps. data is the entry's canonical bytes (the leaf). nodes holds the
-- hashes, 32 bytes each, of the Merkle tree nodes this leaf completes:
-- level 0 (the leaf hash) first, then level 1, and so on up to level
-- trailing_zeros(seq + 1). Node (level l, index k) is therefore stored in
-- the row seq = (k + 1) * 2^l - 1 at byte offset 32 * l. entry_id,
-- exchange, kind and recorded_at repeat fields of data for lookups; data is
-- the authority.
--
-- audit_checkpoints: one signed note per log size (transparency-dev
-- checkpoint body, golang.org/x/mod/sumdb/note signature).
--
-- Timestamps are UTC text in one fixed-width layout
-- (2006-01-02T15:04:05.000000Z), so text order is time order.

-- +goose Up
CREATE TABLE audit_entries (
    seq         INTEGER PRIMARY KEY CHECK (seq >= 0),
    entry_id    TEXT    NOT NULL UNIQUE,
    exchange    TEXT    NOT NULL DEFAULT '',
    kind        TEXT    NOT NULL,
    recorded_at TEXT    NOT NULL,
    data        BLOB    NOT NULL,
    nodes       BLOB    NOT NULL CHECK (length(nodes) >= 32 AND length(nodes) % 32 = 0)
) STRICT;

CREATE INDEX audit_entries_exchange_idx ON audit_entries (exchange, seq);
-- No index on recorded_at: every extra index is written by every append;
-- exports by time scan in sequence order.

CREATE TABLE audit_checkpoints (
    size       INTEGER PRIMARY KEY CHECK (size >= 1),
    root       BLOB    NOT NULL CHECK (length(root) = 32),
    note       BLOB    NOT NULL,
    created_at TEXT    NOT NULL
) STRICT;

-- Append-only, enforced by the database: no write path of Pathway updates or
-- deletes an audit row. (Someone with direct access to the database can
-- drop these triggers; the Merkle tree and the signed checkpoints are what
-- make that visible.)

-- +goose StatementBegin
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER audit_checkpoints_no_delete;
DROP TRIGGER audit_checkpoints_no_update;
DROP TRIGGER audit_entries_no_delete;
DROP TRIGGER audit_entries_no_update;
DROP TABLE audit_checkpoints;
DROP TABLE audit_entries;
