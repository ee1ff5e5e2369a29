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
-- When an upgrade merged the account (rollback refuses for runs before it).
ALTER TABLE accounts ADD COLUMN merged_at TEXT;
-- A merged portal-only account is a tombstone: its email is free for a new
-- portal-only account on the site.
DROP INDEX accounts_portal_email;
CREATE UNIQUE INDEX accounts_portal_email ON accounts (site_id, email_key) WHERE site_id IS NOT NULL AND merged_into IS NULL;
