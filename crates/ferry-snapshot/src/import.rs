//! `site import`: streams each file once, validates every row, writes in
//! bulk inside one transaction, and rolls everything back if any row is bad,
//! after reporting all of them.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use ferry_core::email::Email;
use ferry_core::model::{AccountType, canonical_timestamp, parse_bool, parse_request_key, validate_project_key};
use ferry_store::bulk::{BulkWriter, OnConflict, TableSpec};
use ferry_store::{IdAllocator, Store, StoreError, Tx, Val, sites};

use crate::{FILES, Progress};

/// One bad row (or file): where, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// 1-based line of the row in the file; 0 for the file as a whole.
    pub line: u64,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.reason)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{} bad row(s); nothing was imported", .0.len())]
    Invalid(Vec<Problem>),
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Rows read per file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub rows: Vec<(&'static str, u64)>,
}

/// Imports the snapshot in `dir` into site `site`. Succeeds whole or writes
/// nothing; on bad input returns every problem found, in file order.
pub fn import_site(
    store: &mut Store,
    site: &str,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<ImportSummary, ImportError> {
    store.write(|tx| import_into(tx, site, dir, progress))
}

/// [`import_site`] inside a transaction the caller owns, so that several
/// imports (the demo's two sites) land together or not at all.
pub fn import_into(
    tx: &mut Tx<'_>,
    site: &str,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<ImportSummary, ImportError> {
    if !dir.is_dir() {
        return Err(ImportError::Io {
            path: dir.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder"),
        });
    }
    let mut problems = unknown_files(dir)?;
    let site = sites::site(tx, site)?;
    let mut importer = Importer::load(tx, site.id, site.slug)?;
    importer.problems.append(&mut problems);
    let summary = importer.run(dir, progress)?;
    if importer.problems.is_empty() {
        Ok(summary)
    } else {
        Err(ImportError::Invalid(std::mem::take(&mut importer.problems)))
    }
}

fn unknown_files(dir: &Path) -> Result<Vec<Problem>, ImportError> {
    let io = |source| ImportError::Io { path: dir.to_owned(), source };
    let mut problems = Vec::new();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let name = entry.map_err(io)?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".csv") && !FILES.iter().any(|(known, _)| *known == name) {
            names.push(name);
        }
    }
    names.sort();
    let expected: Vec<&str> = FILES.iter().map(|(n, _)| *n).collect();
    for name in names {
        problems.push(Problem {
            file: name,
            line: 0,
            reason: format!("unknown snapshot file; expected one of {}", expected.join(", ")),
        });
    }
    if !dir.join("accounts.csv").is_file() {
        problems.push(Problem { file: "accounts.csv".into(), line: 0, reason: "required file is missing".into() });
    }
    Ok(problems)
}

/// Why a row failed: bad input (reported, import continues) or a database
/// failure (aborts).
enum RowError {
    Bad(String),
    Store(StoreError),
}

impl From<StoreError> for RowError {
    fn from(e: StoreError) -> Self {
        RowError::Store(e)
    }
}

impl From<String> for RowError {
    fn from(reason: String) -> Self {
        RowError::Bad(reason)
    }
}

type RowResult = Result<(), RowError>;

fn bad<T>(reason: impl Into<String>) -> Result<T, RowError> {
    Err(RowError::Bad(reason.into()))
}

static ACCOUNTS: TableSpec = TableSpec {
    table: "accounts",
    columns: &["id", "kind", "site_id", "ext_id", "email", "email_key", "display_name", "active", "email_verified"],
    on_conflict: OnConflict::Upsert(&["id"]),
};
static SITE_USERS: TableSpec =
    TableSpec { table: "site_users", columns: &["site_id", "account_id"], on_conflict: OnConflict::Ignore };
static PROJECTS: TableSpec = TableSpec {
    table: "projects",
    columns: &["id", "site_id", "key", "name"],
    on_conflict: OnConflict::Upsert(&["id"]),
};
static GROUPS: TableSpec = TableSpec {
    table: "groups",
    columns: &["id", "site_id", "name", "name_key"],
    on_conflict: OnConflict::Ignore,
};
static GROUP_MEMBERS: TableSpec =
    TableSpec { table: "group_members", columns: &["group_id", "account_id"], on_conflict: OnConflict::Ignore };
static CUSTOMER_ROLES: TableSpec =
    TableSpec { table: "customer_roles", columns: &["project_id", "group_id"], on_conflict: OnConflict::Ignore };
static ORGANIZATIONS: TableSpec =
    TableSpec { table: "organizations", columns: &["id", "site_id", "name"], on_conflict: OnConflict::Ignore };
static ORGANIZATION_MEMBERS: TableSpec = TableSpec {
    table: "organization_members",
    columns: &["organization_id", "account_id"],
    on_conflict: OnConflict::Ignore,
};
static ORGANIZATION_PROJECTS: TableSpec = TableSpec {
    table: "organization_projects",
    columns: &["organization_id", "project_id"],
    on_conflict: OnConflict::Ignore,
};
static PROJECT_CUSTOMERS: TableSpec =
    TableSpec { table: "project_customers", columns: &["project_id", "account_id"], on_conflict: OnConflict::Ignore };
static REQUESTS: TableSpec = TableSpec {
    table: "requests",
    columns: &[
        "id", "site_id", "project_id", "key", "number", "summary", "status", "created", "reporter_id", "organization_id",
    ],
    on_conflict: OnConflict::Upsert(&["id"]),
};
static REQUEST_PARTICIPANTS: TableSpec = TableSpec {
    table: "request_participants",
    columns: &["request_id", "account_id"],
    on_conflict: OnConflict::Ignore,
};
static COMMENTS: TableSpec = TableSpec {
    table: "comments",
    columns: &["request_id", "author_id", "created", "body"],
    on_conflict: OnConflict::SkipSameContent,
};

/// One open snapshot file with its header checked.
struct CsvFile {
    name: &'static str,
    reader: csv::Reader<BufReader<File>>,
    columns: usize,
}

impl CsvFile {
    /// Reads the next record into `record`; returns its line, or None at the
    /// end. Records that cannot be read are reported and skipped.
    fn next(&mut self, record: &mut csv::StringRecord, problems: &mut Vec<Problem>) -> Option<u64> {
        loop {
            match self.reader.read_record(record) {
                Ok(false) => return None,
                Ok(true) => {
                    let line = record.position().map_or(0, csv::Position::line);
                    if record.len() == 1 && record.get(0).is_some_and(str::is_empty) {
                        continue; // a blank line
                    }
                    if record.len() != self.columns {
                        problems.push(Problem {
                            file: self.name.into(),
                            line,
                            reason: format!(
                                "expected {} fields, found {} (check the quoting and the commas)",
                                self.columns,
                                record.len()
                            ),
                        });
                        continue;
                    }
                    return Some(line);
                }
                Err(e) => {
                    let line = e.position().map_or(0, csv::Position::line);
                    let reason = match e.kind() {
                        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
                        _ => format!("malformed CSV: {e}"),
                    };
                    problems.push(Problem { file: self.name.into(), line, reason });
                    if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                        return None;
                    }
                }
            }
        }
    }
}

struct Importer<'t, 'c> {
    tx: &'t mut Tx<'c>,
    site_id: i64,
    site_slug: String,
    problems: Vec<Problem>,
    /// Every account a row of this site may refer to, by account id.
    site_accounts: HashMap<String, (i64, AccountType)>,
    atlassian_by_id: HashMap<String, (i64, String)>,
    atlassian_by_email: HashMap<String, String>,
    portal_by_id: HashMap<String, (i64, String)>,
    portal_by_email: HashMap<String, String>,
    projects: HashMap<String, i64>,
    groups: HashMap<String, i64>,
    organizations: HashMap<String, i64>,
    requests: HashMap<String, i64>,
    /// First line of each key seen in the current file.
    seen: HashMap<String, u64>,
    ids: HashMap<&'static str, IdAllocator>,
}

impl<'t, 'c> Importer<'t, 'c> {
    fn load(tx: &'t mut Tx<'c>, site_id: i64, site_slug: String) -> Result<Self, StoreError> {
        let site = [Val::I(site_id)];
        let mut atlassian_by_id = HashMap::new();
        let mut atlassian_by_email = HashMap::new();
        tx.query_each("SELECT ext_id, id, email_key FROM accounts WHERE site_id IS NULL", &[], |r| {
            let (ext, key) = (r.text(0)?.to_owned(), r.text(2)?.to_owned());
            atlassian_by_email.insert(key.clone(), ext.clone());
            atlassian_by_id.insert(ext, (r.int(1)?, key));
            Ok(())
        })?;
        let mut site_accounts = HashMap::new();
        tx.query_each(
            "SELECT a.ext_id, a.id FROM site_users su JOIN accounts a ON a.id = su.account_id WHERE su.site_id = $1",
            &site,
            |r| {
                site_accounts.insert(r.text(0)?.to_owned(), (r.int(1)?, AccountType::Atlassian));
                Ok(())
            },
        )?;
        let mut portal_by_id = HashMap::new();
        let mut portal_by_email = HashMap::new();
        tx.query_each("SELECT ext_id, id, email_key FROM accounts WHERE site_id = $1", &site, |r| {
            let (ext, id, key) = (r.text(0)?.to_owned(), r.int(1)?, r.text(2)?.to_owned());
            site_accounts.insert(ext.clone(), (id, AccountType::PortalOnly));
            portal_by_email.insert(key.clone(), ext.clone());
            portal_by_id.insert(ext, (id, key));
            Ok(())
        })?;
        let mut by_name = |sql: &str| -> Result<HashMap<String, i64>, StoreError> {
            let mut map = HashMap::new();
            tx.query_each(sql, &site, |r| {
                map.insert(r.text(0)?.to_owned(), r.int(1)?);
                Ok(())
            })?;
            Ok(map)
        };
        let projects = by_name("SELECT key, id FROM projects WHERE site_id = $1")?;
        let groups = by_name("SELECT name_key, id FROM groups WHERE site_id = $1")?;
        let organizations = by_name("SELECT name, id FROM organizations WHERE site_id = $1")?;
        let requests = by_name("SELECT key, id FROM requests WHERE site_id = $1")?;
        let ids = ["accounts", "projects", "groups", "organizations", "requests"]
            .into_iter()
            .map(|t| (t, IdAllocator::new(t)))
            .collect();
        Ok(Importer {
            tx,
            site_id,
            site_slug,
            problems: Vec::new(),
            site_accounts,
            atlassian_by_id,
            atlassian_by_email,
            portal_by_id,
            portal_by_email,
            projects,
            groups,
            organizations,
            requests,
            seen: HashMap::new(),
            ids,
        })
    }

    fn run(&mut self, dir: &Path, progress: &mut dyn Progress) -> Result<ImportSummary, ImportError> {
        let mut summary = ImportSummary::default();
        for (name, header) in FILES {
            let path = dir.join(name);
            if !path.is_file() {
                continue;
            }
            let Some(mut file) = self.open(&path, name, header)? else { continue };
            let mut writers = Writers::for_file(name);
            let mut record = csv::StringRecord::new();
            let mut rows = 0u64;
            self.seen.clear();
            while let Some(line) = file.next(&mut record, &mut self.problems) {
                rows += 1;
                match self.row(name, line, &record, &mut writers) {
                    Ok(()) => {}
                    Err(RowError::Bad(reason)) => self.problems.push(Problem { file: name.into(), line, reason }),
                    Err(RowError::Store(e)) => return Err(e.into()),
                }
                if rows % 100_000 == 0 {
                    progress.rows(name, rows);
                }
            }
            for writer in &mut writers.0 {
                writer.finish(self.tx)?;
            }
            progress.file_done(name, rows);
            summary.rows.push((name, rows));
        }
        Ok(summary)
    }

    fn open(&mut self, path: &Path, name: &'static str, header: &[&str]) -> Result<Option<CsvFile>, ImportError> {
        let handle = File::open(path).map_err(|source| ImportError::Io { path: path.to_owned(), source })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(BufReader::with_capacity(1 << 20, handle));
        let mut first = csv::StringRecord::new();
        let problem = |reason: String| Problem { file: name.into(), line: 1, reason };
        match reader.read_record(&mut first) {
            Ok(true) => {
                let found: Vec<&str> = first.iter().enumerate()
                    .map(|(i, c)| if i == 0 { c.trim_start_matches('\u{feff}') } else { c })
                    .collect();
                if found != header {
                    self.problems.push(problem(format!(
                        "header must be `{}`, found `{}`",
                        header.join(","),
                        found.join(",")
                    )));
                    return Ok(None);
                }
            }
            Ok(false) => {
                self.problems.push(problem(format!("missing header row `{}`", header.join(","))));
                return Ok(None);
            }
            Err(e) => {
                self.problems.push(problem(format!("unreadable header row: {e}")));
                return Ok(None);
            }
        }
        Ok(Some(CsvFile { name, reader, columns: header.len() }))
    }

    /// Whether rows are still worth writing: once any row is bad the
    /// transaction will roll back, so only validation continues.
    fn writing(&self) -> bool {
        self.problems.is_empty()
    }

    fn push(&mut self, writer: &mut BulkWriter, row: &[Val<'_>]) -> Result<(), StoreError> {
        if self.writing() { writer.push(self.tx, row) } else { Ok(()) }
    }

    fn next_id(&mut self, table: &'static str) -> Result<i64, StoreError> {
        let alloc = self.ids.entry(table).or_insert_with(|| IdAllocator::new(table));
        self.tx.next_id(alloc)
    }

    /// Reports a key seen twice in one file.
    fn first_time(&mut self, what: &str, key: &str, line: u64) -> RowResult {
        if let Some(first) = self.seen.get(key) {
            return bad(format!("duplicate {what} {key:?} (first on line {first})"));
        }
        self.seen.insert(key.to_owned(), line);
        Ok(())
    }

    fn account(&self, id: &str, column: &str) -> Result<(i64, AccountType), RowError> {
        if id.is_empty() {
            return bad(format!("{column} is empty"));
        }
        self.site_accounts.get(id).copied().ok_or_else(|| {
            RowError::Bad(format!(
                "{column} {id:?} is not an account of site {} (not in accounts.csv nor imported before)",
                self.site_slug
            ))
        })
    }

    fn project(&self, key: &str) -> Result<i64, RowError> {
        self.projects.get(key).copied().ok_or_else(|| {
            RowError::Bad(format!("project_key {key:?} is not a project of site {}", self.site_slug))
        })
    }

    fn group(&self, name: &str) -> Result<i64, RowError> {
        self.groups.get(&name.to_lowercase()).copied().ok_or_else(|| {
            RowError::Bad(format!("group_name {name:?} is not a group of site {} (declare it in groups.csv)", self.site_slug))
        })
    }

    fn organization(&self, name: &str) -> Result<i64, RowError> {
        self.organizations.get(name).copied().ok_or_else(|| {
            RowError::Bad(format!(
                "organization {name:?} is not an organization of site {} (declare it in organizations.csv)",
                self.site_slug
            ))
        })
    }

    fn row(&mut self, file: &str, line: u64, r: &csv::StringRecord, w: &mut Writers) -> RowResult {
        let cell = |i: usize| r.get(i).unwrap_or_default();
        let id = |i: usize| r.get(i).unwrap_or_default().trim();
        match file {
            "accounts.csv" => {
                let result = self.account_row(line, [id(0), id(1), cell(2), cell(3), id(4), id(5)], w);
                if let (Err(RowError::Bad(_)), Some(kind)) = (&result, AccountType::from_jira_value(id(1))) {
                    // Rows referring to a bad account would only repeat its
                    // problem; nothing is written once a row is bad anyway.
                    self.site_accounts.entry(id(0).to_owned()).or_insert((0, kind));
                }
                result
            }
            "projects.csv" => {
                let key = id(0);
                validate_project_key(key)?;
                self.first_time("project_key", key, line)?;
                let project_id = match self.projects.get(key) {
                    Some(existing) => *existing,
                    None => self.next_id("projects")?,
                };
                self.projects.insert(key.to_owned(), project_id);
                let (site_id, name) = (self.site_id, cell(1));
                self.push(&mut w.0[0], &[Val::I(project_id), Val::I(site_id), Val::T(key), Val::T(name)])?;
                Ok(())
            }
            "groups.csv" => {
                let name = id(0);
                if name.is_empty() {
                    return bad("group_name is empty");
                }
                let name_key = name.to_lowercase();
                let group_id = match self.groups.get(&name_key) {
                    Some(existing) => *existing,
                    None => {
                        let group_id = self.next_id("groups")?;
                        self.groups.insert(name_key.clone(), group_id);
                        let site_id = self.site_id;
                        self.push(&mut w.0[0], &[Val::I(group_id), Val::I(site_id), Val::T(name), Val::T(&name_key)])?;
                        group_id
                    }
                };
                let member = id(1);
                if member.is_empty() {
                    return Ok(());
                }
                let (account_id, kind) = self.account(member, "account_id")?;
                if kind == AccountType::PortalOnly {
                    return bad(format!("portal-only account {member:?} cannot be a member of group {name:?}"));
                }
                self.push(&mut w.0[1], &[Val::I(group_id), Val::I(account_id)])?;
                Ok(())
            }
            "customer_roles.csv" => {
                let project_id = self.project(id(0))?;
                let group_id = self.group(id(1))?;
                self.push(&mut w.0[0], &[Val::I(project_id), Val::I(group_id)])?;
                Ok(())
            }
            "organizations.csv" => {
                let name = id(0);
                if name.is_empty() {
                    return bad("organization is empty");
                }
                let organization_id = match self.organizations.get(name) {
                    Some(existing) => *existing,
                    None => {
                        let organization_id = self.next_id("organizations")?;
                        self.organizations.insert(name.to_owned(), organization_id);
                        let site_id = self.site_id;
                        self.push(&mut w.0[0], &[Val::I(organization_id), Val::I(site_id), Val::T(name)])?;
                        organization_id
                    }
                };
                let member = id(1);
                if member.is_empty() {
                    return Ok(());
                }
                let (account_id, _) = self.account(member, "account_id")?;
                self.push(&mut w.0[1], &[Val::I(organization_id), Val::I(account_id)])?;
                Ok(())
            }
            "organization_projects.csv" => {
                let organization_id = self.organization(id(0))?;
                let project_id = self.project(id(1))?;
                self.push(&mut w.0[0], &[Val::I(organization_id), Val::I(project_id)])?;
                Ok(())
            }
            "customers.csv" => {
                let project_id = self.project(id(0))?;
                let (account_id, _) = self.account(id(1), "account_id")?;
                self.push(&mut w.0[0], &[Val::I(project_id), Val::I(account_id)])?;
                Ok(())
            }
            "requests.csv" => {
                let result = self.request_row(line, r, w);
                if matches!(result, Err(RowError::Bad(_))) {
                    // As for accounts: its comments need not repeat its problem.
                    self.requests.entry(id(0).to_owned()).or_insert(0);
                }
                result
            }
            "comments.csv" => {
                let key = id(0);
                let request_id = self.requests.get(key).copied().ok_or_else(|| {
                    RowError::Bad(format!("request_key {key:?} is not a request of site {}", self.site_slug))
                })?;
                let (author_id, _) = self.account(id(1), "author_id")?;
                let created = canonical_timestamp(cell(2))?;
                self.push(&mut w.0[0], &[Val::I(request_id), Val::I(author_id), Val::T(&created), Val::T(cell(3))])?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn account_row(&mut self, line: u64, cells: [&str; 6], w: &mut Writers) -> RowResult {
        let [ext, kind, email, display_name, active, verified] = cells;
        if ext.is_empty() {
            return bad("account_id is empty");
        }
        let Some(kind) = AccountType::from_jira_value(kind) else {
            return bad(format!("account_type {kind:?} is not `atlassian` or `customer`"));
        };
        let email = Email::parse(email).map_err(|e| e.to_string())?;
        let active = parse_bool(active).ok_or_else(|| format!("active {active:?} is not true or false"))?;
        let verified = match (kind, parse_bool(verified)) {
            (_, Some(v)) => v,
            (AccountType::PortalOnly, None) if verified.is_empty() => false,
            _ => return bad(format!("email_verified {verified:?} is not true or false")),
        };
        self.first_time("account_id", ext, line)?;
        let key = email.key();
        let account_id = match kind {
            AccountType::Atlassian => {
                if self.portal_by_id.contains_key(ext) {
                    return bad(format!(
                        "account {ext:?} is a portal-only account of site {}; it cannot also be an Atlassian account",
                        self.site_slug
                    ));
                }
                if let Some((_, existing)) = self.atlassian_by_id.get(ext) {
                    if existing != key {
                        return bad(format!(
                            "Atlassian account {ext:?} already has email {existing:?}; one Atlassian account has one email"
                        ));
                    }
                }
                if let Some(owner) = self.atlassian_by_email.get(key) {
                    if owner != ext {
                        return bad(format!(
                            "email {:?} already belongs to Atlassian account {owner:?}; one email has one Atlassian account",
                            email.original()
                        ));
                    }
                }
                let account_id = match self.atlassian_by_id.get(ext) {
                    Some((existing, _)) => *existing,
                    None => self.next_id("accounts")?,
                };
                self.atlassian_by_id.insert(ext.to_owned(), (account_id, key.to_owned()));
                self.atlassian_by_email.insert(key.to_owned(), ext.to_owned());
                account_id
            }
            AccountType::PortalOnly => {
                if self.atlassian_by_id.contains_key(ext) {
                    return bad(format!(
                        "account {ext:?} is an Atlassian account; a portal-only account needs an id of its own"
                    ));
                }
                if let Some(owner) = self.portal_by_email.get(key) {
                    if owner != ext {
                        return bad(format!(
                            "email {:?} is already used by portal-only account {owner:?} of site {}; a site has one portal-only account per email",
                            email.original(),
                            self.site_slug
                        ));
                    }
                }
                let account_id = match self.portal_by_id.get(ext) {
                    Some((existing, old_key)) => {
                        let (existing, old_key) = (*existing, old_key.clone());
                        self.portal_by_email.remove(&old_key);
                        existing
                    }
                    None => self.next_id("accounts")?,
                };
                self.portal_by_id.insert(ext.to_owned(), (account_id, key.to_owned()));
                self.portal_by_email.insert(key.to_owned(), ext.to_owned());
                account_id
            }
        };
        self.site_accounts.insert(ext.to_owned(), (account_id, kind));
        let site = match kind {
            AccountType::Atlassian => Val::Null,
            AccountType::PortalOnly => Val::I(self.site_id),
        };
        let row = [
            Val::I(account_id),
            Val::T(kind.jira_value()),
            site,
            Val::T(ext),
            Val::T(email.original()),
            Val::T(key),
            Val::T(display_name),
            Val::B(active),
            Val::B(verified),
        ];
        self.push(&mut w.0[0], &row)?;
        if kind == AccountType::Atlassian {
            let site_id = self.site_id;
            self.push(&mut w.0[1], &[Val::I(site_id), Val::I(account_id)])?;
        }
        Ok(())
    }

    fn request_row(&mut self, line: u64, r: &csv::StringRecord, w: &mut Writers) -> RowResult {
        let cell = |i: usize| r.get(i).unwrap_or_default();
        let key = cell(0).trim();
        let project_key = cell(1).trim();
        let (key_project, number) = parse_request_key(key)?;
        if key_project != project_key {
            return bad(format!("request key {key:?} does not belong to project {project_key:?}"));
        }
        let project_id = self.project(project_key)?;
        self.first_time("request_key", key, line)?;
        let created = canonical_timestamp(cell(4))?;
        let (reporter_id, _) = self.account(cell(5).trim(), "reporter_id")?;
        let mut participants = Vec::new();
        for participant in cell(6).split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (account_id, _) = self.account(participant, "participant")?;
            if !participants.contains(&account_id) {
                participants.push(account_id);
            }
        }
        let organization = cell(7).trim();
        let organization_id = if organization.is_empty() { None } else { Some(self.organization(organization)?) };
        let existing = self.requests.get(key).copied();
        let request_id = match existing {
            Some(id) => id,
            None => self.next_id("requests")?,
        };
        self.requests.insert(key.to_owned(), request_id);
        let site_id = self.site_id;
        let row = [
            Val::I(request_id),
            Val::I(site_id),
            Val::I(project_id),
            Val::T(key),
            Val::I(number),
            Val::T(cell(2)),
            Val::T(cell(3)),
            Val::T(&created),
            Val::I(reporter_id),
            Val::from(organization_id),
        ];
        self.push(&mut w.0[0], &row)?;
        if existing.is_some() && self.writing() {
            // A request's participants are the ones its row lists now.
            self.tx.execute("DELETE FROM request_participants WHERE request_id = $1", &[Val::I(request_id)])?;
        }
        for account_id in participants {
            self.push(&mut w.0[1], &[Val::I(request_id), Val::I(account_id)])?;
        }
        Ok(())
    }
}

/// The bulk writers one file fills, finished in order (parents first).
struct Writers(Vec<BulkWriter>);

impl Writers {
    fn for_file(name: &str) -> Writers {
        let specs: &[&'static TableSpec] = match name {
            "accounts.csv" => &[&ACCOUNTS, &SITE_USERS],
            "projects.csv" => &[&PROJECTS],
            "groups.csv" => &[&GROUPS, &GROUP_MEMBERS],
            "customer_roles.csv" => &[&CUSTOMER_ROLES],
            "organizations.csv" => &[&ORGANIZATIONS, &ORGANIZATION_MEMBERS],
            "organization_projects.csv" => &[&ORGANIZATION_PROJECTS],
            "customers.csv" => &[&PROJECT_CUSTOMERS],
            "requests.csv" => &[&REQUESTS, &REQUEST_PARTICIPANTS],
            "comments.csv" => &[&COMMENTS],
            _ => &[],
        };
        Writers(specs.iter().map(|s| BulkWriter::new(s)).collect())
    }
}
