-- Typed runs: the phase is one of ferry_core::run::Phase (0 not started,
-- 1 accounts, 2 structure, 3 requests, 4 done); copy_runs.summary, never
-- read or written, goes. SQLite cannot add a CHECK in place: the table is
-- rebuilt (foreign keys off, checked before commit).
CREATE TABLE copy_runs_new (
    id INTEGER PRIMARY KEY,
    source_site_id INTEGER NOT NULL REFERENCES sites(id),
    destination_site_id INTEGER NOT NULL REFERENCES sites(id),
    options TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('planning', 'blocked', 'applying', 'done', 'rolled_back', 'failed')),
    phase INTEGER NOT NULL DEFAULT 0 CHECK (phase BETWEEN 0 AND 4),
    cursor INTEGER NOT NULL DEFAULT 0,
    source_request_limit INTEGER NOT NULL DEFAULT 0,
    group_name TEXT,
    group_id INTEGER,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    requests_copied INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
INSERT INTO copy_runs_new (id, source_site_id, destination_site_id, options, state, phase, cursor,
                           source_request_limit, group_name, group_id, started_at, finished_at, requests_copied, error)
SELECT id, source_site_id, destination_site_id, options, state, phase, cursor,
       source_request_limit, group_name, group_id, started_at, finished_at, requests_copied, error
FROM copy_runs;
DROP TABLE copy_runs;
ALTER TABLE copy_runs_new RENAME TO copy_runs;
CREATE INDEX copy_runs_destination_state ON copy_runs (destination_site_id, state);
