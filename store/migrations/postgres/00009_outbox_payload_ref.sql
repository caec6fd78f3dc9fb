-- A message's payload can be a version of a stored resource instead of its
-- own copy of the bytes: with the audit log, the bundle decided at ingest
-- is kept as a versioned Bundle (the decision's input), and the message
-- names that version (Type/id/_history/N) instead of holding the same
-- 10 to 15 KB again. The payload column is then empty. Messages enqueued
-- before this migration hold their payloads.

-- +goose Up
ALTER TABLE outbox ADD COLUMN payload_ref TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE outbox DROP COLUMN payload_ref;
