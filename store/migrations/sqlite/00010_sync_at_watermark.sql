-- The ids pulled at exactly a partner's watermark get a row each instead of
-- one space-separated text in sync_state.at_watermark. A partner that
-- changes thousands of records at one instant (a batch it wrote at once)
-- had that text read, grown and written whole for every page of a sync,
-- so a sync's time grew with the square of the batch; now a page adds its
-- own rows. (Numbered 00010: 00009 is taken on main.)

-- +goose Up
CREATE TABLE sync_at_watermark (
    partner TEXT NOT NULL,
    id      TEXT NOT NULL,
    PRIMARY KEY (partner, id)
) STRICT, WITHOUT ROWID;

-- +goose StatementBegin
INSERT INTO sync_at_watermark (partner, id)
WITH RECURSIVE split(partner, id, rest) AS (
    SELECT partner, '', at_watermark || ' ' FROM sync_state WHERE at_watermark <> ''
    UNION ALL
    SELECT partner, substr(rest, 1, instr(rest, ' ') - 1), substr(rest, instr(rest, ' ') + 1) FROM split WHERE rest <> ''
)
SELECT DISTINCT partner, id FROM split WHERE id <> '';
-- +goose StatementEnd

ALTER TABLE sync_state DROP COLUMN at_watermark;

-- +goose Down
ALTER TABLE sync_state ADD COLUMN at_watermark TEXT NOT NULL DEFAULT '';

-- +goose StatementBegin
UPDATE sync_state SET at_watermark = COALESCE(
    (SELECT group_concat(id, ' ') FROM (SELECT id FROM sync_at_watermark a WHERE a.partner = sync_state.partner ORDER BY id)), '');
-- +goose StatementEnd

DROP TABLE sync_at_watermark;
