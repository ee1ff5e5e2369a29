-- The copy engine: runs, their write-ahead decisions, links and grants.

ALTER TABLE requests ADD COLUMN copied_from TEXT;
ALTER TABLE groups ADD COLUMN created_by_run INTEGER;

CREATE TABLE copy_runs (
    id INTEGER PRIMARY KEY,
    source_site_id INTEGER NOT NULL REFERENCES sites(id),
    destination_site_id INTEGER NOT NULL REFERENCES sites(id),
    options TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('planning', 'blocked', 'applying', 'done', 'rolled_back')),
    phase INTEGER NOT NULL DEFAULT 0,
    cursor INTEGER NOT NULL DEFAULT 0,
    source_request_limit INTEGER NOT NULL DEFAULT 0,
    group_name TEXT,
    group_id INTEGER,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    summary TEXT
);

-- One row per customer considered: the decision, written before any change.
CREATE TABLE copy_customers (
    run_id INTEGER NOT NULL REFERENCES copy_runs(id),
    source_account_id INTEGER NOT NULL,
    destination_account_id INTEGER NOT NULL,
    matched_account_id INTEGER,
    outcome INTEGER NOT NULL,
    type_before TEXT NOT NULL,
    type_after TEXT NOT NULL,
    problems INTEGER NOT NULL,
    new_account_ext_id TEXT,
    adds_site_user INTEGER NOT NULL,
    via_group INTEGER NOT NULL,
    PRIMARY KEY (run_id, source_account_id)
) WITHOUT ROWID;

CREATE TABLE copy_projects (
    run_id INTEGER NOT NULL REFERENCES copy_runs(id),
    source_project_id INTEGER NOT NULL,
    destination_project_id INTEGER NOT NULL,
    destination_key TEXT NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (run_id, source_project_id)
) WITHOUT ROWID;

CREATE TABLE copy_organizations (
    run_id INTEGER NOT NULL REFERENCES copy_runs(id),
    source_organization_id INTEGER NOT NULL,
    destination_organization_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (run_id, source_organization_id)
) WITHOUT ROWID;

-- Source entity -> the destination entity it became, per site pair.
CREATE TABLE copy_links (
    source_site_id INTEGER NOT NULL,
    destination_site_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    source_id INTEGER NOT NULL,
    destination_id INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    PRIMARY KEY (source_site_id, destination_site_id, kind, source_id)
) WITHOUT ROWID;
CREATE INDEX copy_links_run ON copy_links (run_id, kind);

-- What a run granted (memberships, site access), so rollback revokes
-- exactly that.
CREATE TABLE copy_grants (
    run_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    a INTEGER NOT NULL,
    b INTEGER NOT NULL,
    PRIMARY KEY (run_id, kind, a, b)
) WITHOUT ROWID;
