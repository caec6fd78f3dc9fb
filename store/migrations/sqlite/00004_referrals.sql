-- Referral routing: where each referral (its ServiceRequest) was routed, or
-- why it could not be, so that nothing is dropped and operators can list
-- what is held (`pathway referrals --unroutable`). Codes and reasons only:
-- the reasons name partners, levels and codes, never personal data.

-- +goose Up
CREATE TABLE referrals (
    service_request TEXT NOT NULL PRIMARY KEY,
    source          TEXT NOT NULL,
    risk            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('routed', 'unroutable')),
    targets         TEXT NOT NULL DEFAULT '',
    reason          TEXT NOT NULL DEFAULT '',
    updated_at      TEXT NOT NULL
) STRICT;

CREATE INDEX referrals_status_idx ON referrals (status, service_request);

-- +goose Down
DROP TABLE referrals;
