-- SMART Backend Services (pathway serve): the access tokens issued, kept
-- only as the SHA-256 of the token, with the partner, its granted scopes and
-- when it expires; and the client assertions used (partner and jti), until
-- they expire, so none is used twice. Shared by every serve process of one
-- database. Hashes, ids and scope codes only.

-- +goose Up
CREATE TABLE api_tokens (
    hash       bytea       NOT NULL PRIMARY KEY,
    partner    text        NOT NULL,
    scopes     text        NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX api_tokens_expires_idx ON api_tokens (expires_at);

CREATE TABLE api_assertions (
    key        text COLLATE "C" NOT NULL PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

CREATE INDEX api_assertions_expires_idx ON api_assertions (expires_at);

-- +goose Down
DROP TABLE api_assertions;
DROP TABLE api_tokens;
