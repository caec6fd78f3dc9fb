-- The outbox: messages waiting to be delivered to a partner, written in the
-- same transaction as the decision that allowed them. Workers claim due
-- messages with a lease, then ack, retry later, dead-letter or withhold
-- them. The payload is opaque to the database.
--
-- state: pending (waiting for next_attempt_at), inflight (claimed until
-- lease_until), delivered, dead (gave up after the allowed attempts, or
-- refused for good by the partner), withheld (the decision no longer
-- allows the send, e.g. the consent was revoked after enqueue).

-- +goose Up
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    idempotency_key TEXT    NOT NULL UNIQUE,
    partner         TEXT    NOT NULL,
    purpose         TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    payload         BLOB    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'inflight', 'delivered', 'dead', 'withheld')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TEXT    NOT NULL,
    lease_owner     TEXT    NOT NULL DEFAULT '',
    lease_until     TEXT,
    last_error      TEXT    NOT NULL DEFAULT '',
    response        BLOB,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
) STRICT;

CREATE INDEX outbox_due_idx     ON outbox (state, next_attempt_at, id);
CREATE INDEX outbox_lease_idx   ON outbox (state, lease_until, id);
CREATE INDEX outbox_partner_idx ON outbox (partner, state, id);

-- +goose Down
DROP TABLE outbox;
