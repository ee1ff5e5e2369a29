//! `site import`: streams each file once, validates every row, writes in
//! bulk inside one transaction, and rolls everything back if any row is bad,
//! after reporting all of them.
//!
//! Two threads share the work: a validator parses and checks rows and turns
//! them into batches; the caller's thread writes the batches into the open
//! transaction. On two cores the parsing and the database overlap.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use compact_str::CompactString;
use ferry_core::email::{hidden_key, is_hidden, normalize};
use ferry_core::model::{
    AccountType, GroupState, canonical_timestamp, parse_bool, parse_request_key, validate_project_key,
};
use ferry_store::bulk::{BulkWriter, OnConflict, RowBatch, TableSpec};
use ferry_store::{IdAllocator, Store, StoreError, Tx, Val, accounts, sites};
use rustc_hash::FxHashMap;

use crate::index::{AccountEntry, Accounts, Cloud, RequestEntry, Requests};
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
    let actor = store.actor().to_owned();
    let started = std::time::Instant::now();
    store.write_checked_bulk(|tx| {
        let summary = import_into(tx, site, dir, progress)?;
        let total: u64 = summary.rows.iter().map(|(_, n)| n).sum();
        tracing::info!(site, rows = total, seconds = started.elapsed().as_secs_f64(), "snapshot imported");
        let site_id = ferry_store::sites::site(tx, site)?.id;
        let rows: serde_json::Map<String, serde_json::Value> =
            summary.rows.iter().map(|(file, n)| ((*file).to_owned(), (*n).into())).collect();
        let after = serde_json::json!({ "from": dir.display().to_string(), "rows": rows }).to_string();
        ferry_store::audit::record(
            tx,
            ferry_store::audit::Action {
                actor: &actor,
                action: "site.import",
                site_id: Some(site_id),
                target: site,
                before: None,
                after: Some(&after),
            },
        )?;
        Ok(summary)
    })
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
    let problems = unknown_files(dir)?;
    let site = sites::site(tx, site)?;
    // A run still copying into the site planned its new accounts by email:
    // an import meanwhile could take those emails.
    if let Some(run) = sites::unfinished_run_into(tx, site.id)? {
        return Err(StoreError::Conflict(sites::unfinished_run_message(run, &site.slug, "importing into it")).into());
    }
    let index = SiteIndex::load(tx, site.id)?;
    let stamp = tx.stamp()?;
    accounts::stage_terms(tx)?;
    let site_id = site.id;
    let (sender, receiver) = sync_channel::<Message>(8);
    std::thread::scope(|scope| {
        let validator = scope.spawn(move || {
            let mut validator = Validator {
                site_id: site.id,
                site_slug: site.slug,
                problems,
                index,
                sender,
                batches: Vec::new(),
                stamp,
            };
            let summary = validator.run(dir);
            (summary, validator.problems)
        });
        let written = write_batches(tx, receiver, progress);
        let (summary, problems) = validator.join().map_err(|_| ImportError::Io {
            path: dir.to_owned(),
            source: std::io::Error::other("the validating thread failed"),
        })?;
        written?;
        let summary = summary?;
        if problems.is_empty() {
            accounts::index_staged_terms(tx)?;
            let mut tables: Vec<&str> = FILE_TABLES
                .iter()
                .flat_map(|(_, specs)| specs.iter().map(|s| s.table))
                .filter(|table| *table != accounts::STAGED_TERMS.table)
                .chain([accounts::CUSTOMER_TERMS.table])
                .collect();
            tables.dedup();
            tx.analyze(&tables)?;
            accounts::recount(tx, site_id)?;
        }
        if problems.is_empty() { Ok(summary) } else { Err(ImportError::Invalid(problems)) }
    })
}

/// What the validator hands the writer, in order.
enum Message {
    Batch(RowBatch),
    /// A request imported again: its participants are the ones its row
    /// lists now.
    ClearParticipants(i64),
    Rows(&'static str, u64),
    FileDone(&'static str, u64, &'static [&'static TableSpec]),
}

/// The writer's side: runs until the validator hangs up. Returning early on
/// a database error drops the receiver, which stops the validator.
fn write_batches(tx: &mut Tx<'_>, receiver: Receiver<Message>, progress: &mut dyn Progress) -> Result<(), ImportError> {
    let mut writers: Vec<BulkWriter> = Vec::new();
    for message in receiver {
        match message {
            Message::Batch(batch) => {
                let writer = match writers.iter().position(|w| std::ptr::eq(w.spec(), batch.spec)) {
                    Some(i) => &mut writers[i],
                    None => {
                        writers.push(BulkWriter::new(batch.spec));
                        let last = writers.len() - 1;
                        &mut writers[last]
                    }
                };
                writer.write(tx, &batch)?;
            }
            Message::ClearParticipants(request_id) => {
                tx.execute("DELETE FROM request_participants WHERE request_id = $1", &[Val::I(request_id)])?;
            }
            Message::Rows(file, rows) => progress.rows(file, rows),
            Message::FileDone(file, rows, specs) => {
                // Parents before children, so foreign keys hold on PostgreSQL.
                for spec in specs {
                    if let Some(writer) = writers.iter_mut().find(|w| std::ptr::eq(w.spec(), *spec)) {
                        writer.finish(tx)?;
                    }
                }
                progress.file_done(file, rows);
            }
        }
    }
    Ok(())
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

const ACCOUNT_COLUMNS: &[&str] =
    &["id", "kind", "site_id", "ext_id", "email", "email_key", "display_name", "active", "email_verified"];
/// Accounts this import creates: ids are fresh, a plain insert suffices.
static ACCOUNTS_NEW: TableSpec =
    TableSpec { table: "accounts", columns: ACCOUNT_COLUMNS, on_conflict: OnConflict::Fail };
/// Accounts imported before: their row is replaced.
static ACCOUNTS_UPDATE: TableSpec =
    TableSpec { table: "accounts", columns: ACCOUNT_COLUMNS, on_conflict: OnConflict::Upsert(&["id"]) };
static SITE_USERS: TableSpec =
    TableSpec { table: "site_users", columns: &["site_id", "account_id"], on_conflict: OnConflict::Ignore };
static PROJECTS: TableSpec = TableSpec {
    table: "projects",
    columns: &["id", "site_id", "key", "name"],
    on_conflict: OnConflict::Upsert(&["id"]),
};
/// Groups this import creates (a group on the site keeps its row).
static GROUPS: TableSpec = TableSpec {
    table: "groups",
    columns: &["id", "site_id", "name", "name_key", "state"],
    on_conflict: OnConflict::Ignore,
};
static GROUP_MEMBERS: TableSpec =
    TableSpec { table: "group_members", columns: &["group_id", "account_id", "seq"], on_conflict: OnConflict::Ignore };
static CUSTOMER_ROLES: TableSpec =
    TableSpec { table: "customer_roles", columns: &["project_id", "group_id", "seq"], on_conflict: OnConflict::Ignore };
static ORGANIZATIONS: TableSpec =
    TableSpec { table: "organizations", columns: &["id", "site_id", "name"], on_conflict: OnConflict::Ignore };
static ORGANIZATION_MEMBERS: TableSpec = TableSpec {
    table: "organization_members",
    columns: &["organization_id", "account_id", "seq"],
    on_conflict: OnConflict::Ignore,
};
static ORGANIZATION_PROJECTS: TableSpec = TableSpec {
    table: "organization_projects",
    columns: &["organization_id", "project_id"],
    on_conflict: OnConflict::Ignore,
};
static PROJECT_CUSTOMERS: TableSpec = TableSpec {
    table: "project_customers",
    columns: &["project_id", "account_id", "seq"],
    on_conflict: OnConflict::Ignore,
};
const REQUEST_COLUMNS: &[&str] =
    &["id", "site_id", "project_id", "number", "summary", "status", "created", "reporter_id", "organization_id"];
static REQUESTS_NEW: TableSpec =
    TableSpec { table: "requests", columns: REQUEST_COLUMNS, on_conflict: OnConflict::Fail };
static REQUESTS_UPDATE: TableSpec =
    TableSpec { table: "requests", columns: REQUEST_COLUMNS, on_conflict: OnConflict::Upsert(&["id"]) };
static REQUEST_PARTICIPANTS: TableSpec = TableSpec {
    table: "request_participants",
    columns: &["request_id", "account_id"],
    on_conflict: OnConflict::Ignore,
};
/// Comments of requests this import creates: nothing to compare against.
static COMMENTS_NEW: TableSpec = TableSpec {
    table: "comments",
    columns: &["request_id", "author_id", "created", "body"],
    on_conflict: OnConflict::Fail,
};
/// Comments of requests imported before: an identical comment is kept once.
static COMMENTS: TableSpec = TableSpec {
    table: "comments",
    columns: &["request_id", "author_id", "created", "body"],
    on_conflict: OnConflict::SkipSameContent,
};

/// The tables each file writes, parents first.
static FILE_TABLES: [(&str, &[&TableSpec]); 9] = [
    ("accounts.csv", &[&ACCOUNTS_NEW, &ACCOUNTS_UPDATE, &SITE_USERS, &accounts::STAGED_TERMS]),
    ("projects.csv", &[&PROJECTS]),
    ("groups.csv", &[&GROUPS, &GROUP_MEMBERS]),
    ("customer_roles.csv", &[&CUSTOMER_ROLES]),
    ("organizations.csv", &[&ORGANIZATIONS, &ORGANIZATION_MEMBERS]),
    ("organization_projects.csv", &[&ORGANIZATION_PROJECTS]),
    ("customers.csv", &[&PROJECT_CUSTOMERS]),
    ("requests.csv", &[&REQUESTS_NEW, &REQUESTS_UPDATE, &REQUEST_PARTICIPANTS]),
    ("comments.csv", &[&COMMENTS_NEW, &COMMENTS]),
];

fn tables_of(file: &str) -> &'static [&'static TableSpec] {
    FILE_TABLES.iter().find(|(name, _)| *name == file).map_or(&[], |(_, tables)| tables)
}

type Key = CompactString;

/// What the site and the cloud already hold, plus what this import adds.
struct SiteIndex {
    /// The site's accounts, and the Atlassian and portal-only accounts by
    /// account id and by email.
    accounts: Accounts,
    projects: FxHashMap<Key, (i64, u64)>,
    groups: FxHashMap<Key, i64>,
    /// Group id -> its state (on the site before, or given by its first
    /// row in this import, an empty state meaning active) and that row's
    /// line (0: on the site before).
    group_states: FxHashMap<i64, (GroupState, u64)>,
    organizations: FxHashMap<Key, i64>,
    requests: Requests,
    account_ids: IdAllocator,
    project_ids: IdAllocator,
    group_ids: IdAllocator,
    organization_ids: IdAllocator,
    request_ids: IdAllocator,
}

impl SiteIndex {
    fn load(tx: &mut Tx<'_>, site_id: i64) -> Result<SiteIndex, StoreError> {
        let site = [Val::I(site_id)];
        let mut index = SiteIndex {
            accounts: Accounts::new(),
            projects: FxHashMap::default(),
            groups: FxHashMap::default(),
            group_states: FxHashMap::default(),
            organizations: FxHashMap::default(),
            requests: Requests::new(),
            account_ids: IdAllocator::start(tx, "accounts")?,
            project_ids: IdAllocator::start(tx, "projects")?,
            group_ids: IdAllocator::start(tx, "groups")?,
            organization_ids: IdAllocator::start(tx, "organizations")?,
            request_ids: IdAllocator::start(tx, "requests")?,
        };
        tx.query_each("SELECT ext_id, id, email_key FROM accounts WHERE site_id IS NULL", &[], |r| {
            let (ext, key) = (r.text(0)?, r.text(2)?);
            index.accounts.set(Cloud::Atlassian, ext, r.int(1)?, key);
            Ok(())
        })?;
        tx.query_each(
            "SELECT a.ext_id, a.id FROM site_users su JOIN accounts a ON a.id = su.account_id WHERE su.site_id = $1",
            &site,
            |r| {
                let entry = AccountEntry { id: r.int(1)?, kind: AccountType::Atlassian, line: 0 };
                index.accounts.insert_site(r.text(0)?, entry);
                Ok(())
            },
        )?;
        tx.query_each("SELECT ext_id, id, email_key FROM accounts WHERE site_id = $1", &site, |r| {
            let (ext, id, key) = (r.text(0)?, r.int(1)?, r.text(2)?);
            index.accounts.set(Cloud::Portal, ext, id, key);
            index.accounts.insert_site(ext, AccountEntry { id, kind: AccountType::PortalOnly, line: 0 });
            Ok(())
        })?;
        tx.query_each("SELECT key, id FROM projects WHERE site_id = $1", &site, |r| {
            index.projects.insert(Key::from(r.text(0)?), (r.int(1)?, 0));
            Ok(())
        })?;
        tx.query_each("SELECT name_key, id, state FROM groups WHERE site_id = $1", &site, |r| {
            let id = r.int(1)?;
            index.groups.insert(Key::from(r.text(0)?), id);
            let state = GroupState::parse(r.text(2)?)
                .ok_or_else(|| StoreError::decode("groups.state", format!("{:?} is not a group state", r.text(2))))?;
            index.group_states.insert(id, (state, 0));
            Ok(())
        })?;
        tx.query_each("SELECT name, id FROM organizations WHERE site_id = $1", &site, |r| {
            index.organizations.insert(Key::from(r.text(0)?), r.int(1)?);
            Ok(())
        })?;
        tx.query_each(
            "SELECT p.key, r.number, r.id FROM requests r JOIN projects p ON p.id = r.project_id WHERE r.site_id = $1",
            &site,
            |r| {
                let key = compact_str::format_compact!("{}-{}", r.text(0)?, r.int(1)?);
                index.requests.insert(&key, RequestEntry { id: r.int(2)?, line: 0, existed: true });
                Ok(())
            },
        )?;
        Ok(index)
    }
}

/// Why a row failed: bad input (reported, import continues) or the writer
/// hung up (aborts).
enum RowError {
    Bad(String),
    WriterGone,
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

const BATCH_BYTES: usize = 1 << 20;

struct Validator {
    site_id: i64,
    site_slug: String,
    problems: Vec<Problem>,
    index: SiteIndex,
    sender: SyncSender<Message>,
    /// Pending rows of the current file, one batch per table of the file.
    batches: Vec<RowBatch>,
    /// The arrival stamp of every membership this import writes.
    stamp: i64,
}

impl Validator {
    fn run(&mut self, dir: &Path) -> Result<ImportSummary, ImportError> {
        let mut summary = ImportSummary::default();
        for (name, header) in FILES {
            let path = dir.join(name);
            if !path.is_file() {
                continue;
            }
            let Some(mut file) = self.open(&path, name, header)? else { continue };
            let tables = tables_of(name);
            self.batches = tables.iter().map(|spec| RowBatch::new(spec)).collect();
            let mut record = csv::StringRecord::new();
            let mut rows = 0u64;
            while let Some(line) = file.next(&mut record, &mut self.problems) {
                rows += 1;
                match self.row(name, line, &record) {
                    Ok(()) => {}
                    Err(RowError::Bad(reason)) => self.problems.push(Problem { file: name.into(), line, reason }),
                    Err(RowError::WriterGone) => return Ok(summary),
                }
                if rows.is_multiple_of(100_000) && self.sender.send(Message::Rows(name, rows)).is_err() {
                    return Ok(summary);
                }
            }
            if self.writing() && self.send_batches().is_err() {
                return Ok(summary);
            }
            if self.sender.send(Message::FileDone(name, rows, tables)).is_err() {
                return Ok(summary);
            }
            summary.rows.push((name, rows));
        }
        self.index.accounts.log_size();
        self.index.requests.log_size();
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
                let found: Vec<&str> = first
                    .iter()
                    .enumerate()
                    .map(|(i, c)| if i == 0 { c.trim_start_matches('\u{feff}') } else { c })
                    .collect();
                // groups.csv written before it had its state column.
                let without_state = name == "groups.csv" && found == header[..2];
                if without_state {
                    return Ok(Some(CsvFile { name, reader, columns: 2 }));
                }
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

    /// Adds a row for the file's `table`-th table.
    fn push(&mut self, table: usize, row: &[Val<'_>]) -> RowResult {
        if !self.writing() {
            return Ok(());
        }
        let batch = &mut self.batches[table];
        batch.push(row);
        if batch.weight() >= BATCH_BYTES {
            self.send_batches()?;
        }
        Ok(())
    }

    /// Sends every pending batch of the file, parents first, so a child row
    /// never reaches the database before the row it refers to.
    fn send_batches(&mut self) -> RowResult {
        for batch in &mut self.batches {
            if !batch.is_empty() {
                let full = std::mem::replace(batch, RowBatch::new(batch.spec));
                self.sender.send(Message::Batch(full)).map_err(|_| RowError::WriterGone)?;
            }
        }
        Ok(())
    }

    fn account(&self, id: &str, column: &str) -> Result<AccountEntry, RowError> {
        if id.is_empty() {
            return bad(format!("{column} is empty"));
        }
        self.index.accounts.site(id).ok_or_else(|| {
            RowError::Bad(format!(
                "{column} {id:?} is not an account of site {} (not in accounts.csv nor imported before)",
                self.site_slug
            ))
        })
    }

    fn project(&self, key: &str) -> Result<i64, RowError> {
        self.index
            .projects
            .get(key)
            .map(|p| p.0)
            .ok_or_else(|| RowError::Bad(format!("project_key {key:?} is not a project of site {}", self.site_slug)))
    }

    fn group(&self, name: &str) -> Result<i64, RowError> {
        self.index.groups.get(ferry_core::model::name_key(name).as_str()).copied().ok_or_else(|| {
            RowError::Bad(format!(
                "group_name {name:?} is not a group of site {} (declare it in groups.csv)",
                self.site_slug
            ))
        })
    }

    fn organization(&self, name: &str) -> Result<i64, RowError> {
        self.index.organizations.get(name).copied().ok_or_else(|| {
            RowError::Bad(format!(
                "organization {name:?} is not an organization of site {} (declare it in organizations.csv)",
                self.site_slug
            ))
        })
    }

    fn row(&mut self, file: &str, line: u64, r: &csv::StringRecord) -> RowResult {
        let cell = |i: usize| r.get(i).unwrap_or_default();
        let id = |i: usize| r.get(i).unwrap_or_default().trim();
        let site_id = self.site_id;
        match file {
            "accounts.csv" => {
                let result = self.account_row(line, [id(0), id(1), cell(2), cell(3), id(4), id(5)]);
                if let (Err(RowError::Bad(_)), Some(kind)) = (&result, AccountType::from_jira_value(id(1))) {
                    // Rows referring to a bad account would only repeat its
                    // problem; nothing is written once a row is bad anyway.
                    self.index.accounts.insert_site_if_absent(id(0), AccountEntry { id: 0, kind, line });
                }
                result
            }
            "projects.csv" => {
                let key = id(0);
                validate_project_key(key)?;
                let project_id = match self.index.projects.get(key) {
                    Some((_, first)) if *first > 0 => {
                        return bad(format!("duplicate project_key {key:?} (first on line {first})"));
                    }
                    Some((existing, _)) => *existing,
                    None => self.index.project_ids.next_id(),
                };
                self.index.projects.insert(Key::from(key), (project_id, line));
                self.push(0, &[Val::I(project_id), Val::I(site_id), Val::T(key), Val::T(cell(1))])
            }
            "groups.csv" => {
                let name = id(0);
                if name.is_empty() {
                    return bad("group_name is empty");
                }
                let state = match id(2) {
                    "" => None,
                    given => Some(GroupState::parse(given).ok_or_else(|| {
                        RowError::Bad(format!(
                            "state {given:?} of group {name:?} must be active, awaiting_review or declined"
                        ))
                    })?),
                };
                let name_key = ferry_core::model::name_key(name);
                let (group_id, existed) = match self.index.groups.get(name_key.as_str()) {
                    Some(existing) => (*existing, true),
                    None => {
                        let group_id = self.index.group_ids.next_id();
                        self.index.groups.insert(Key::from(name_key.as_str()), group_id);
                        (group_id, false)
                    }
                };
                // A group's rows must agree on its state. A snapshot never
                // changes the state of a group already on the site: that is
                // a review decision, made (and audited) by `group approve`
                // or `decline`; an empty state leaves it as it is.
                match self.index.group_states.get(&group_id) {
                    Some((known, first_line)) => {
                        if let Some(state) = state
                            && state != *known
                        {
                            let known = known.as_str();
                            return bad(if existed && *first_line == 0 {
                                format!(
                                    "group {name:?} is {known} on site {}; a snapshot does not change a group's \
                                     review state (use `ferry group approve` or `decline`)",
                                    self.site_slug
                                )
                            } else {
                                format!(
                                    "group {name:?} has state {} here but {known} on line {first_line}",
                                    state.as_str()
                                )
                            });
                        }
                    }
                    None => {
                        // A new group without a state is active (SPEC §7).
                        let state = state.unwrap_or(GroupState::Active);
                        self.index.group_states.insert(group_id, (state, line));
                        self.push(
                            0,
                            &[
                                Val::I(group_id),
                                Val::I(site_id),
                                Val::T(name),
                                Val::T(&name_key),
                                Val::T(state.as_str()),
                            ],
                        )?;
                    }
                }
                let member = id(1);
                if member.is_empty() {
                    return Ok(());
                }
                let account = self.account(member, "account_id")?;
                if account.kind == AccountType::PortalOnly {
                    return bad(format!("portal-only account {member:?} cannot be a member of group {name:?}"));
                }
                self.push(1, &[Val::I(group_id), Val::I(account.id), Val::I(self.stamp)])
            }
            "customer_roles.csv" => {
                let project_id = self.project(id(0))?;
                let group_id = self.group(id(1))?;
                self.push(0, &[Val::I(project_id), Val::I(group_id), Val::I(self.stamp)])
            }
            "organizations.csv" => {
                let name = id(0);
                if name.is_empty() {
                    return bad("organization is empty");
                }
                let organization_id = match self.index.organizations.get(name) {
                    Some(existing) => *existing,
                    None => {
                        let organization_id = self.index.organization_ids.next_id();
                        self.index.organizations.insert(Key::from(name), organization_id);
                        self.push(0, &[Val::I(organization_id), Val::I(site_id), Val::T(name)])?;
                        organization_id
                    }
                };
                let member = id(1);
                if member.is_empty() {
                    return Ok(());
                }
                let account = self.account(member, "account_id")?;
                self.push(1, &[Val::I(organization_id), Val::I(account.id), Val::I(self.stamp)])
            }
            "organization_projects.csv" => {
                let organization_id = self.organization(id(0))?;
                let project_id = self.project(id(1))?;
                self.push(0, &[Val::I(organization_id), Val::I(project_id)])
            }
            "customers.csv" => {
                let project_id = self.project(id(0))?;
                let account = self.account(id(1), "account_id")?;
                self.push(0, &[Val::I(project_id), Val::I(account.id), Val::I(self.stamp)])
            }
            "requests.csv" => {
                let result = self.request_row(line, r);
                if matches!(result, Err(RowError::Bad(_))) {
                    // As for accounts: its comments need not repeat its problem.
                    let placeholder = RequestEntry { id: 0, line, existed: false };
                    self.index.requests.insert_if_absent(id(0), placeholder);
                }
                result
            }
            "comments.csv" => {
                let key = id(0);
                let request = self.index.requests.get(key).ok_or_else(|| {
                    RowError::Bad(format!("request_key {key:?} is not a request of site {}", self.site_slug))
                })?;
                let author = self.account(id(1), "author_id")?;
                let created = canonical_timestamp(cell(2))?;
                let table = if request.existed { 1 } else { 0 };
                self.push(table, &[Val::I(request.id), Val::I(author.id), Val::T(&created), Val::T(cell(3))])
            }
            _ => Ok(()),
        }
    }

    fn account_row(&mut self, line: u64, cells: [&str; 6]) -> RowResult {
        let [ext, kind, email, display_name, active, verified] = cells;
        if ext.is_empty() {
            return bad("account_id is empty");
        }
        let Some(kind) = AccountType::from_jira_value(kind) else {
            return bad(format!("account_type {kind:?} is not `atlassian` or `customer`"));
        };
        // An empty email is one the site hides (SPEC §7, §8): the account
        // gets a key no address can equal, so it is never matched by email.
        let hidden = email.trim().is_empty();
        let mut key = if hidden { hidden_key(ext) } else { normalize(email).map_err(|e| e.to_string())? };
        let mut original: Cow<'_, str> = Cow::Borrowed(email.trim());
        let mut keep_known = false;
        let active = parse_bool(active).ok_or_else(|| format!("active {active:?} is not true or false"))?;
        let verified = match (kind, parse_bool(verified)) {
            (_, Some(v)) => v,
            (AccountType::PortalOnly, None) if verified.is_empty() => false,
            _ => return bad(format!("email_verified {verified:?} is not true or false")),
        };
        if let Some(seen) = self.index.accounts.site(ext)
            && seen.line > 0
        {
            return bad(format!("duplicate account_id {ext:?} (first on line {})", seen.line));
        }
        let index = &mut self.index;
        let mut created = false;
        let account_id = match kind {
            AccountType::Atlassian => {
                let accounts = &mut index.accounts;
                if accounts.by_id(Cloud::Portal, ext).is_some() {
                    return bad(format!(
                        "account {ext:?} is a portal-only account of site {}; it cannot also be an Atlassian account",
                        self.site_slug
                    ));
                }
                let existing = accounts.by_id(Cloud::Atlassian, ext);
                if let Some((id, existing_key)) = existing
                    && accounts.text(existing_key) != key.as_str()
                {
                    let existing_key = accounts.text(existing_key);
                    if hidden {
                        // A site that hides the email of an account ferry
                        // knows from elsewhere: the account stays as that
                        // site shows it (email, its spelling, verification).
                        key = existing_key.to_string();
                        original = Cow::Owned(existing_key.to_string());
                        keep_known = true;
                    } else if is_hidden(existing_key) {
                        // The email of an account known only as hidden.
                        let existing_key = existing_key.to_owned();
                        accounts.remove_owner(Cloud::Atlassian, &existing_key);
                        accounts.set_by_id(Cloud::Atlassian, ext, id, &key);
                    } else {
                        return bad(format!(
                            "Atlassian account {ext:?} already has email {existing_key:?}; one Atlassian account has one email"
                        ));
                    }
                }
                if let Some(owner) = accounts.owner(Cloud::Atlassian, &key)
                    && owner != ext
                {
                    return bad(format!(
                        "email {original:?} already belongs to Atlassian account {owner:?}; one email has one Atlassian account"
                    ));
                }
                match existing {
                    Some((id, _)) => {
                        accounts.set_owner(Cloud::Atlassian, &key, ext);
                        id
                    }
                    None => {
                        created = true;
                        let id = index.account_ids.next_id();
                        let accounts = &mut index.accounts;
                        accounts.set(Cloud::Atlassian, ext, id, &key);
                        id
                    }
                }
            }
            AccountType::PortalOnly => {
                if let Some(seen) = index.accounts.site(ext)
                    && seen.kind == AccountType::Atlassian
                {
                    return bad(format!(
                        "account {ext:?} is an Atlassian account of site {}; it cannot also be a portal-only account",
                        self.site_slug
                    ));
                }
                if let Some(owner) = index.accounts.owner(Cloud::Portal, &key)
                    && owner != ext
                {
                    return bad(format!(
                        "email {original:?} is already used by portal-only account {owner:?} of site {}; a site has one portal-only account per email",
                        self.site_slug
                    ));
                }
                let id = match index.accounts.by_id(Cloud::Portal, ext) {
                    Some((existing, old_key)) => {
                        let old_key = index.accounts.text(old_key).to_owned();
                        index.accounts.remove_owner(Cloud::Portal, &old_key);
                        existing
                    }
                    None => {
                        created = true;
                        index.account_ids.next_id()
                    }
                };
                index.accounts.set(Cloud::Portal, ext, id, &key);
                id
            }
        };
        index.accounts.insert_site(ext, AccountEntry { id: account_id, kind, line });
        let site = match kind {
            AccountType::Atlassian => Val::Null,
            AccountType::PortalOnly => Val::I(self.site_id),
        };
        let row = [
            Val::I(account_id),
            Val::T(kind.jira_value()),
            site,
            Val::T(ext),
            Val::T(&original),
            Val::T(&key),
            Val::T(display_name),
            Val::B(active),
            Val::B(verified),
        ];
        if !keep_known {
            self.push(if created { 0 } else { 1 }, &row)?;
            let searchable_email = if is_hidden(&key) { "" } else { key.as_str() };
            for term in ferry_core::search::terms(searchable_email, display_name) {
                self.push(3, &[Val::T(&term), Val::T(&key)])?;
            }
        }
        if kind == AccountType::Atlassian {
            let site_id = self.site_id;
            self.push(2, &[Val::I(site_id), Val::I(account_id)])?;
        }
        Ok(())
    }

    fn request_row(&mut self, line: u64, r: &csv::StringRecord) -> RowResult {
        let cell = |i: usize| r.get(i).unwrap_or_default();
        let key = cell(0).trim();
        let project_key = cell(1).trim();
        let (key_project, number) = parse_request_key(key)?;
        if key_project != project_key {
            return bad(format!("request key {key:?} does not belong to project {project_key:?}"));
        }
        let project_id = self.project(project_key)?;
        let existing = match self.index.requests.get(key) {
            Some(seen) if seen.line > 0 => {
                return bad(format!("duplicate request_key {key:?} (first on line {})", seen.line));
            }
            Some(seen) => Some(seen.id),
            None => None,
        };
        let created: Cow<'_, str> = canonical_timestamp(cell(4))?;
        let reporter = self.account(cell(5).trim(), "reporter_id")?;
        let mut participants: Vec<i64> = Vec::new();
        for participant in cell(6).split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let account = self.account(participant, "participant")?;
            if !participants.contains(&account.id) {
                participants.push(account.id);
            }
        }
        let organization = cell(7).trim();
        let organization_id = if organization.is_empty() { None } else { Some(self.organization(organization)?) };
        let request_id = match existing {
            Some(id) => id,
            None => self.index.request_ids.next_id(),
        };
        let entry = RequestEntry { id: request_id, line, existed: existing.is_some() };
        self.index.requests.insert(key, entry);
        let row = [
            Val::I(request_id),
            Val::I(self.site_id),
            Val::I(project_id),
            Val::I(number),
            Val::T(cell(2)),
            Val::T(cell(3)),
            Val::T(&created),
            Val::I(reporter.id),
            Val::from(organization_id),
        ];
        self.push(if existing.is_some() { 1 } else { 0 }, &row)?;
        if existing.is_some() && self.writing() {
            // Rows before this one must land before the participants go.
            self.send_batches()?;
            self.sender.send(Message::ClearParticipants(request_id)).map_err(|_| RowError::WriterGone)?;
        }
        for account_id in participants {
            self.push(2, &[Val::I(request_id), Val::I(account_id)])?;
        }
        Ok(())
    }
}
