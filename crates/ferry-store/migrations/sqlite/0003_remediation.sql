-- Remediation: the audit log, invitations for Atlassian accounts an upgrade
-- creates, and the index an upgrade moves comment authors by.

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    site_id INTEGER REFERENCES sites(id),
    target TEXT NOT NULL,
    before TEXT,
    after TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);

ALTER TABLE accounts ADD COLUMN invitation_pending INTEGER NOT NULL DEFAULT 0;
CREATE INDEX comments_author ON comments (author_id);
CREATE INDEX project_customers_account ON project_customers (account_id);
CREATE INDEX accounts_merged_into ON accounts (merged_into) WHERE merged_into IS NOT NULL;
