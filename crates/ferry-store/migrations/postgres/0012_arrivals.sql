-- Delta re-runs find new memberships by when they arrived. Every write of a
-- membership takes a stamp from ferry_clock (one counter, increased by each
-- writing transaction, whose row lock orders them) and keeps it in `seq`; a
-- copy run keeps the clock as it stood when it was planned
-- (membership_mark), so a later run between the same two sites reads only
-- memberships stamped above it. `seq` has no default: a writer that forgot
-- to stamp fails instead of hiding a row. Rows from before this migration
-- are stamped 0 (older than any run's mark).
CREATE TABLE ferry_clock (id BIGINT PRIMARY KEY CHECK (id = 1), value BIGINT NOT NULL);
INSERT INTO ferry_clock (id, value) VALUES (1, 0);

ALTER TABLE project_customers ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE project_customers ALTER COLUMN seq DROP DEFAULT;
CREATE INDEX project_customers_arrival ON project_customers (project_id, seq);

ALTER TABLE group_members ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE group_members ALTER COLUMN seq DROP DEFAULT;
CREATE INDEX group_members_arrival ON group_members (group_id, seq);

ALTER TABLE customer_roles ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE customer_roles ALTER COLUMN seq DROP DEFAULT;

ALTER TABLE organization_members ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE organization_members ALTER COLUMN seq DROP DEFAULT;
CREATE INDEX organization_members_arrival ON organization_members (organization_id, seq);

ALTER TABLE copy_runs ADD COLUMN membership_mark BIGINT NOT NULL DEFAULT 0;
