-- Nothing to do on SQLite, which stores values as they are: on PostgreSQL
-- this version compresses the large values with lz4 instead of pglz. The
-- file keeps both dialects' versions in step.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
