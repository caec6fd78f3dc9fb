-- Held referrals: what a referral would send to a partner its decision did
-- not permit when it was decided (no consent yet, a consent that does not
-- name the partner, a purpose outside the agreement). Nothing is dropped:
-- the message waits here, one per referral and partner (its outbox stream),
-- until a later decision permits it: a consent recorded for the patient
-- re-decides their held messages and moves those now permitted to the
-- outbox, and a re-sent referral that is permitted replaces its slot.
-- (Numbered 00012: 00011 is taken by another change in progress.)

-- +goose Up
CREATE TABLE held_messages (
    stream          text COLLATE "C" NOT NULL PRIMARY KEY,
    idempotency_key text COLLATE "C" NOT NULL,
    partner         text COLLATE "C" NOT NULL,
    purpose         text NOT NULL,
    kind            text NOT NULL,
    payload         bytea NOT NULL,
    payload_ref     text NOT NULL DEFAULT '',
    patient         text COLLATE "C" NOT NULL,
    reason          text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE INDEX held_messages_patient_idx ON held_messages (patient, stream);

-- +goose Down
DROP TABLE held_messages;
