-- Copy plans saved from the console, to come back to, check again and run.
CREATE TABLE copy_plans (
    id INTEGER PRIMARY KEY,
    source_site_id INTEGER NOT NULL REFERENCES sites(id),
    destination_site_id INTEGER NOT NULL REFERENCES sites(id),
    -- The plan's options as the form gave them (JSON).
    options TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
