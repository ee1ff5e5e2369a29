-- Delta re-runs find new memberships by when they arrived. Every write of a
-- membership takes a stamp from ferry_clock (one counter, increased by each
-- writing transaction) and keeps it in `seq`; a copy run keeps the clock as
-- it stood when it was planned (membership_mark), so a later run between
-- the same two sites reads only memberships stamped above it. `seq` has no
-- default: a writer that forgot to stamp fails instead of hiding a row.
-- Rows from before this migration are stamped 0 (older than any run's mark).
CREATE TABLE ferry_clock (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
INSERT INTO ferry_clock (id, value) VALUES (1, 0);

CREATE TABLE project_customers_stamped (
    project_id INTEGER NOT NULL REFERENCES projects(id),
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    seq INTEGER NOT NULL,
    PRIMARY KEY (project_id, account_id)
) WITHOUT ROWID;
INSERT INTO project_customers_stamped (project_id, account_id, seq) SELECT project_id, account_id, 0 FROM project_customers;
DROP TABLE project_customers;
ALTER TABLE project_customers_stamped RENAME TO project_customers;
CREATE INDEX project_customers_account ON project_customers (account_id);
CREATE INDEX project_customers_arrival ON project_customers (project_id, seq);

CREATE TABLE group_members_stamped (
    group_id INTEGER NOT NULL REFERENCES groups(id),
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    seq INTEGER NOT NULL,
    PRIMARY KEY (group_id, account_id)
) WITHOUT ROWID;
INSERT INTO group_members_stamped (group_id, account_id, seq) SELECT group_id, account_id, 0 FROM group_members;
DROP TABLE group_members;
ALTER TABLE group_members_stamped RENAME TO group_members;
CREATE INDEX group_members_account ON group_members (account_id);
CREATE INDEX group_members_arrival ON group_members (group_id, seq);

CREATE TABLE customer_roles_stamped (
    project_id INTEGER NOT NULL REFERENCES projects(id),
    group_id INTEGER NOT NULL REFERENCES groups(id),
    seq INTEGER NOT NULL,
    PRIMARY KEY (project_id, group_id)
) WITHOUT ROWID;
INSERT INTO customer_roles_stamped (project_id, group_id, seq) SELECT project_id, group_id, 0 FROM customer_roles;
DROP TABLE customer_roles;
ALTER TABLE customer_roles_stamped RENAME TO customer_roles;

CREATE TABLE organization_members_stamped (
    organization_id INTEGER NOT NULL REFERENCES organizations(id),
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    seq INTEGER NOT NULL,
    PRIMARY KEY (organization_id, account_id)
) WITHOUT ROWID;
INSERT INTO organization_members_stamped (organization_id, account_id, seq) SELECT organization_id, account_id, 0 FROM organization_members;
DROP TABLE organization_members;
ALTER TABLE organization_members_stamped RENAME TO organization_members;
CREATE INDEX organization_members_account ON organization_members (account_id);
CREATE INDEX organization_members_arrival ON organization_members (organization_id, seq);

ALTER TABLE copy_runs ADD COLUMN membership_mark INTEGER NOT NULL DEFAULT 0;
