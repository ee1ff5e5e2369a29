-- Foundation: the cloud, organizations, sites and everything a site holds.
-- Ids of accounts, projects, groups, organizations and requests are given by
-- ferry (IdAllocator, under the write lock) so bulk writes need no round trip
-- per row. A request's key is its project's key and its number.

CREATE TABLE orgs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE sites (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    slug TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

-- Atlassian accounts (site_id NULL, global) and portal-only accounts (one site).
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('atlassian', 'customer')),
    site_id INTEGER REFERENCES sites(id),
    ext_id TEXT NOT NULL,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    display_name TEXT NOT NULL,
    active INTEGER NOT NULL,
    email_verified INTEGER NOT NULL,
    merged_into INTEGER REFERENCES accounts(id),
    CHECK ((kind = 'atlassian') = (site_id IS NULL))
);
CREATE UNIQUE INDEX accounts_atlassian_ext ON accounts (ext_id) WHERE site_id IS NULL;
CREATE UNIQUE INDEX accounts_atlassian_email ON accounts (email_key) WHERE site_id IS NULL;
CREATE UNIQUE INDEX accounts_portal_ext ON accounts (site_id, ext_id) WHERE site_id IS NOT NULL;
CREATE UNIQUE INDEX accounts_portal_email ON accounts (site_id, email_key) WHERE site_id IS NOT NULL;

CREATE TABLE site_users (
    site_id INTEGER NOT NULL REFERENCES sites(id),
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    PRIMARY KEY (site_id, account_id)
) WITHOUT ROWID;

CREATE TABLE groups (
    id INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites(id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'awaiting_review', 'declined')),
    UNIQUE (site_id, name_key)
);

CREATE TABLE group_members (
    group_id INTEGER NOT NULL REFERENCES groups(id),
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    PRIMARY KEY (group_id, account_id)
) WITHOUT ROWID;

CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites(id),
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    UNIQUE (site_id, key)
);

CREATE TABLE project_customers (
    project_id INTEGER NOT NULL REFERENCES projects(id),
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    PRIMARY KEY (project_id, account_id)
) WITHOUT ROWID;

CREATE TABLE customer_roles (
    project_id INTEGER NOT NULL REFERENCES projects(id),
    group_id INTEGER NOT NULL REFERENCES groups(id),
    PRIMARY KEY (project_id, group_id)
) WITHOUT ROWID;

CREATE TABLE organizations (
    id INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites(id),
    name TEXT NOT NULL,
    UNIQUE (site_id, name)
);

CREATE TABLE organization_members (
    organization_id INTEGER NOT NULL REFERENCES organizations(id),
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    PRIMARY KEY (organization_id, account_id)
) WITHOUT ROWID;
CREATE INDEX organization_members_account ON organization_members (account_id);

CREATE TABLE organization_projects (
    organization_id INTEGER NOT NULL REFERENCES organizations(id),
    project_id INTEGER NOT NULL REFERENCES projects(id),
    PRIMARY KEY (organization_id, project_id)
) WITHOUT ROWID;

CREATE TABLE requests (
    id INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites(id),
    project_id INTEGER NOT NULL REFERENCES projects(id),
    number INTEGER NOT NULL,
    summary TEXT NOT NULL,
    status TEXT NOT NULL,
    created TEXT NOT NULL,
    reporter_id INTEGER NOT NULL REFERENCES accounts(id),
    organization_id INTEGER REFERENCES organizations(id),
    UNIQUE (project_id, number)
);
CREATE INDEX requests_reporter ON requests (reporter_id);
CREATE INDEX requests_organization ON requests (organization_id) WHERE organization_id IS NOT NULL;

CREATE TABLE request_participants (
    request_id INTEGER NOT NULL REFERENCES requests(id),
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    PRIMARY KEY (request_id, account_id)
) WITHOUT ROWID;
CREATE INDEX request_participants_account ON request_participants (account_id);

CREATE TABLE comments (
    id INTEGER PRIMARY KEY,
    request_id INTEGER NOT NULL REFERENCES requests(id),
    author_id INTEGER NOT NULL REFERENCES accounts(id),
    created TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX comments_request ON comments (request_id);
