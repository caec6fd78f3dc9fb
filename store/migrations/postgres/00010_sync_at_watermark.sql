-- The ids pulled at exactly a partner's watermark get a row each instead of
-- one space-separated text in sync_state.at_watermark. A partner that
-- changes thousands of records at one instant (a batch it wrote at once)
-- had that text read, grown and written whole for every page of a sync,
-- so a sync's time grew with the square of the batch; now a page adds its
-- own rows. (Numbered 00010: 00009 is taken on main.)

-- +goose Up
CREATE TABLE sync_at_watermark (
    partner text COLLATE "C" NOT NULL,
    id      text COLLATE "C" NOT NULL,
    PRIMARY KEY (partner, id)
);

INSERT INTO sync_at_watermark (partner, id)
SELECT DISTINCT partner, unnest(string_to_array(at_watermark, ' ')) FROM sync_state WHERE at_watermark <> '';

ALTER TABLE sync_state DROP COLUMN at_watermark;

-- +goose Down
ALTER TABLE sync_state ADD COLUMN at_watermark text NOT NULL DEFAULT '';

UPDATE sync_state s SET at_watermark = COALESCE(
    (SELECT string_agg(a.id, ' ' ORDER BY a.id) FROM sync_at_watermark a WHERE a.partner = s.partner), '');

DROP TABLE sync_at_watermark;
