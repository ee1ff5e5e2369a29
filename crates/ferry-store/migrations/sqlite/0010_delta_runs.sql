-- Delta re-runs: a run considers only the customers no earlier run between
-- the same two sites linked; how many of its scope were already copied is
-- kept here for its report.
ALTER TABLE copy_runs ADD COLUMN already_copied INTEGER NOT NULL DEFAULT 0;
