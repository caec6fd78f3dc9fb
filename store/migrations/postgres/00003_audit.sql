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
-- Appends take a transaction-level advisory lock (one sequencer per schema
-- at a time), so sequence numbers are handed out without gaps.

-- +goose Up
CREATE TABLE audit_entries (
    seq         bigint      PRIMARY KEY CHECK (seq >= 0),
    entry_id    text COLLATE "C" NOT NULL UNIQUE,
    exchange    text COLLATE "C" NOT NULL DEFAULT '',
    kind        text        NOT NULL,
    recorded_at timestamptz NOT NULL,
    data        bytea       NOT NULL,
    nodes       bytea       NOT NULL CHECK (octet_length(nodes) >= 32 AND octet_length(nodes) % 32 = 0)
);

CREATE INDEX audit_entries_exchange_idx ON audit_entries (exchange, seq);
-- No index on recorded_at: every extra index is written by every append;
-- exports by time scan in sequence order.

CREATE TABLE audit_checkpoints (
    size       bigint      PRIMARY KEY CHECK (size >= 1),
    root       bytea       NOT NULL CHECK (octet_length(root) = 32),
    note       bytea       NOT NULL,
    created_at timestamptz NOT NULL
);

-- Append-only, enforced by the database: no write path of Pathway updates or
-- deletes an audit row. (Someone with direct access to the database can
-- drop these triggers; the Merkle tree and the signed checkpoints are what
-- make that visible.)

-- +goose StatementBegin
CREATE FUNCTION audit_append_only() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION '% rows are append-only', TG_TABLE_NAME;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- +goose Down
DROP TRIGGER audit_checkpoints_no_truncate ON audit_checkpoints;
DROP TRIGGER audit_checkpoints_append_only ON audit_checkpoints;
DROP TRIGGER audit_entries_no_truncate ON audit_entries;
DROP TRIGGER audit_entries_append_only ON audit_entries;
DROP FUNCTION audit_append_only();
DROP TABLE audit_checkpoints;
DROP TABLE audit_entries;
