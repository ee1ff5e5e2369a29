-- Customers are found by any word of their name or email
-- (ferry_core::search): the name index and its lowercased column give way
-- to a term index, and each site's customer count is kept for the pages'
-- totals.
DROP INDEX accounts_name;
ALTER TABLE accounts DROP COLUMN name_key;

-- Every tail of a folded email or name that starts at a word, with the
-- email it belongs to; filled by import and, once, by this migration (the
-- rows are computed in Rust: ferry_store::accounts::index_and_count). Copies and upgrades make accounts with emails
-- and names already here. Rows need not be exact (a stale one costs a look): every match is
-- checked against the account itself.
CREATE TABLE customer_terms (
    term TEXT COLLATE "C" NOT NULL,
    email_key TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (term, email_key)
);

-- The customers page's totals: a site's portal-only accounts (not merged),
-- its site users, and the emails that have both (duplicates), kept in the
-- transaction that changes them (ferry_store::accounts::recount). A copy
-- into the site counts its new accounts as it goes and leaves duplicates
-- unknown (NULL) until its accounts are all written.
CREATE TABLE customer_counts (
    site_id BIGINT PRIMARY KEY REFERENCES sites(id),
    portal_only BIGINT NOT NULL,
    atlassian BIGINT NOT NULL,
    duplicates BIGINT
);
-- Counted from the rows in Rust (ferry_store::accounts::recount), with the
-- terms.
