-- Typed runs: the phase is one of ferry_core::run::Phase (0 not started,
-- 1 accounts, 2 structure, 3 requests, 4 done); copy_runs.summary, never
-- read or written, goes.
ALTER TABLE copy_runs ADD CONSTRAINT copy_runs_phase_check CHECK (phase BETWEEN 0 AND 4);
ALTER TABLE copy_runs DROP COLUMN summary;
