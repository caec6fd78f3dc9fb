-- Sync with partners' FHIR servers (`pathway sync`): per partner, the
-- watermark (the largest meta.lastUpdated of the referrals pulled and
-- ingested so far) and the ids pulled at exactly that instant, so a restart
-- resumes where the last page ended and neither skips nor repeats; and the
-- referrals that could not be converted, with their reasons. Ids, instants
-- and reasons only (reasons name elements and rules, never values).

-- +goose Up
CREATE TABLE sync_state (
    partner      TEXT NOT NULL PRIMARY KEY,
    watermark    TEXT NOT NULL,
    at_watermark TEXT NOT NULL DEFAULT '',
    updated_at   TEXT NOT NULL
) STRICT;

CREATE TABLE sync_rejects (
    partner      TEXT NOT NULL,
    resource     TEXT NOT NULL,
    last_updated TEXT NOT NULL,
    reason       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (partner, resource, last_updated)
) STRICT;

-- +goose Down
DROP TABLE sync_rejects;
DROP TABLE sync_state;
