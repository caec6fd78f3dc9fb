-- The search indexes of resources hold only the rows their searches can
-- find: every index entry is written with its row, and most rows were in
-- all five indexes while nothing ever searched them there (a referral's
-- Observations, Flag, Patient and the audit log's kept Bundles by
-- patient, status or time; an empty owner or requester). Now:
--
--   patient       Consents and Tasks (the searches by patient);
--   status        Tasks;
--   owner         rows with an owner (Tasks);
--   requester     rows with a requester (Tasks, ServiceRequests);
--   last_updated  Tasks.
--
-- A search of another type by these fields still finds every row (through
-- the primary key, more slowly). A prepared statement's generic plan uses
-- a partial index only when the query's own conditions prove its WHERE
-- clause, which a parameter ($1 for the type) cannot, so each search
-- states the condition of the index it relies on (store.searchIndexes,
-- kept equal to this file by a test), conditions its other terms already
-- imply.

-- +goose Up
DROP INDEX resources_patient_idx;
DROP INDEX resources_status_idx;
DROP INDEX resources_owner_idx;
DROP INDEX resources_requester_idx;
DROP INDEX resources_last_updated_idx;

CREATE INDEX resources_patient_idx      ON resources (resource_type, patient, id) WHERE resource_type IN ('Consent', 'Task');
CREATE INDEX resources_status_idx       ON resources (resource_type, status, id) WHERE resource_type = 'Task';
CREATE INDEX resources_owner_idx        ON resources (resource_type, owner, id) WHERE owner <> '';
CREATE INDEX resources_requester_idx    ON resources (resource_type, requester, id) WHERE requester <> '';
CREATE INDEX resources_last_updated_idx ON resources (resource_type, last_updated) WHERE resource_type = 'Task';

-- +goose Down
DROP INDEX resources_patient_idx;
DROP INDEX resources_status_idx;
DROP INDEX resources_owner_idx;
DROP INDEX resources_requester_idx;
DROP INDEX resources_last_updated_idx;

CREATE INDEX resources_patient_idx      ON resources (resource_type, patient, id);
CREATE INDEX resources_status_idx       ON resources (resource_type, status, id);
CREATE INDEX resources_owner_idx        ON resources (resource_type, owner, id);
CREATE INDEX resources_requester_idx    ON resources (resource_type, requester, id);
CREATE INDEX resources_last_updated_idx ON resources (resource_type, last_updated);
