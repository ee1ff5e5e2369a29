-- Customers are found by any word of their name or email
-- (ferry_core::search): the name index and its lowercased column give way
-- to a term index, and each site's customer count is kept for the pages'
-- totals.
DROP INDEX accounts_name;
ALTER TABLE accounts DROP COLUMN name_key;

-- Every tail of a folded email or name that starts at a word, with the
-- email it belongs to; filled by import and, once, by this migration (the
-- rows are computed in Rust). Copies and upgrades make accounts with emails
-- and names already here. Rows need not be exact (a stale one costs a look): every match is
-- checked against the account itself.
CREATE TABLE customer_terms (
    term TEXT NOT NULL,
    email_key TEXT NOT NULL,
    PRIMARY KEY (term, email_key)
) WITHOUT ROWID;

-- The customers page's totals: a site's portal-only accounts (not merged),
-- its site users, and the emails that have both (duplicates), kept in the
-- transaction that changes them (ferry_store::accounts::recount). A copy
-- into the site counts its new accounts as it goes and leaves duplicates
-- unknown (NULL) until its accounts are all written.
CREATE TABLE customer_counts (
    site_id INTEGER PRIMARY KEY REFERENCES sites(id),
    portal_only INTEGER NOT NULL,
    atlassian INTEGER NOT NULL,
    duplicates INTEGER
);
INSERT INTO customer_counts (site_id, portal_only, atlassian, duplicates)
SELECT s.id,
       (SELECT COUNT(*) FROM accounts a WHERE a.site_id = s.id AND a.merged_into IS NULL),
       (SELECT COUNT(*) FROM site_users su WHERE su.site_id = s.id),
       (SELECT COUNT(*) FROM accounts a JOIN accounts b ON b.site_id IS NULL AND b.email_key = a.email_key
          JOIN site_users su ON su.account_id = b.id AND su.site_id = s.id
        WHERE a.site_id = s.id AND a.merged_into IS NULL)
FROM sites s;
