-- Sync with partners' FHIR servers (`pathway sync`): per partner, the
-- watermark (the largest meta.lastUpdated of the referrals pulled and
-- ingested so far) and the ids pulled at exactly that instant, so a restart
-- resumes where the last page ended and neither skips nor repeats; and the
-- referrals that could not be converted, with their reasons. Ids, instants
-- and reasons only (reasons name elements and rules, never values).

-- +goose Up
CREATE TABLE sync_state (
    partner      text COLLATE "C" NOT NULL PRIMARY KEY,
    watermark    timestamptz NOT NULL,
    at_watermark text        NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL
);

CREATE TABLE sync_rejects (
    partner      text COLLATE "C" NOT NULL,
    resource     text COLLATE "C" NOT NULL,
    last_updated timestamptz NOT NULL,
    reason       text        NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (partner, resource, last_updated)
);

-- +goose Down
DROP TABLE sync_rejects;
DROP TABLE sync_state;
