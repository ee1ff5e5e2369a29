-- Trust off the happy path.
--
-- Ids a copy reserves when it plans (accounts, projects, organizations, its
-- imported group) are written only later, chunk by chunk. The highest id
-- handed out per table is kept here, advanced in the transaction that
-- reserves, so no other writer (an import, another run, a resumed run)
-- takes them meanwhile. IdAllocator starts above both this and MAX(id).
CREATE TABLE id_reservations (
    table_name TEXT COLLATE "C" PRIMARY KEY,
    last_id BIGINT NOT NULL
);
INSERT INTO id_reservations (table_name, last_id) VALUES
    ('accounts', COALESCE((SELECT MAX(destination_account_id) FROM copy_customers), 0)),
    ('projects', COALESCE((SELECT MAX(destination_project_id) FROM copy_projects), 0)),
    ('organizations', COALESCE((SELECT MAX(destination_organization_id) FROM copy_organizations), 0)),
    ('groups', COALESCE((SELECT MAX(group_id) FROM copy_runs), 0)),
    ('requests', 0);

-- A run whose planning or apply failed ends in state 'failed' with its error.
ALTER TABLE copy_runs DROP CONSTRAINT copy_runs_state_check;
ALTER TABLE copy_runs ADD CONSTRAINT copy_runs_state_check
    CHECK (state IN ('planning', 'blocked', 'applying', 'done', 'rolled_back', 'failed'));
ALTER TABLE copy_runs ADD COLUMN error TEXT COLLATE "C";
CREATE INDEX copy_runs_destination_state ON copy_runs (destination_site_id, state);

-- Rollback deletes accounts: each foreign key that points at accounts needs
-- an index that starts with account_id, or every deleted account scans the
-- referencing table (minutes at 100,000 accounts).
CREATE INDEX site_users_account ON site_users (account_id);
CREATE INDEX group_members_account ON group_members (account_id);
CREATE INDEX web_sessions_account ON web_sessions (account_id) WHERE account_id IS NOT NULL;
