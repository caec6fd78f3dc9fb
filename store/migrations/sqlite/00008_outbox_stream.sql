-- A message's stream orders delivery: a message is not claimed while an
-- older message of the same (non-empty) stream is pending or inflight, so
-- that a partner receives the versions of one referral in the order they
-- were made and an older version is never sent after a newer one. Messages
-- enqueued before this migration have no stream (no order among them).

-- +goose Up
ALTER TABLE outbox ADD COLUMN stream TEXT NOT NULL DEFAULT '';
CREATE INDEX outbox_stream_idx ON outbox (stream, id);

-- +goose Down
DROP INDEX outbox_stream_idx;
ALTER TABLE outbox DROP COLUMN stream;
