-- Links are found by their site pair; a run keeps its own count of copied
-- requests, so the by-run index on the links (as large as the links
-- themselves, written on every copied row) goes.

ALTER TABLE copy_runs ADD COLUMN requests_copied BIGINT NOT NULL DEFAULT 0;
UPDATE copy_runs SET requests_copied =
    (SELECT COUNT(*) FROM copy_links l WHERE l.run_id = copy_runs.id AND l.kind = 'request');
DROP INDEX copy_links_run;
