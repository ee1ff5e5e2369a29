//! The compact maps behind an import's index of a site's accounts and
//! requests: at 10,000,000 customers the index holds tens of millions of
//! entries, so no entry owns a heap allocation.
//!
//! Strings live in an [`Arena`] of large chunks and are named by a `u64`
//! [`Handle`]. Records live in [`Records`], a list of fixed-size chunks, and
//! the hash tables hold only a record's `u32` number; a table finds a key by
//! hashing it and comparing it with the string its record names.
//!
//! [`Accounts`] and [`Requests`] behave exactly like the hash maps they
//! replace (see each method); the import never sees the difference.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use compact_str::CompactString;
use ferry_core::model::{AccountType, parse_request_key};
use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashMap};

/// A string in an [`Arena`]: its chunk (24 bits), its offset in the chunk
/// (20 bits) and its length (20 bits; [`WHOLE`] for a string that has a
/// chunk of its own).
pub(crate) type Handle = u64;

const CHUNK_BYTES: usize = 1 << 20;
/// Longer strings get a chunk of their own rather than waste the rest of one.
const OWN_CHUNK_FROM: usize = CHUNK_BYTES / 16;
const WHOLE: u64 = (1 << 20) - 1;

/// Strings appended one after another; never moved, never freed.
#[derive(Default)]
pub(crate) struct Arena {
    chunks: Vec<String>,
    /// The chunk short strings go into (the last shared chunk), if any.
    current: Option<usize>,
}

impl Arena {
    pub(crate) fn push(&mut self, s: &str) -> Handle {
        if s.is_empty() {
            return 0;
        }
        if s.len() >= OWN_CHUNK_FROM {
            self.chunks.push(s.to_owned());
            return Self::handle(self.chunks.len() - 1, 0, WHOLE);
        }
        let chunk = match self.current {
            Some(i) if self.chunks[i].len() + s.len() <= CHUNK_BYTES => i,
            _ => {
                self.chunks.push(String::with_capacity(CHUNK_BYTES));
                self.current = Some(self.chunks.len() - 1);
                self.chunks.len() - 1
            }
        };
        let text = &mut self.chunks[chunk];
        let offset = text.len();
        text.push_str(s);
        Self::handle(chunk, offset, s.len() as u64)
    }

    fn handle(chunk: usize, offset: usize, len: u64) -> Handle {
        // 2^24 chunks of at least 64 KiB each: past any memory there is.
        debug_assert!(chunk < 1 << 24);
        ((chunk as u64) << 40) | ((offset as u64) << 20) | len
    }

    pub(crate) fn get(&self, handle: Handle) -> &str {
        let len = handle & WHOLE;
        if len == 0 {
            return "";
        }
        let chunk = &self.chunks[(handle >> 40) as usize];
        if len == WHOLE {
            return chunk;
        }
        let offset = ((handle >> 20) & WHOLE) as usize;
        &chunk[offset..offset + len as usize]
    }

    /// Bytes held.
    pub(crate) fn allocated(&self) -> usize {
        self.chunks.iter().map(String::capacity).sum::<usize>() + self.chunks.capacity() * size_of::<String>()
    }
}

const RECORDS_PER_CHUNK: usize = 1 << 14;

/// A growing list of records in fixed-size chunks: growing never copies
/// what is there, and a record's number never changes.
pub(crate) struct Records<T> {
    chunks: Vec<Vec<T>>,
    len: u32,
}

impl<T: Copy> Records<T> {
    fn new() -> Self {
        Records { chunks: Vec::new(), len: 0 }
    }

    fn push(&mut self, record: T) -> u32 {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < RECORDS_PER_CHUNK => chunk.push(record),
            _ => {
                let mut chunk = Vec::with_capacity(RECORDS_PER_CHUNK);
                chunk.push(record);
                self.chunks.push(chunk);
            }
        }
        let number = self.len;
        // More than 2^32 records would need more memory than a machine has
        // for this index; stop rather than alias.
        self.len = self.len.checked_add(1).unwrap_or_else(|| std::process::abort());
        number
    }

    fn get(&self, number: u32) -> T {
        let n = number as usize;
        self.chunks[n / RECORDS_PER_CHUNK][n % RECORDS_PER_CHUNK]
    }

    fn get_mut(&mut self, number: u32) -> &mut T {
        let n = number as usize;
        &mut self.chunks[n / RECORDS_PER_CHUNK][n % RECORDS_PER_CHUNK]
    }

    fn allocated(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity() * size_of::<T>()).sum::<usize>()
            + self.chunks.capacity() * size_of::<Vec<T>>()
    }
}

/// Lines are kept in 32 bits; a line past that (a file of over four
/// billion lines) is kept aside, under its record's number.
#[derive(Default)]
struct WideLines(FxHashMap<u32, u64>);

const WIDE: u32 = u32::MAX;

impl WideLines {
    fn narrow(&mut self, record: u32, line: u64) -> u32 {
        match u32::try_from(line) {
            Ok(narrow) if narrow != WIDE => narrow,
            _ => {
                self.0.insert(record, line);
                WIDE
            }
        }
    }

    fn widen(&self, record: u32, line: u32) -> u64 {
        if line == WIDE { self.0.get(&record).copied().unwrap_or(u64::from(WIDE)) } else { u64::from(line) }
    }
}

/// An account a row of the site may refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AccountEntry {
    pub(crate) id: i64,
    pub(crate) kind: AccountType,
    /// Line of accounts.csv that declared it in this import; 0 if it was on
    /// the site before.
    pub(crate) line: u64,
}

/// One account as one or more of the tables of [`Accounts`] see it. The
/// tables by account id read `ext` (their key), `id` and `email`; the
/// tables by email read `email` (their key) and `ext` (their value); the
/// site's table reads `ext`, `id`, `line` and `kind`. Only `line` and
/// `kind` ever change, so a record can serve several tables.
#[derive(Debug, Clone, Copy)]
struct Account {
    ext: Handle,
    email: Handle,
    id: i64,
    line: u32,
    kind: u8,
}

const ATLASSIAN: u8 = 0;
const PORTAL_ONLY: u8 = 1;

fn kind_code(kind: AccountType) -> u8 {
    match kind {
        AccountType::Atlassian => ATLASSIAN,
        AccountType::PortalOnly => PORTAL_ONLY,
    }
}

fn kind_of(code: u8) -> AccountType {
    if code == ATLASSIAN { AccountType::Atlassian } else { AccountType::PortalOnly }
}

/// Which string of a record a table is keyed by.
#[derive(Clone, Copy)]
enum By {
    Ext,
    Email,
}

/// The site's accounts and the accounts of the cloud, as five maps over one
/// store of records:
///
/// - `site`: account id (`ext_id`) -> [`AccountEntry`], the accounts rows
///   of the site may refer to;
/// - `atlassian_by_id`: account id -> (id, email key) of every Atlassian
///   account, and `atlassian_by_email`: email key -> account id;
/// - `portal_by_id` and `portal_by_email`: the same for the site's
///   portal-only accounts.
///
/// Each map keeps its own membership: inserting into or removing from one
/// never changes another.
pub(crate) struct Accounts<S = FxBuildHasher> {
    hasher: S,
    arena: Arena,
    records: Records<Account>,
    wide_lines: WideLines,
    site: HashTable<u32>,
    atlassian_by_id: HashTable<u32>,
    atlassian_by_email: HashTable<u32>,
    portal_by_id: HashTable<u32>,
    portal_by_email: HashTable<u32>,
}

fn record_key<'a>(arena: &'a Arena, records: &Records<Account>, record: u32, by: By) -> &'a str {
    let r = records.get(record);
    arena.get(match by {
        By::Ext => r.ext,
        By::Email => r.email,
    })
}

/// Which pair of maps an account of a type is in.
#[derive(Clone, Copy)]
pub(crate) enum Cloud {
    Atlassian,
    Portal,
}

impl Accounts<FxBuildHasher> {
    pub(crate) fn new() -> Self {
        Self::with_hasher(FxBuildHasher)
    }
}

impl<S: BuildHasher> Accounts<S> {
    pub(crate) fn with_hasher(hasher: S) -> Self {
        Accounts {
            hasher,
            arena: Arena::default(),
            records: Records::new(),
            wide_lines: WideLines::default(),
            site: HashTable::new(),
            atlassian_by_id: HashTable::new(),
            atlassian_by_email: HashTable::new(),
            portal_by_id: HashTable::new(),
            portal_by_email: HashTable::new(),
        }
    }

    fn key_of(&self, record: u32, by: By) -> &str {
        record_key(&self.arena, &self.records, record, by)
    }

    /// The record a table holds under `key`.
    fn find(&self, table: &HashTable<u32>, by: By, key: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        table.find(hash, |&r| self.key_of(r, by) == key).copied()
    }

    fn table(&self, which: Table) -> &HashTable<u32> {
        match which {
            Table::Site => &self.site,
            Table::AtlassianById => &self.atlassian_by_id,
            Table::AtlassianByEmail => &self.atlassian_by_email,
            Table::PortalById => &self.portal_by_id,
            Table::PortalByEmail => &self.portal_by_email,
        }
    }

    fn lookup(&self, which: Table, key: &str) -> Option<u32> {
        self.find(self.table(which), which.by(), key)
    }

    /// The table `which` for changing, with what its hashing reads.
    fn split(&mut self, which: Table) -> (&S, &Arena, &Records<Account>, &mut HashTable<u32>) {
        let table = match which {
            Table::Site => &mut self.site,
            Table::AtlassianById => &mut self.atlassian_by_id,
            Table::AtlassianByEmail => &mut self.atlassian_by_email,
            Table::PortalById => &mut self.portal_by_id,
            Table::PortalByEmail => &mut self.portal_by_email,
        };
        (&self.hasher, &self.arena, &self.records, table)
    }

    /// Makes `which` hold `record` under the record's key, replacing what
    /// it held under that key.
    fn put(&mut self, which: Table, record: u32) {
        let by = which.by();
        let (hasher, arena, records, table) = self.split(which);
        let key = record_key(arena, records, record, by);
        let hash = hasher.hash_one(key);
        let entry = table.entry(
            hash,
            |&r| record_key(arena, records, r, by) == key,
            |&r| hasher.hash_one(record_key(arena, records, r, by)),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(mut held) => *held.get_mut() = record,
            hashbrown::hash_table::Entry::Vacant(free) => {
                free.insert(record);
            }
        }
    }

    /// Removes what `which` holds under `key`, if anything.
    fn take(&mut self, which: Table, key: &str) {
        let by = which.by();
        let (hasher, arena, records, table) = self.split(which);
        let hash = hasher.hash_one(key);
        if let Ok(held) = table.find_entry(hash, |&r| record_key(arena, records, r, by) == key) {
            held.remove();
        }
    }

    fn add(&mut self, ext: Handle, email: Handle, id: i64) -> u32 {
        self.records.push(Account { ext, email, id, line: 0, kind: ATLASSIAN })
    }

    /// The handle of `ext`: the one a record already has if `known` names
    /// one, else a new one.
    fn ext_handle(&mut self, known: Option<u32>, ext: &str) -> Handle {
        match known {
            Some(r) => self.records.get(r).ext,
            None => self.arena.push(ext),
        }
    }

    /// The string `handle` names.
    pub(crate) fn text(&self, handle: Handle) -> &str {
        self.arena.get(handle)
    }

    // The site's accounts.

    /// `site.get(ext)`.
    pub(crate) fn site(&self, ext: &str) -> Option<AccountEntry> {
        let r = self.lookup(Table::Site, ext)?;
        let record = self.records.get(r);
        Some(AccountEntry { id: record.id, kind: kind_of(record.kind), line: self.wide_lines.widen(r, record.line) })
    }

    /// `site.insert(ext, entry)`.
    pub(crate) fn insert_site(&mut self, ext: &str, entry: AccountEntry) {
        let cloud = match entry.kind {
            AccountType::Atlassian => Table::AtlassianById,
            AccountType::PortalOnly => Table::PortalById,
        };
        let same_id = |r: &Option<u32>| r.filter(|&r| self.records.get(r).id == entry.id);
        // The record of the account's type is the one to share when it is
        // the same account; then the record the site had; else a new one.
        let of_type = self.lookup(cloud, ext);
        let held = self.lookup(Table::Site, ext);
        let record = match same_id(&of_type).or_else(|| same_id(&held)) {
            Some(r) => r,
            None => {
                let ext = self.ext_handle(of_type.or(held), ext);
                self.add(ext, 0, entry.id)
            }
        };
        let line = self.wide_lines.narrow(record, entry.line);
        let r = self.records.get_mut(record);
        r.line = line;
        r.kind = kind_code(entry.kind);
        if held != Some(record) {
            self.put(Table::Site, record);
        }
    }

    /// `site.entry(ext).or_insert(entry)`.
    pub(crate) fn insert_site_if_absent(&mut self, ext: &str, entry: AccountEntry) {
        if self.lookup(Table::Site, ext).is_none() {
            self.insert_site(ext, entry);
        }
    }

    // Atlassian and portal-only accounts, by account id and by email: the
    // old `{atlassian,portal}_by_id` and `_by_email` maps, `cloud` naming
    // which of the two.

    /// `by_id.get(ext)`: the account's id and its email key.
    pub(crate) fn by_id(&self, cloud: Cloud, ext: &str) -> Option<(i64, Handle)> {
        let r = self.records.get(self.lookup(cloud.by_id(), ext)?);
        Some((r.id, r.email))
    }

    /// `by_id.insert(ext, (id, email))`.
    pub(crate) fn set_by_id(&mut self, cloud: Cloud, ext: &str, id: i64, email: &str) {
        let held = self.lookup(cloud.by_id(), ext);
        if let Some(r) = held {
            let record = self.records.get(r);
            if record.id == id && self.arena.get(record.email) == email {
                return;
            }
        }
        // A new record: the old one may still serve other tables as it is.
        let ext = self.ext_handle(held, ext);
        let email = self.arena.push(email);
        let record = self.add(ext, email, id);
        self.put(cloud.by_id(), record);
    }

    /// `by_email.get(email)`.
    pub(crate) fn owner(&self, cloud: Cloud, email: &str) -> Option<&str> {
        let r = self.lookup(cloud.by_email(), email)?;
        Some(self.key_of(r, By::Ext))
    }

    /// `by_email.insert(email, ext)`.
    pub(crate) fn set_owner(&mut self, cloud: Cloud, email: &str, ext: &str) {
        // The account's own record when it has this email (always, as the
        // import uses it); else a record for the pair alone.
        let held = self.lookup(cloud.by_id(), ext);
        let record = match held.filter(|&r| self.key_of(r, By::Email) == email) {
            Some(r) => r,
            None => {
                let ext = self.ext_handle(held, ext);
                let email = match self.lookup(cloud.by_email(), email) {
                    Some(r) => self.records.get(r).email,
                    None => self.arena.push(email),
                };
                self.add(ext, email, 0)
            }
        };
        self.put(cloud.by_email(), record);
    }

    /// The account `ext` with id `id` and email `email`, owner of that
    /// email: [`Accounts::set_by_id`], then [`Accounts::set_owner`].
    pub(crate) fn set(&mut self, cloud: Cloud, ext: &str, id: i64, email: &str) {
        self.set_by_id(cloud, ext, id, email);
        self.set_owner(cloud, email, ext);
    }

    /// `by_email.remove(email)`.
    pub(crate) fn remove_owner(&mut self, cloud: Cloud, email: &str) {
        self.take(cloud.by_email(), email);
    }

    /// What the index holds, for the log.
    pub(crate) fn log_size(&self) {
        let tables =
            [&self.site, &self.atlassian_by_id, &self.atlassian_by_email, &self.portal_by_id, &self.portal_by_email];
        let table_bytes: usize = tables.iter().map(|t| t.allocation_size()).sum();
        tracing::debug!(
            site = self.site.len(),
            atlassian = self.atlassian_by_id.len(),
            portal_only = self.portal_by_id.len(),
            records = self.records.len,
            string_bytes = self.arena.allocated(),
            record_bytes = self.records.allocated(),
            table_bytes,
            "accounts index"
        );
    }
}

#[derive(Clone, Copy)]
enum Table {
    Site,
    AtlassianById,
    AtlassianByEmail,
    PortalById,
    PortalByEmail,
}

impl Table {
    fn by(self) -> By {
        match self {
            Table::Site | Table::AtlassianById | Table::PortalById => By::Ext,
            Table::AtlassianByEmail | Table::PortalByEmail => By::Email,
        }
    }
}

impl Cloud {
    fn by_id(self) -> Table {
        match self {
            Cloud::Atlassian => Table::AtlassianById,
            Cloud::Portal => Table::PortalById,
        }
    }

    fn by_email(self) -> Table {
        match self {
            Cloud::Atlassian => Table::AtlassianByEmail,
            Cloud::Portal => Table::PortalByEmail,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestEntry {
    pub(crate) id: i64,
    /// Line of requests.csv that declared it in this import; 0 if none yet.
    pub(crate) line: u64,
    /// It was on the site before this import: its comments are compared
    /// with the stored ones.
    pub(crate) existed: bool,
}

/// A request under its key `PROJECT-NUMBER`, the project named by its
/// number among the projects seen.
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
struct Request {
    number: i64,
    id: i64,
    project: u32,
    line: u32,
    existed: bool,
}

/// Request key -> [`RequestEntry`]. A key is held as its project and
/// number, which name it exactly ([`parse_request_key`] accepts one
/// spelling of each pair); the rare key that does not parse (a bad row's
/// placeholder) is kept as it is, aside.
pub(crate) struct Requests<S = FxBuildHasher> {
    hasher: S,
    projects: FxHashMap<CompactString, u32>,
    records: Records<Request>,
    wide_lines: WideLines,
    table: HashTable<u32>,
    unparsed: FxHashMap<CompactString, RequestEntry>,
    /// Requests held as runs: (project, first number) -> the run. A file
    /// lists a project's requests by number, and new ones take ids (and
    /// lines) one after another, so ten million requests are a few runs,
    /// not ten million records.
    runs: BTreeMap<(u32, i64), Run>,
    /// The run the next request may extend (the last one begun or grown).
    tail: Option<(u32, i64)>,
}

/// Requests `first..first + count` of one project whose ids and lines go
/// up one by one from the first's (lines all 0: none declared here yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    count: i64,
    first_id: i64,
    first_line: u64,
    existed: bool,
}

impl Run {
    fn at(&self, offset: i64) -> RequestEntry {
        let line = if self.first_line == 0 { 0 } else { self.first_line + offset as u64 };
        RequestEntry { id: self.first_id + offset, line, existed: self.existed }
    }

    /// Whether `entry` is what request `offset` (the one after the last)
    /// would be in this run.
    fn continues_with(&self, offset: i64, entry: &RequestEntry) -> bool {
        offset == self.count
            && self.first_id.checked_add(offset) == Some(entry.id)
            && entry.existed == self.existed
            && {
                let line = if self.first_line == 0 { Some(0) } else { self.first_line.checked_add(offset as u64) };
                line == Some(entry.line)
            }
    }
}

impl Requests<FxBuildHasher> {
    pub(crate) fn new() -> Self {
        Self::with_hasher(FxBuildHasher)
    }
}

impl<S: BuildHasher> Requests<S> {
    pub(crate) fn with_hasher(hasher: S) -> Self {
        Requests {
            hasher,
            projects: FxHashMap::default(),
            records: Records::new(),
            wide_lines: WideLines::default(),
            table: HashTable::new(),
            unparsed: FxHashMap::default(),
            runs: BTreeMap::new(),
            tail: None,
        }
    }

    /// The run holding request `number` of `project`: its first number.
    fn run_of(&self, project: u32, number: i64) -> Option<(i64, Run)> {
        let (&(p, first), run) = self.runs.range(..=(project, number)).next_back()?;
        (p == project && number - first < run.count).then_some((first, *run))
    }

    fn hash(hasher: &S, project: u32, number: i64) -> u64 {
        hasher.hash_one((project, number))
    }

    fn find(&self, project: u32, number: i64) -> Option<u32> {
        let hash = Self::hash(&self.hasher, project, number);
        self.table
            .find(hash, |&r| {
                let record = self.records.get(r);
                record.project == project && record.number == number
            })
            .copied()
    }

    fn entry(&self, r: u32) -> RequestEntry {
        let record = self.records.get(r);
        RequestEntry { id: record.id, line: self.wide_lines.widen(r, record.line), existed: record.existed }
    }

    /// `requests.get(key)`.
    pub(crate) fn get(&self, key: &str) -> Option<RequestEntry> {
        match parse_request_key(key) {
            Ok((project, number)) => {
                let project = *self.projects.get(project)?;
                match self.find(project, number) {
                    Some(r) => Some(self.entry(r)),
                    None => self.run_of(project, number).map(|(first, run)| run.at(number - first)),
                }
            }
            Err(_) => self.unparsed.get(key).copied(),
        }
    }

    /// `requests.insert(key, entry)`.
    pub(crate) fn insert(&mut self, key: &str, entry: RequestEntry) {
        let Ok((project, number)) = parse_request_key(key) else {
            self.unparsed.insert(CompactString::from(key), entry);
            return;
        };
        let project = match self.projects.get(project) {
            Some(&p) => p,
            None => {
                let p = u32::try_from(self.projects.len()).unwrap_or_else(|_| std::process::abort());
                self.projects.insert(CompactString::from(project), p);
                p
            }
        };
        if self.find(project, number).is_none() {
            if let Some((first, run)) = self.run_of(project, number) {
                // A request of a run changes: the run is cut around it.
                self.runs.remove(&(project, first));
                let offset = number - first;
                if offset > 0 {
                    self.runs.insert((project, first), Run { count: offset, ..run });
                }
                if offset + 1 < run.count {
                    let next = run.at(offset + 1);
                    let rest = Run {
                        count: run.count - offset - 1,
                        first_id: next.id,
                        first_line: next.line,
                        existed: run.existed,
                    };
                    self.runs.insert((project, number + 1), rest);
                }
                self.tail = None;
            } else {
                // A new request: the tail run's next one, or a run of its
                // own that the requests after it may extend. A tail run of
                // one that none extended becomes a record: requests in no
                // order take a record each, not a run each.
                if let Some((p, first)) = self.tail
                    && let Some(run) = self.runs.get_mut(&(p, first))
                {
                    if p == project && number.checked_sub(first).is_some_and(|o| run.continues_with(o, &entry)) {
                        run.count += 1;
                        return;
                    }
                    if run.count == 1 {
                        let alone = run.at(0);
                        self.runs.remove(&(p, first));
                        self.put_record(p, first, alone);
                    }
                }
                let run = Run { count: 1, first_id: entry.id, first_line: entry.line, existed: entry.existed };
                self.runs.insert((project, number), run);
                self.tail = Some((project, number));
                return;
            }
        }
        self.put_record(project, number, entry);
    }

    /// Holds `entry` as the record of request `number` of `project` (made
    /// if there is none).
    fn put_record(&mut self, project: u32, number: i64, entry: RequestEntry) {
        let record = match self.find(project, number) {
            Some(r) => r,
            None => {
                let placed = Request { number, id: 0, project, line: 0, existed: false };
                let r = self.records.push(placed);
                let Requests { hasher, records, table, .. } = self;
                table.insert_unique(Self::hash(hasher, project, number), r, |&r| {
                    let record = records.get(r);
                    Self::hash(hasher, record.project, record.number)
                });
                r
            }
        };
        let line = self.wide_lines.narrow(record, entry.line);
        let r = self.records.get_mut(record);
        r.id = entry.id;
        r.line = line;
        r.existed = entry.existed;
    }

    /// `requests.entry(key).or_insert(entry)`.
    pub(crate) fn insert_if_absent(&mut self, key: &str, entry: RequestEntry) {
        if self.get(key).is_none() {
            self.insert(key, entry);
        }
    }

    /// What the index holds, for the log.
    pub(crate) fn log_size(&self) {
        tracing::debug!(
            runs = self.runs.len(),
            requests = self.table.len(),
            unparsed = self.unparsed.len(),
            record_bytes = self.records.allocated(),
            table_bytes = self.table.allocation_size(),
            "requests index"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key hashes alike: each lookup walks past the others.
    #[derive(Clone, Copy, Default)]
    struct Colliding;

    impl BuildHasher for Colliding {
        type Hasher = Constant;
        fn build_hasher(&self) -> Constant {
            Constant
        }
    }

    struct Constant;

    impl std::hash::Hasher for Constant {
        fn finish(&self) -> u64 {
            0x5555
        }
        fn write(&mut self, _: &[u8]) {}
    }

    fn entry(id: i64, kind: AccountType, line: u64) -> AccountEntry {
        AccountEntry { id, kind, line }
    }

    #[test]
    fn the_arena_returns_what_it_was_given() {
        let mut arena = Arena::default();
        let long = "x".repeat(OWN_CHUNK_FROM + 3);
        let mut handles = Vec::new();
        for i in 0..100_000 {
            let s = format!("zoë-{i}-mårten");
            handles.push((arena.push(&s), s));
        }
        let (empty, big) = (arena.push(""), arena.push(&long));
        let after = arena.push("after");
        assert_eq!(arena.get(empty), "");
        assert_eq!(arena.get(big), long);
        assert_eq!(arena.get(after), "after");
        for (h, s) in &handles {
            assert_eq!(arena.get(*h), s);
        }
        assert!(arena.chunks.len() > 2);
    }

    fn accounts_behave<S: BuildHasher>(mut a: Accounts<S>) {
        assert_eq!(a.site("x"), None);
        a.insert_site("x", entry(7, AccountType::Atlassian, 0));
        a.insert_site("ü", entry(8, AccountType::PortalOnly, 3));
        assert_eq!(a.site("x"), Some(entry(7, AccountType::Atlassian, 0)));
        assert_eq!(a.site("ü"), Some(entry(8, AccountType::PortalOnly, 3)));
        assert_eq!(a.site("u"), None);
        a.insert_site("x", entry(9, AccountType::PortalOnly, 5));
        assert_eq!(a.site("x"), Some(entry(9, AccountType::PortalOnly, 5)));
        a.insert_site_if_absent("x", entry(0, AccountType::Atlassian, 6));
        a.insert_site_if_absent("y", entry(0, AccountType::Atlassian, 6));
        assert_eq!(a.site("x"), Some(entry(9, AccountType::PortalOnly, 5)));
        assert_eq!(a.site("y"), Some(entry(0, AccountType::Atlassian, 6)));
        // Lines past 32 bits.
        a.insert_site("w", entry(1, AccountType::Atlassian, u64::from(u32::MAX) + 5));
        assert_eq!(a.site("w").map(|e| e.line), Some(u64::from(u32::MAX) + 5));
        a.insert_site("w", entry(1, AccountType::Atlassian, 2));
        assert_eq!(a.site("w").map(|e| e.line), Some(2));

        // Atlassian accounts: by id and by email keep their own membership.
        a.set_by_id(Cloud::Atlassian, "a1", 100, "one@x");
        a.set_owner(Cloud::Atlassian, "one@x", "a1");
        let (id, email) = a.by_id(Cloud::Atlassian, "a1").unwrap();
        assert_eq!((id, a.text(email)), (100, "one@x"));
        assert_eq!(a.owner(Cloud::Atlassian, "one@x"), Some("a1"));
        assert_eq!(a.by_id(Cloud::Portal, "a1"), None);
        // Re-pointing: the email map drops the old key, the id map moves.
        a.remove_owner(Cloud::Atlassian, "one@x");
        assert_eq!(a.owner(Cloud::Atlassian, "one@x"), None);
        a.set_by_id(Cloud::Atlassian, "a1", 100, "uno@x");
        let (id, email) = a.by_id(Cloud::Atlassian, "a1").unwrap();
        assert_eq!((id, a.text(email)), (100, "uno@x"));
        assert_eq!(a.owner(Cloud::Atlassian, "uno@x"), None);
        a.set_owner(Cloud::Atlassian, "uno@x", "a1");
        assert_eq!(a.owner(Cloud::Atlassian, "uno@x"), Some("a1"));
        // An owner that is not the account's own email still maps.
        a.set_owner(Cloud::Atlassian, "other@x", "a1");
        assert_eq!(a.owner(Cloud::Atlassian, "other@x"), Some("a1"));
        a.set_owner(Cloud::Atlassian, "other@x", "a2");
        assert_eq!(a.owner(Cloud::Atlassian, "other@x"), Some("a2"));
        assert_eq!(a.by_id(Cloud::Atlassian, "a2"), None);
        // The site's entry shares the record and keeps its values after the
        // account's record moves on.
        a.insert_site("a1", entry(100, AccountType::Atlassian, 4));
        a.set_by_id(Cloud::Atlassian, "a1", 100, "third@x");
        assert_eq!(a.site("a1"), Some(entry(100, AccountType::Atlassian, 4)));
        assert_eq!(a.owner(Cloud::Atlassian, "uno@x"), Some("a1"));
        a.remove_owner(Cloud::Atlassian, "missing@x");

        // Portal-only accounts.
        a.set_by_id(Cloud::Portal, "p1", 200, "öne@x");
        a.set_owner(Cloud::Portal, "öne@x", "p1");
        a.insert_site("p1", entry(200, AccountType::PortalOnly, 0));
        assert_eq!(a.owner(Cloud::Portal, "öne@x"), Some("p1"));
        assert_eq!(a.owner(Cloud::Atlassian, "öne@x"), None);
        a.remove_owner(Cloud::Portal, "öne@x");
        a.set_by_id(Cloud::Portal, "p1", 200, "öne@x");
        a.set_owner(Cloud::Portal, "öne@x", "p1");
        assert_eq!(a.owner(Cloud::Portal, "öne@x"), Some("p1"));
        a.insert_site("p1", entry(200, AccountType::PortalOnly, 12));
        assert_eq!(a.site("p1"), Some(entry(200, AccountType::PortalOnly, 12)));
        let (id, email) = a.by_id(Cloud::Portal, "p1").unwrap();
        assert_eq!((id, a.text(email)), (200, "öne@x"));

        // Many accounts, some keys prefixes of others.
        for i in 0..3_000i64 {
            let ext = format!("acc-{i}");
            a.set_by_id(Cloud::Portal, &ext, 1_000 + i, &format!("{i}@é.test"));
            a.set_owner(Cloud::Portal, &format!("{i}@é.test"), &ext);
            a.insert_site(&ext, entry(1_000 + i, AccountType::PortalOnly, i as u64 + 1));
        }
        for i in 0..3_000i64 {
            let ext = format!("acc-{i}");
            assert_eq!(a.site(&ext), Some(entry(1_000 + i, AccountType::PortalOnly, i as u64 + 1)));
            assert_eq!(a.owner(Cloud::Portal, &format!("{i}@é.test")), Some(ext.as_str()));
            if i % 2 == 0 {
                a.remove_owner(Cloud::Portal, &format!("{i}@é.test"));
            }
        }
        for i in 0..3_000i64 {
            let owner = a.owner(Cloud::Portal, &format!("{i}@é.test"));
            assert_eq!(owner.is_some(), i % 2 == 1);
        }
        assert_eq!(a.site("acc-3000"), None);
        assert_eq!(a.owner(Cloud::Portal, "3000@é.test"), None);
    }

    #[test]
    fn accounts_behave_like_maps() {
        accounts_behave(Accounts::new());
    }

    #[test]
    fn accounts_behave_like_maps_when_every_hash_collides() {
        accounts_behave(Accounts::with_hasher(Colliding));
    }

    fn requests_behave<S: BuildHasher>(mut r: Requests<S>) {
        let e = |id, line, existed| RequestEntry { id, line, existed };
        assert_eq!(r.get("SUP-1"), None);
        r.insert("SUP-1", e(1, 0, true));
        r.insert("ITS-1", e(2, 4, false));
        assert_eq!(r.get("SUP-1"), Some(e(1, 0, true)));
        assert_eq!(r.get("ITS-1"), Some(e(2, 4, false)));
        assert_eq!(r.get("SUP-01"), None);
        assert_eq!(r.get("DESK-1"), None);
        r.insert("SUP-1", e(1, 9, true));
        assert_eq!(r.get("SUP-1"), Some(e(1, 9, true)));
        r.insert_if_absent("SUP-1", e(0, 10, false));
        assert_eq!(r.get("SUP-1"), Some(e(1, 9, true)));
        // Keys that do not parse are kept as they are.
        for odd in ["sup-1", "SUP-01", "nonsense", "ÜBER-3", ""] {
            assert_eq!(r.get(odd), None);
            r.insert_if_absent(odd, e(0, 11, false));
            assert_eq!(r.get(odd), Some(e(0, 11, false)));
        }
        r.insert("SUP-9223372036854775807", e(i64::MAX, u64::MAX, false));
        assert_eq!(r.get("SUP-9223372036854775807"), Some(e(i64::MAX, u64::MAX, false)));
        for n in 2..3_000i64 {
            r.insert(&format!("SUP-{n}"), e(n, n as u64, false));
        }
        for n in 2..3_000i64 {
            assert_eq!(r.get(&format!("SUP-{n}")), Some(e(n, n as u64, false)));
            assert_eq!(r.get(&format!("ITS-{n}")), None);
        }
    }

    #[test]
    fn requests_behave_like_maps() {
        requests_behave(Requests::new());
    }

    #[test]
    fn requests_behave_like_maps_when_every_hash_collides() {
        requests_behave(Requests::with_hasher(Colliding));
    }

    /// Files list requests in runs (a project's numbers in order, ids and
    /// lines one after another), with gaps, repeats, updates of requests
    /// inside a run and keys in no order: the index answers as a map does.
    #[test]
    fn requests_in_runs_and_out_of_them_behave_like_a_map() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        for round in 0..40 {
            let mut index = Requests::new();
            let mut model: FxHashMap<String, RequestEntry> = FxHashMap::default();
            let (mut id, mut line) = (1_000i64, 2u64);
            let mut numbers = [0i64; 3];
            for _ in 0..2_000 {
                let project = rng.random_range(0..3usize);
                let name = ["SUP", "ITS", "DESK"][project];
                let number = match rng.random_range(0..10) {
                    0..=5 => numbers[project] + 1,
                    6 => numbers[project] + rng.random_range(2..5),
                    _ => rng.random_range(1..=numbers[project].max(1) + 3),
                };
                numbers[project] = numbers[project].max(number);
                let key = format!("{name}-{number}");
                let entry = RequestEntry {
                    id: if rng.random_range(0..8) == 0 { rng.random_range(1..50) } else { id },
                    line: if round % 2 == 0 { line } else { 0 },
                    existed: rng.random_range(0..6) == 0,
                };
                (id, line) = (id + 1, line + 1 + u64::from(rng.random_range(0..10) == 0));
                if rng.random_range(0..5) == 0 {
                    index.insert_if_absent(&key, entry);
                    model.entry(key.clone()).or_insert(entry);
                } else {
                    index.insert(&key, entry);
                    model.insert(key.clone(), entry);
                }
                assert_eq!(index.get(&key), model.get(&key).copied(), "{key}");
            }
            for project in ["SUP", "ITS", "DESK"] {
                for number in 0..=numbers.iter().max().copied().unwrap_or(0) + 2 {
                    let key = format!("{project}-{number}");
                    assert_eq!(index.get(&key), model.get(&key).copied(), "{key} in round {round}");
                }
            }
        }
    }

    #[test]
    fn consecutive_requests_take_one_run() {
        let mut index = Requests::new();
        for n in 1..=100_000i64 {
            index.insert(&format!("SUP-{n}"), RequestEntry { id: 7 + n, line: 1 + n as u64, existed: false });
        }
        assert_eq!((index.runs.len(), index.table.len()), (1, 0));
        assert_eq!(index.get("SUP-500"), Some(RequestEntry { id: 507, line: 501, existed: false }));
        index.insert("SUP-500", RequestEntry { id: 507, line: 9, existed: true });
        assert_eq!((index.runs.len(), index.table.len()), (2, 1));
        assert_eq!(index.get("SUP-500"), Some(RequestEntry { id: 507, line: 9, existed: true }));
        assert_eq!(index.get("SUP-501"), Some(RequestEntry { id: 508, line: 502, existed: false }));
        assert_eq!(index.get("SUP-100001"), None);
    }

    #[test]
    fn records_are_small() {
        assert_eq!(size_of::<Account>(), 32);
        assert_eq!(size_of::<Request>(), 28);
    }
}
