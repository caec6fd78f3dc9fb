-- The outbox: messages waiting to be delivered to a partner, written in the
-- same transaction as the decision that allowed them. Workers claim due
-- messages with a lease (FOR UPDATE SKIP LOCKED), then ack, retry later,
-- dead-letter or withhold them. The payload is opaque to the database.
--
-- state: pending (waiting for next_attempt_at), inflight (claimed until
-- lease_until), delivered, dead (gave up after the allowed attempts, or
-- refused for good by the partner), withheld (the decision no longer
-- allows the send, e.g. the consent was revoked after enqueue).

-- +goose Up
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key text COLLATE "C" NOT NULL UNIQUE,
    partner         text COLLATE "C" NOT NULL,
    purpose         text        NOT NULL,
    kind            text        NOT NULL,
    payload         bytea       NOT NULL,
    state           text        NOT NULL CHECK (state IN ('pending', 'inflight', 'delivered', 'dead', 'withheld')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL,
    lease_owner     text        NOT NULL DEFAULT '',
    lease_until     timestamptz,
    last_error      text        NOT NULL DEFAULT '',
    response        bytea,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE INDEX outbox_due_idx     ON outbox (state, next_attempt_at, id);
CREATE INDEX outbox_lease_idx   ON outbox (state, lease_until, id);
CREATE INDEX outbox_partner_idx ON outbox (partner, state, id);

-- +goose Down
DROP TABLE outbox;
