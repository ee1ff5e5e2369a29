-- Trust off the happy path.
--
-- Ids a copy reserves when it plans (accounts, projects, organizations, its
-- imported group) are written only later, chunk by chunk. The highest id
-- handed out per table is kept here, advanced in the transaction that
-- reserves, so no other writer (an import, another run, a resumed run)
-- takes them meanwhile. IdAllocator starts above both this and MAX(id).
CREATE TABLE id_reservations (
    table_name TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);
INSERT INTO id_reservations (table_name, last_id) VALUES
    ('accounts', COALESCE((SELECT MAX(destination_account_id) FROM copy_customers), 0)),
    ('projects', COALESCE((SELECT MAX(destination_project_id) FROM copy_projects), 0)),
    ('organizations', COALESCE((SELECT MAX(destination_organization_id) FROM copy_organizations), 0)),
    ('groups', COALESCE((SELECT MAX(group_id) FROM copy_runs), 0)),
    ('requests', 0);

-- A run whose planning or apply failed ends in state 'failed' with its
-- error. SQLite cannot change a CHECK in place: the table is rebuilt (the
-- migration runs with foreign keys off and checks them before it commits).
CREATE TABLE copy_runs_new (
    id INTEGER PRIMARY KEY,
    source_site_id INTEGER NOT NULL REFERENCES sites(id),
    destination_site_id INTEGER NOT NULL REFERENCES sites(id),
    options TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('planning', 'blocked', 'applying', 'done', 'rolled_back', 'failed')),
    phase INTEGER NOT NULL DEFAULT 0,
    cursor INTEGER NOT NULL DEFAULT 0,
    source_request_limit INTEGER NOT NULL DEFAULT 0,
    group_name TEXT,
    group_id INTEGER,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    summary TEXT,
    requests_copied INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
INSERT INTO copy_runs_new (id, source_site_id, destination_site_id, options, state, phase, cursor,
                           source_request_limit, group_name, group_id, started_at, finished_at, summary, requests_copied)
SELECT id, source_site_id, destination_site_id, options, state, phase, cursor,
       source_request_limit, group_name, group_id, started_at, finished_at, summary, requests_copied
FROM copy_runs;
DROP TABLE copy_runs;
ALTER TABLE copy_runs_new RENAME TO copy_runs;
CREATE INDEX copy_runs_destination_state ON copy_runs (destination_site_id, state);

-- Rollback deletes accounts: each foreign key that points at accounts needs
-- an index that starts with account_id, or every deleted account scans the
-- referencing table (minutes on PostgreSQL at 100,000 accounts).
CREATE INDEX site_users_account ON site_users (account_id);
CREATE INDEX group_members_account ON group_members (account_id);
CREATE INDEX web_sessions_account ON web_sessions (account_id) WHERE account_id IS NOT NULL;
