-- resource_history keeps the versions a resource had before its current
-- one; the current version is in resources alone. A new resource is
-- written once instead of twice (ingest writes mostly new resources), and
-- every version ever held is still in one of the two tables: the only
-- write that replaces a row of resources is the upsert's new version, and
-- its trigger copies the rows it replaces.

-- +goose Up
DROP TRIGGER resources_history_insert ON resources;
DROP TRIGGER resources_history_update ON resources;

DELETE FROM resource_history h USING resources r
WHERE r.resource_type = h.resource_type AND r.id = h.id AND r.version = h.version;

-- +goose StatementBegin
CREATE FUNCTION resources_keep_superseded() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO resource_history (resource_type, id, version, last_updated, source, format, data, hash, patient, status, owner, requester)
    SELECT resource_type, id, version, last_updated, source, format, data, hash, patient, status, owner, requester
    FROM old_rows;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER resources_history_update AFTER UPDATE ON resources
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION resources_keep_superseded();

-- +goose Down
DROP TRIGGER resources_history_update ON resources;
DROP FUNCTION resources_keep_superseded();

INSERT INTO resource_history (resource_type, id, version, last_updated, source, format, data, hash, patient, status, owner, requester)
SELECT resource_type, id, version, last_updated, source, format, data, hash, patient, status, owner, requester FROM resources;

CREATE TRIGGER resources_history_insert AFTER INSERT ON resources
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION resources_keep_history();

CREATE TRIGGER resources_history_update AFTER UPDATE ON resources
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION resources_keep_history();
