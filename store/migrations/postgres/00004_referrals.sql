-- Referral routing: where each referral (its ServiceRequest) was routed, or
-- why it could not be, so that nothing is dropped and operators can list
-- what is held (`pathway referrals --unroutable`). Codes and reasons only:
-- the reasons name partners, levels and codes, never personal data.

-- +goose Up
CREATE TABLE referrals (
    service_request text COLLATE "C" NOT NULL PRIMARY KEY,
    source          text        NOT NULL,
    risk            text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('routed', 'unroutable')),
    targets         text        NOT NULL DEFAULT '',
    reason          text        NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL
);

CREATE INDEX referrals_status_idx ON referrals (status, service_request);

-- +goose Down
DROP TABLE referrals;
