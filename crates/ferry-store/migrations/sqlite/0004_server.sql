-- The server: org admins who sign in to the console, their sessions and API
-- tokens, and customers' help-center passwords. Secrets are stored hashed:
-- passwords with argon2id, session ids and API tokens with SHA-256.

CREATE TABLE admins (
    id INTEGER PRIMARY KEY,
    email_key TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE org_admins (
    admin_id INTEGER NOT NULL REFERENCES admins(id),
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    PRIMARY KEY (admin_id, org_id)
);

-- A signed-in browser: an admin (console) or a customer of one site (help
-- center), never both.
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    admin_id INTEGER REFERENCES admins(id),
    account_id INTEGER REFERENCES accounts(id),
    site_id INTEGER REFERENCES sites(id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    CHECK ((admin_id IS NULL) <> (account_id IS NULL))
);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    admin_id INTEGER NOT NULL REFERENCES admins(id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX api_tokens_admin ON api_tokens (admin_id);

ALTER TABLE accounts ADD COLUMN password_hash TEXT;

-- Customer search by name: the display name in Unicode lowercase, kept by
-- every writer of accounts (ferry_lower is ferry's own SQL function).
ALTER TABLE accounts ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
UPDATE accounts SET name_key = ferry_lower(display_name);
CREATE INDEX accounts_name ON accounts (site_id, name_key);
