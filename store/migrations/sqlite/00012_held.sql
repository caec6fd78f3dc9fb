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
    stream          TEXT NOT NULL PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    partner         TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         BLOB NOT NULL,
    payload_ref     TEXT NOT NULL DEFAULT '',
    patient         TEXT NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
) STRICT;

CREATE INDEX held_messages_patient_idx ON held_messages (patient, stream);

-- +goose Down
DROP TABLE held_messages;
