-- resource_history keeps the versions a resource had before its current
-- one; the current version is in resources alone. A new resource is
-- written once instead of twice (ingest writes mostly new resources), and
-- every version ever held is still in one of the two tables: the only
-- write that replaces a row of resources is the upsert's new version, and
-- its trigger copies the row it replaces first.

-- +goose Up
DROP TRIGGER resources_history_insert;
DROP TRIGGER resources_history_update;

DELETE FROM resource_history WHERE EXISTS (
    SELECT 1 FROM resources r
    WHERE r.resource_type = resource_history.resource_type AND r.id = resource_history.id AND r.version = resource_history.version);

-- +goose StatementBegin
CREATE TRIGGER resources_history_update AFTER UPDATE ON resources
BEGIN
    INSERT INTO resource_history (resource_type, id, version, last_updated, source, format, data, hash, patient, status, owner, requester)
    VALUES (OLD.resource_type, OLD.id, OLD.version, OLD.last_updated, OLD.source, OLD.format, OLD.data, OLD.hash, OLD.patient, OLD.status, OLD.owner, OLD.requester);
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER resources_history_update;

INSERT INTO resource_history (resource_type, id, version, last_updated, source, format, data, hash, patient, status, owner, requester)
SELECT resource_type, id, version, last_updated, source, format, data, hash, patient, status, owner, requester FROM resources;

-- +goose StatementBegin
CREATE TRIGGER resources_history_insert AFTER INSERT ON resources
BEGIN
    INSERT INTO resource_history (resource_type, id, version, last_updated, source, format, data, hash, patient, status, owner, requester)
    VALUES (NEW.resource_type, NEW.id, NEW.version, NEW.last_updated, NEW.source, NEW.format, NEW.data, NEW.hash, NEW.patient, NEW.status, NEW.owner, NEW.requester);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER resources_history_update AFTER UPDATE ON resources
BEGIN
    INSERT INTO resource_history (resource_type, id, version, last_updated, source, format, data, hash, patient, status, owner, requester)
    VALUES (NEW.resource_type, NEW.id, NEW.version, NEW.last_updated, NEW.source, NEW.format, NEW.data, NEW.hash, NEW.patient, NEW.status, NEW.owner, NEW.requester);
END;
-- +goose StatementEnd
