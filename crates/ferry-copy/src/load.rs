//! Reading what a plan is decided from. Every function here reads; none
//! decides: the rules live in `ferry_core::planner`, which turns the
//! [`PlanFacts`] read here into the [`CopyPlan`].

use std::collections::{BTreeMap, HashSet};

use ferry_core::model::AccountType;
use ferry_core::plan::{DestinationAccount, DestinationIndex, SourceCustomer};
use ferry_core::planner::{
    self, Conflict, CopyOptions, CopyPlan, DestinationFacts, Organizations, PlanFacts, ProjectFacts, Scope,
    ScopedCustomer, SourceProject,
};
use ferry_store::sites::{self, Site};
use ferry_store::{Store, StoreError, Tx, Val};
use rustc_hash::FxHashMap;

use crate::CopyError;

fn id_list(ids: impl IntoIterator<Item = i64>) -> String {
    let list: Vec<String> = ids.into_iter().map(|id| id.to_string()).collect();
    if list.is_empty() { "NULL".to_owned() } else { list.join(",") }
}

/// The source accounts a plan considers (SPEC §2): every customer related
/// to the chosen projects, and with `--customers all` every account of the
/// source site. Each relation is read on its own and merged here; one SQL
/// `UNION` of them all costs SQLite several times more.
fn scope_ids(tx: &mut Tx<'_>, scope: Scope, source_site: i64, frame: &Frame) -> Result<IdSet, CopyError> {
    let (projects, organizations, after) = (&frame.project_ids, &frame.organizations_sql, frame.copied_through);
    // The people of requests: only of requests above the watermark (those
    // below it were copied, with their people, by earlier runs).
    let mut parts = vec![
        format!("SELECT account_id FROM project_customers WHERE project_id IN ({projects})"),
        format!(
            "SELECT gm.account_id FROM customer_roles cr JOIN group_members gm ON gm.group_id = cr.group_id
             WHERE cr.project_id IN ({projects})"
        ),
        // `+project_id`: scanning requests in table order beats SQLite's
        // walk of the (project, number) index with a row lookup per request.
        format!("SELECT reporter_id FROM requests WHERE id > {after} AND +project_id IN ({projects})"),
        format!(
            "SELECT rp.account_id FROM request_participants rp JOIN requests r ON r.id = rp.request_id
             WHERE rp.request_id > {after} AND +r.project_id IN ({projects})"
        ),
        format!(
            "SELECT c.author_id FROM comments c JOIN requests r ON r.id = c.request_id
             WHERE c.request_id > {after} AND +r.project_id IN ({projects})"
        ),
        format!("SELECT account_id FROM organization_members WHERE organization_id IN ({organizations})"),
    ];
    if scope == Scope::All {
        parts.push(format!("SELECT id FROM accounts WHERE site_id = {source_site}"));
        parts.push(format!("SELECT account_id FROM site_users WHERE site_id = {source_site}"));
    }
    let mut ids = IdSet::default();
    for sql in parts {
        tx.query_each(&sql, &[], |r| {
            ids.insert(r.int(0)?);
            Ok(())
        })?;
    }
    Ok(ids)
}

/// A set of account ids as a bitmap: ferry gives ids densely (largest + 1),
/// so a million accounts take 125 KB and each test is one bit.
#[derive(Default)]
struct IdSet {
    bits: Vec<u64>,
    len: usize,
    low: Option<i64>,
    high: Option<i64>,
}

impl IdSet {
    fn insert(&mut self, id: i64) {
        let Ok(at) = usize::try_from(id) else { return };
        let (word, bit) = (at / 64, 1u64 << (at % 64));
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & bit == 0 {
            self.bits[word] |= bit;
            self.len += 1;
            self.low = Some(self.low.map_or(id, |l| l.min(id)));
            self.high = Some(self.high.map_or(id, |h| h.max(id)));
        }
    }

    fn contains(&self, id: i64) -> bool {
        usize::try_from(id).is_ok_and(|at| self.bits.get(at / 64).is_some_and(|w| w & (1u64 << (at % 64)) != 0))
    }

    /// How many ids both sets hold.
    fn common(&self, other: &IdSet) -> u64 {
        self.bits.iter().zip(&other.bits).map(|(a, b)| u64::from((a & b).count_ones())).sum()
    }
}

/// The source accounts earlier runs between the two sites linked: they
/// are copied, and a re-run leaves them be (SPEC §2, re-run).
fn linked_accounts(tx: &mut Tx<'_>, source: i64, destination: i64) -> Result<IdSet, CopyError> {
    let mut ids = IdSet::default();
    tx.query_each(
        "SELECT source_id FROM copy_links WHERE source_site_id = $1 AND destination_site_id = $2 AND kind = 'account'",
        &[Val::I(source), Val::I(destination)],
        |r| {
            ids.insert(r.int(0)?);
            Ok(())
        },
    )?;
    Ok(ids)
}

/// The links of earlier runs between two sites, of one kind.
fn links(tx: &mut Tx<'_>, source: i64, destination: i64, kind: &str) -> Result<FxHashMap<i64, i64>, CopyError> {
    let mut map = FxHashMap::default();
    tx.query_each(
        "SELECT source_id, destination_id FROM copy_links
         WHERE source_site_id = $1 AND destination_site_id = $2 AND kind = $3",
        &[Val::I(source), Val::I(destination), Val::T(kind)],
        |r| {
            map.insert(r.int(0)?, r.int(1)?);
            Ok(())
        },
    )?;
    Ok(map)
}

/// Which of the destination's accounts a plan reads.
#[derive(Clone, Copy)]
enum AccountsRead<'a> {
    /// None: no customer is to be decided.
    Nothing,
    Every,
    /// Only those these customers can meet (by email) and those holding
    /// the ids their new accounts may take: a re-run's few new customers
    /// need not the destination's million.
    For(&'a [ScopedCustomer], &'a str),
}

/// Reads the destination: its accounts by email, its site users, what
/// earlier runs linked, merged accounts, organizations and group names.
fn load_destination(
    tx: &mut Tx<'_>,
    destination_id: i64,
    accounts: AccountsRead<'_>,
    organizations: &str,
) -> Result<DestinationFacts, CopyError> {
    let mut index = DestinationIndex::default();
    let mut ext_ids: FxHashMap<i64, String> = FxHashMap::default();
    let mut merged_into: FxHashMap<i64, i64> = FxHashMap::default();
    let mut hidden_emails = None;
    match accounts {
        AccountsRead::Nothing => {}
        AccountsRead::Every => {
            read_destination_accounts(tx, destination_id, &mut index, &mut ext_ids, &mut merged_into)?;
        }
        AccountsRead::For(customers, source_slug) => {
            let mut facts = DestinationFacts::default();
            read_destination_accounts_for(tx, destination_id, customers, source_slug, &mut facts)?;
            (index, ext_ids, merged_into) = (facts.index, facts.ext_ids, facts.merged_into);
            hidden_emails = Some(count_hidden_emails(tx, destination_id)?);
        }
    }
    let organizations = organizations_with_members(
        tx,
        &format!("o.site_id = $1 AND {organizations}"),
        "TRUE",
        &[Val::I(destination_id)],
    )?;
    let group_keys: HashSet<String> = tx
        .query_all("SELECT name_key FROM groups WHERE site_id = $1", &[Val::I(destination_id)], |r| {
            Ok(r.text(0)?.to_owned())
        })?
        .into_iter()
        .collect();
    Ok(DestinationFacts { index, ext_ids, merged_into, organizations, group_keys, hidden_emails })
}

/// The destination's accounts by email (portal-only ones and site users),
/// their ids as snapshots name them, and the merged ones.
fn read_destination_accounts(
    tx: &mut Tx<'_>,
    destination_id: i64,
    index: &mut DestinationIndex,
    ext_ids: &mut FxHashMap<i64, String>,
    merged_into: &mut FxHashMap<i64, i64>,
) -> Result<(), CopyError> {
    tx.query_each(
        "SELECT id, ext_id, email_key, active, email_verified, merged_into FROM accounts WHERE site_id = $1",
        &[Val::I(destination_id)],
        |r| {
            let account = DestinationAccount { account_id: r.int(0)?, active: r.bool(3)?, email_verified: r.bool(4)? };
            ext_ids.insert(account.account_id, r.text(1)?.to_owned());
            match r.opt_int(5)? {
                None => {
                    index.portal_by_email.insert(r.text(2)?.to_owned(), account);
                }
                Some(into) => {
                    merged_into.insert(account.account_id, into);
                }
            }
            Ok(())
        },
    )?;
    tx.query_each(
        "SELECT a.id, a.ext_id, a.email_key, a.active, a.email_verified
         FROM site_users su JOIN accounts a ON a.id = su.account_id WHERE su.site_id = $1",
        &[Val::I(destination_id)],
        |r| {
            let account = DestinationAccount { account_id: r.int(0)?, active: r.bool(3)?, email_verified: r.bool(4)? };
            ext_ids.insert(account.account_id, r.text(1)?.to_owned());
            index.atlassian_by_email.insert(r.text(2)?.to_owned(), account);
            Ok(())
        },
    )?;
    Ok(())
}

/// How many of the destination's accounts (unmerged portal-only ones and
/// site users) hide their email (SPEC §8), counted by the database.
fn count_hidden_emails(tx: &mut Tx<'_>, destination_id: i64) -> Result<u64, StoreError> {
    // SQLite compares text byte by byte, so the prefix is a range of its
    // email indexes; PostgreSQL's collation may not, so it matches it.
    let (hidden, join) = match tx.backend() {
        ferry_store::Backend::Sqlite => ("a.email_key >= 'hidden ' AND a.email_key < 'hidden!'", "CROSS JOIN"),
        ferry_store::Backend::Postgres => ("a.email_key LIKE 'hidden %'", "JOIN"),
    };
    let count = tx
        .query_opt(
            &format!(
                "SELECT (SELECT COUNT(*) FROM accounts a WHERE a.site_id = $1 AND {hidden} AND a.merged_into IS NULL)
                      + (SELECT COUNT(*) FROM accounts a {join} site_users su ON su.site_id = $1 AND su.account_id = a.id
                         WHERE a.site_id IS NULL AND {hidden})"
            ),
            &[Val::I(destination_id)],
            |r| r.int(0),
        )?
        .unwrap_or(0);
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The ids a new portal-only account of `ext_id` may take on the
/// destination, in the order [`planner::new_ext_id`] tries them (the first
/// eight; a plan that needs more is checked and read again whole).
fn ext_id_candidates(ext_id: &str, source_slug: &str) -> impl Iterator<Item = String> {
    let first = [ext_id.to_owned(), format!("{ext_id}-{source_slug}")];
    first.into_iter().chain((3..=8).map(move |n| format!("{ext_id}-{source_slug}-{n}")))
}

/// [`read_destination_accounts`] for `customers` only: the destination's
/// accounts with their emails, and those holding ids their new accounts
/// may take, each looked up by key (bound, never spliced into the SQL).
/// Merged accounts are left out: only links follow them, and a re-run's
/// customers have none.
fn read_destination_accounts_for(
    tx: &mut Tx<'_>,
    destination_id: i64,
    customers: &[ScopedCustomer],
    source_slug: &str,
    facts: &mut DestinationFacts,
) -> Result<(), StoreError> {
    let emails: std::collections::BTreeSet<&str> = customers.iter().map(|c| c.customer.email_key.as_str()).collect();
    let emails: Vec<String> = emails.into_iter().map(str::to_owned).collect();
    read_destination_emails(tx, destination_id, &emails, facts)?;
    let candidates: std::collections::BTreeSet<String> =
        customers.iter().flat_map(|c| ext_id_candidates(&c.ext_id, source_slug)).collect();
    let candidates: Vec<String> = candidates.into_iter().collect();
    facts.ext_ids.extend(destination_ids_held(tx, destination_id, &candidates)?);
    Ok(())
}

/// `column IN ($2, $3, …)` for a chunk of keys, and its parameters after
/// the destination site (`$1`).
fn keyed(column: &str, chunk: &[String]) -> String {
    let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
    format!("{column} IN ({})", list.join(", "))
}

fn keyed_params(destination_id: i64, chunk: &[String]) -> Vec<Val<'_>> {
    std::iter::once(Val::I(destination_id)).chain(chunk.iter().map(|k| Val::T(k))).collect()
}

/// The SQL reading the destination's unmerged portal-only accounts and its
/// site users (`$1` the site) where `condition` holds of `a`.
fn destination_accounts_sql(condition: &str) -> [String; 2] {
    [
        format!(
            "SELECT a.id, a.ext_id, a.email_key, a.active, a.email_verified FROM accounts a
             WHERE a.site_id = $1 AND a.merged_into IS NULL AND {condition}"
        ),
        format!(
            "SELECT a.id, a.ext_id, a.email_key, a.active, a.email_verified
             FROM accounts a JOIN site_users su ON su.site_id = $1 AND su.account_id = a.id
             WHERE a.site_id IS NULL AND {condition}"
        ),
    ]
}

/// Adds a row of [`destination_accounts_sql`] (`atlassian`: its second
/// query) to `facts`.
fn add_destination_account(
    facts: &mut DestinationFacts,
    r: &ferry_store::Row<'_>,
    atlassian: bool,
) -> Result<(), StoreError> {
    let account = DestinationAccount { account_id: r.int(0)?, active: r.bool(3)?, email_verified: r.bool(4)? };
    facts.ext_ids.insert(account.account_id, r.text(1)?.to_owned());
    let by_email = if atlassian { &mut facts.index.atlassian_by_email } else { &mut facts.index.portal_by_email };
    by_email.insert(r.text(2)?.to_owned(), account);
    Ok(())
}

/// The destination's accounts (unmerged portal-only ones and site users)
/// with these emails, each looked up by key.
fn read_destination_emails(
    tx: &mut Tx<'_>,
    destination_id: i64,
    emails: &[String],
    facts: &mut DestinationFacts,
) -> Result<(), StoreError> {
    for chunk in emails.chunks(500) {
        read_destination_accounts_where(tx, &keyed("a.email_key", chunk), &keyed_params(destination_id, chunk), facts)?;
    }
    Ok(())
}

/// The destination's accounts (`$1`) where `condition` holds of `a`, into
/// `facts`: its unmerged portal-only accounts, then its site users.
fn read_destination_accounts_where(
    tx: &mut Tx<'_>,
    condition: &str,
    params: &[Val<'_>],
    facts: &mut DestinationFacts,
) -> Result<(), StoreError> {
    let [portal, atlassian] = destination_accounts_sql(condition);
    for (sql, is_atlassian) in [(portal, false), (atlassian, true)] {
        tx.query_each(&sql, params, |r| add_destination_account(facts, r, is_atlassian))?;
    }
    Ok(())
}

/// The destination's accounts (unmerged portal-only ones and site users)
/// whose emails lie from `first` to `last`: on SQLite one walk of each
/// email index, which compares as Rust does; on PostgreSQL, whose
/// collation may order emails otherwise, `emails` looked up by key.
fn read_destination_email_range(
    tx: &mut Tx<'_>,
    destination_id: i64,
    emails: &[String],
    facts: &mut DestinationFacts,
) -> Result<(), StoreError> {
    let (Some(first), Some(last)) = (emails.first(), emails.last()) else { return Ok(()) };
    if tx.backend() == ferry_store::Backend::Postgres {
        return read_destination_emails(tx, destination_id, emails, facts);
    }
    let params = [Val::I(destination_id), Val::T(first), Val::T(last)];
    // Each type from its email index. The site users are found from the
    // Atlassian accounts in the range (CROSS JOIN keeps SQLite to that
    // order): from the site's side, every part would walk all its site
    // users, and a ten-million-customer plan spent two of its four seconds
    // a part there.
    let [portal, _] = destination_accounts_sql("a.email_key >= $2 AND a.email_key <= $3");
    let atlassian = "SELECT a.id, a.ext_id, a.email_key, a.active, a.email_verified
         FROM accounts a CROSS JOIN site_users su
         WHERE a.site_id IS NULL AND a.email_key >= $2 AND a.email_key <= $3
           AND su.site_id = $1 AND su.account_id = a.id"
        .to_owned();
    for (sql, is_atlassian) in [(portal, false), (atlassian, true)] {
        tx.query_each(&sql, &params, |r| add_destination_account(facts, r, is_atlassian))?;
    }
    Ok(())
}

/// Whether none of `plan`'s new portal-only accounts takes an id a
/// destination account holds (looked up by key): what a plan read from
/// [`AccountsRead::For`] must be before it is used.
fn new_ids_free(tx: &mut Tx<'_>, plan: &CopyPlan) -> Result<bool, StoreError> {
    let ids: Vec<String> = plan.customers.iter().filter_map(|c| c.new_ext_id.clone()).collect();
    Ok(destination_ids_held(tx, plan.destination.id, &ids)?.is_empty())
}

/// The organizations `condition` (on `o`) selects, by id: name and, for
/// those `members_when` (on `o`) holds for, members' normalized emails.
/// Members are only ever compared between organizations of one name on
/// both sites: a site's millions of members need not be read for the
/// others.
fn organizations_with_members(
    tx: &mut Tx<'_>,
    condition: &str,
    members_when: &str,
    params: &[Val<'_>],
) -> Result<Organizations, CopyError> {
    let mut organizations: Organizations = BTreeMap::new();
    tx.query_each(
        &format!(
            "SELECT o.id, o.name, a.email_key FROM organizations o
             LEFT JOIN organization_members m ON m.organization_id = o.id AND ({members_when})
             LEFT JOIN accounts a ON a.id = m.account_id
             WHERE {condition}"
        ),
        params,
        |r| {
            let entry = match organizations.entry(r.int(0)?) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => {
                    entry.insert((r.text(1)?.to_owned(), HashSet::new()))
                }
            };
            if let Some(key) = r.opt_text(2)? {
                entry.1.insert(key.to_owned());
            }
            Ok(())
        },
    )?;
    Ok(organizations)
}

/// Organizations linked to the projects or shared by their requests above
/// the watermark (an organization shared by a request copied before was
/// considered by the run that copied it). Above a watermark the requests
/// are few and found through (project, id); a first copy scans them.
fn organizations_sql(project_ids: &str, copied_through: i64) -> String {
    let requests = if copied_through > 0 {
        format!("id > {copied_through} AND project_id IN ({project_ids}) AND +organization_id IS NOT NULL")
    } else {
        format!("+project_id IN ({project_ids}) AND organization_id IS NOT NULL")
    };
    format!(
        "SELECT organization_id FROM organization_projects WHERE project_id IN ({project_ids})
         UNION SELECT organization_id FROM requests WHERE {requests}"
    )
}

/// The two sites, the source's projects, the destination's project keys
/// and the project links of earlier runs.
fn load_projects(tx: &mut Tx<'_>, options: &CopyOptions) -> Result<ProjectFacts, CopyError> {
    let source: Site = sites::site(tx, &options.from)?;
    let destination: Site = sites::site(tx, &options.to)?;
    let source_projects = tx.query_all(
        "SELECT id, key, name FROM projects WHERE site_id = $1 ORDER BY key",
        &[Val::I(source.id)],
        |r| Ok(SourceProject { id: r.int(0)?, key: r.text(1)?.to_owned(), name: r.text(2)?.to_owned() }),
    )?;
    let destination_keys = tx
        .query_all("SELECT key FROM projects WHERE site_id = $1", &[Val::I(destination.id)], |r| {
            Ok(r.text(0)?.to_owned())
        })?
        .into_iter()
        .collect();
    let links = links(tx, source.id, destination.id, "project")?;
    Ok(ProjectFacts { source, destination, source_projects, destination_keys, links })
}

/// The projects' facts and, from the planner's choice of projects, the SQL
/// lists the rest of the load reads by: the projects' ids and the
/// organizations they involve.
struct Frame {
    projects: ProjectFacts,
    project_ids: String,
    organizations_sql: String,
    /// Every source request of the chosen projects up to this id was
    /// copied by earlier runs between the two sites ([`Watermarks`]).
    copied_through: i64,
    /// The membership clock as the load began.
    membership_mark: i64,
    /// Every membership of the chosen projects stamped up to this was
    /// compared by earlier runs between the two sites ([`Watermarks`]);
    /// 0: none or not all were.
    members_through: i64,
}

fn load_frame(tx: &mut Tx<'_>, options: &CopyOptions) -> Result<Frame, CopyError> {
    // Read before any membership: what is stamped up to it is visible to
    // every read after it.
    let membership_mark = tx.clock()?;
    let projects = load_projects(tx, options)?;
    let (selected, _) = planner::select_projects(&projects, options)?;
    let project_ids = id_list(selected.iter().map(|p| p.source_id));
    let selected: Vec<i64> = selected.iter().map(|p| p.source_id).collect();
    let marks = watermarks(tx, projects.source.id, projects.destination.id, &selected)?;
    let copied_through = marks.requests;
    let organizations_sql = organizations_sql(&project_ids, copied_through);
    Ok(Frame {
        projects,
        project_ids,
        organizations_sql,
        copied_through,
        membership_mark,
        members_through: marks.memberships,
    })
}

/// Where earlier runs between two sites left `projects` (SPEC §2, re-run).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Watermarks {
    /// A run that finished copied every request of its projects up to its
    /// `source_request_limit` (ids grow as requests arrive, and a rollback
    /// goes newest first, so a finished run's limit stays true): every
    /// request of the projects up to the lowest of their highest limits is
    /// copied. 0 when a project was never copied in full.
    pub(crate) requests: i64,
    /// Likewise for memberships: a finished run compared every membership
    /// of its projects and organizations stamped up to its
    /// `membership_mark` (the clock when it was planned). 0 when a project
    /// was never copied in full, or only before memberships were stamped:
    /// then every membership is compared.
    pub(crate) memberships: i64,
}

pub(crate) fn watermarks(
    tx: &mut Tx<'_>,
    source: i64,
    destination: i64,
    projects: &[i64],
) -> Result<Watermarks, StoreError> {
    if projects.is_empty() {
        return Ok(Watermarks::default());
    }
    let mut limits: FxHashMap<i64, (i64, i64)> = FxHashMap::default();
    tx.query_each(
        &format!(
            "SELECT cp.source_project_id, MAX(r.source_request_limit), MAX(r.membership_mark) FROM copy_runs r
             JOIN copy_projects cp ON cp.run_id = r.id
             WHERE r.source_site_id = $1 AND r.destination_site_id = $2 AND r.state = '{done}'
             GROUP BY cp.source_project_id",
            done = ferry_core::run::RunState::Done.as_str()
        ),
        &[Val::I(source), Val::I(destination)],
        |r| {
            limits.insert(r.int(0)?, (r.int(1)?, r.int(2)?));
            Ok(())
        },
    )?;
    let least =
        |pick: fn(&(i64, i64)) -> i64| projects.iter().map(|p| limits.get(p).map_or(0, pick)).min().unwrap_or(0);
    Ok(Watermarks { requests: least(|l| l.0), memberships: least(|l| l.1) })
}

/// What a plan reads beside the source's customers.
struct SideReads {
    destination: DestinationFacts,
    source_organizations: Organizations,
    organization_links: FxHashMap<i64, i64>,
    /// Source requests not copied before, and the highest of their ids.
    requests: (u64, i64),
}

/// For a plan that compares every organization of the frame: which source
/// organizations' members to read (those whose name the destination also
/// has), and which destination organizations to read (those named as one
/// of the source site's: the frame's are among them, and naming them would
/// scan the requests again), both as conditions on `o`.
fn same_named_organizations(frame: &Frame) -> (String, String) {
    let name_on =
        |site: i64| format!("o.name IN (SELECT other.name FROM organizations other WHERE other.site_id = {site})");
    (name_on(frame.projects.destination.id), name_on(frame.projects.source.id))
}

/// What a plan reads beside the source's customers; the destination's
/// accounts only with `accounts` (a re-run with no new customer needs none).
fn side_reads(tx: &mut Tx<'_>, frame: &Frame, accounts: AccountsRead<'_>) -> Result<SideReads, CopyError> {
    let (source_id, destination_id) = (frame.projects.source.id, frame.projects.destination.id);
    let (project_ids, organizations_sql, copied_through) =
        (&frame.project_ids, &frame.organizations_sql, frame.copied_through);
    // A re-run reads members only of the organizations no earlier run
    // created (the others are linked, whatever their members), and of the
    // destination's organizations only those named as one of them.
    let (source_organizations, destination_organizations) = if frame.members_through > 0 {
        let unlinked = unlinked_organizations_sql(frame);
        let mut source = organizations_with_members(tx, &format!("o.id IN ({unlinked})"), "TRUE", &[])?;
        tx.query_each(
            &format!("SELECT o.id, o.name FROM organizations o WHERE o.id IN ({organizations_sql})"),
            &[],
            |r| {
                source.entry(r.int(0)?).or_insert_with(|| (String::new(), HashSet::new())).0 = r.text(1)?.to_owned();
                Ok(())
            },
        )?;
        let named = format!("o.name IN (SELECT s.name FROM organizations s WHERE s.id IN ({unlinked}))");
        (source, named)
    } else {
        let (source, named) = same_named_organizations(frame);
        (organizations_with_members(tx, &format!("o.id IN ({organizations_sql})"), &source, &[])?, named)
    };
    let destination = load_destination(tx, destination_id, accounts, &destination_organizations)?;
    let organization_links = links(tx, source_id, destination_id, "organization")?;
    let requests = tx
        .query_opt(
            &format!(
                "SELECT COUNT(*), COALESCE(MAX(r.id), 0) FROM requests r
                 WHERE r.id > {copied_through} AND +r.project_id IN ({project_ids}) AND NOT EXISTS (
                     SELECT 1 FROM copy_links l WHERE l.source_site_id = $1 AND l.destination_site_id = $2
                     AND l.kind = 'request' AND l.source_id = r.id)"
            ),
            &[Val::I(source_id), Val::I(destination_id)],
            |r| Ok((r.int(0)? as u64, r.int(1)?)),
        )?
        .unwrap_or((0, 0));
    Ok(SideReads { destination, source_organizations, organization_links, requests })
}

/// The scope's accounts that no earlier run between the two sites copied
/// (the accounts in the id range of the scope, kept when in it and not
/// linked: one range scan instead of a lookup per id), and how many of the
/// scope were copied before.
fn load_customers(
    tx: &mut Tx<'_>,
    options: &CopyOptions,
    frame: &Frame,
) -> Result<(Vec<ScopedCustomer>, u64), CopyError> {
    let (in_scope, already_copied) = scope_not_linked(tx, options, frame)?;
    if in_scope.len == 0 {
        return Ok((Vec::new(), already_copied));
    }
    let (low, high) = (in_scope.low.unwrap_or(0), in_scope.high.unwrap_or(-1));
    let mut customers = Vec::with_capacity(in_scope.len);
    tx.query_each(
        "SELECT id, kind, ext_id, email, email_key, active, email_verified FROM accounts WHERE id >= $1 AND id <= $2",
        &[Val::I(low), Val::I(high)],
        |r| {
            if in_scope.contains(r.int(0)?) {
                customers.push(scoped_customer(r)?);
            }
            Ok(())
        },
    )?;
    Ok((customers, already_copied))
}

/// The scope's accounts that no earlier run between the two sites copied,
/// and how many of the scope were copied before.
fn scope_not_linked(tx: &mut Tx<'_>, options: &CopyOptions, frame: &Frame) -> Result<(IdSet, u64), CopyError> {
    let (source, destination) = (&frame.projects.source, &frame.projects.destination);
    let mut in_scope = scope_ids(tx, options.customers, source.id, frame)?;
    let linked = linked_accounts(tx, source.id, destination.id)?;
    let already_copied = in_scope.common(&linked);
    if already_copied > 0 {
        for (word, gone) in in_scope.bits.iter_mut().zip(&linked.bits) {
            *word &= !gone;
        }
        in_scope.len -= already_copied as usize;
    }
    Ok((in_scope, already_copied))
}

/// The organizations of the frame that no earlier run between the two
/// sites created (no link): a re-run reads them whole.
fn unlinked_organizations_sql(frame: &Frame) -> String {
    let (source, destination) = (frame.projects.source.id, frame.projects.destination.id);
    format!(
        "SELECT x.organization_id FROM ({organizations}) x WHERE NOT EXISTS (SELECT 1 FROM copy_links l
         WHERE l.source_site_id = {source} AND l.destination_site_id = {destination}
         AND l.kind = 'organization' AND l.source_id = x.organization_id)",
        organizations = frame.organizations_sql
    )
}

/// A re-run's customers (earlier runs compared every membership of the
/// projects up to `members_through`): the accounts of memberships that
/// arrived since, of organizations no earlier run created, and the people
/// of requests above the watermark, less those earlier runs linked, each
/// looked up by key. Cost follows what arrived, not the site. The scope's
/// other customers were linked by the earlier runs; how many customers
/// earlier runs between the two sites copied is counted from their links.
fn delta_customers(tx: &mut Tx<'_>, frame: &Frame) -> Result<(Vec<ScopedCustomer>, u64), CopyError> {
    let (source, destination) = (frame.projects.source.id, frame.projects.destination.id);
    let (projects, organizations, after, mark) =
        (&frame.project_ids, &frame.organizations_sql, frame.copied_through, frame.members_through);
    // SQLite: from the organizations to their members (CROSS JOIN keeps
    // that order), not through every membership.
    let join = match tx.backend() {
        ferry_store::Backend::Sqlite => "CROSS JOIN",
        ferry_store::Backend::Postgres => "JOIN",
    };
    let parts = [
        format!("SELECT account_id FROM project_customers WHERE project_id IN ({projects}) AND seq > {mark}"),
        format!(
            "SELECT gm.account_id FROM customer_roles cr JOIN group_members gm ON gm.group_id = cr.group_id
             WHERE cr.project_id IN ({projects}) AND gm.seq > {mark}"
        ),
        format!(
            "SELECT gm.account_id FROM customer_roles cr JOIN group_members gm ON gm.group_id = cr.group_id
             WHERE cr.project_id IN ({projects}) AND cr.seq > {mark}"
        ),
        format!("SELECT reporter_id FROM requests WHERE id > {after} AND project_id IN ({projects})"),
        format!(
            "SELECT rp.account_id FROM request_participants rp JOIN requests r ON r.id = rp.request_id
             WHERE r.id > {after} AND r.project_id IN ({projects})"
        ),
        format!(
            "SELECT c.author_id FROM comments c JOIN requests r ON r.id = c.request_id
             WHERE r.id > {after} AND r.project_id IN ({projects})"
        ),
        format!(
            "SELECT m.account_id FROM ({organizations}) x
             {join} organization_members m ON m.organization_id = x.organization_id AND m.seq > {mark}"
        ),
        // The organizations are told apart first, then their members read.
        format!(
            "SELECT m.account_id FROM ({unlinked}) x
             {join} organization_members m ON m.organization_id = x.organization_id",
            unlinked = unlinked_organizations_sql(frame)
        ),
    ];
    let mut arrived: std::collections::BTreeSet<i64> = std::collections::BTreeSet::new();
    for sql in parts {
        tx.query_each(&sql, &[], |r| {
            arrived.insert(r.int(0)?);
            Ok(())
        })?;
    }
    let arrived: Vec<i64> = arrived.into_iter().collect();
    let mut linked: HashSet<i64> = HashSet::new();
    for chunk in arrived.chunks(500) {
        tx.query_each(
            &format!(
                "SELECT source_id FROM copy_links WHERE source_site_id = $1 AND destination_site_id = $2
                 AND kind = 'account' AND source_id IN ({})",
                id_list(chunk.iter().copied())
            ),
            &[Val::I(source), Val::I(destination)],
            |r| {
                linked.insert(r.int(0)?);
                Ok(())
            },
        )?;
    }
    let new: Vec<i64> = arrived.into_iter().filter(|id| !linked.contains(id)).collect();
    let mut customers = Vec::with_capacity(new.len());
    for chunk in new.chunks(500) {
        tx.query_each(
            &format!(
                "SELECT id, kind, ext_id, email, email_key, active, email_verified FROM accounts WHERE id IN ({})",
                id_list(chunk.iter().copied())
            ),
            &[],
            |r| {
                customers.push(scoped_customer(r)?);
                Ok(())
            },
        )?;
    }
    let already_copied = tx
        .query_opt(
            "SELECT COUNT(*) FROM copy_links WHERE source_site_id = $1 AND destination_site_id = $2 AND kind = 'account'",
            &[Val::I(source), Val::I(destination)],
            |r| r.int(0),
        )?
        .unwrap_or(0);
    Ok((customers, u64::try_from(already_copied).unwrap_or(0)))
}

/// A source account as the planner reads it, from `id, kind, ext_id,
/// email, email_key, active, email_verified`.
fn scoped_customer(r: &ferry_store::Row<'_>) -> Result<ScopedCustomer, StoreError> {
    Ok(ScopedCustomer {
        customer: SourceCustomer {
            account_id: r.int(0)?,
            kind: r.parsed(1, "account type", AccountType::from_jira_value)?,
            email: r.text(3)?.to_owned(),
            email_key: r.text(4)?.to_owned(),
            active: r.bool(5)?,
            email_verified: r.bool(6)?,
        },
        ext_id: r.text(2)?.to_owned(),
    })
}

/// Reads every fact a plan is decided from. With `sibling` (another
/// connection to the same SQLite file) the destination is read on another
/// core while `tx` reads the source; the caller's transaction must then hold
/// the write lock and not have written yet, so that both connections see
/// the same database.
pub(crate) fn load(
    tx: &mut Tx<'_>,
    sibling: Option<&mut Store>,
    options: &CopyOptions,
    keyed: bool,
) -> Result<PlanFacts, CopyError> {
    let frame = load_frame(tx, options)?;
    // A re-run (earlier runs copied the projects) reads its few new
    // customers first, and the destination's accounts only for them; a
    // first copy reads the destination on a second core meanwhile.
    let (customers, already_copied, side) = if frame.copied_through > 0 || frame.members_through > 0 {
        let (customers, already_copied) = if frame.members_through > 0 && options.customers == Scope::Related {
            delta_customers(tx, &frame)?
        } else {
            load_customers(tx, options, &frame)?
        };
        let accounts = match (customers.is_empty(), keyed && frame.members_through > 0) {
            (true, _) => AccountsRead::Nothing,
            (false, true) => AccountsRead::For(&customers, &frame.projects.source.slug),
            (false, false) => AccountsRead::Every,
        };
        let side = side_reads(tx, &frame, accounts)?;
        (customers, already_copied, side)
    } else {
        std::thread::scope(|scope| -> Result<_, CopyError> {
            let side = sibling.map(|other| scope.spawn(|| other.read(|t| side_reads(t, &frame, AccountsRead::Every))));
            let (customers, already_copied) = load_customers(tx, options, &frame)?;
            let side = match side {
                Some(handle) => ferry_store::joined(handle)?,
                None => side_reads(tx, &frame, AccountsRead::Every)?,
            };
            Ok((customers, already_copied, side))
        })?
    };
    let SideReads { destination, source_organizations, organization_links, requests } = side;
    Ok(PlanFacts {
        membership_mark: frame.membership_mark,
        projects: frame.projects,
        customers,
        destination,
        source_organizations,
        organization_links,
        requests_to_copy: requests.0,
        source_request_limit: requests.1,
        already_copied,
    })
}

/// Loads both sites and decides every outcome. Writes nothing.
pub fn plan_copy(tx: &mut Tx<'_>, options: &CopyOptions) -> Result<CopyPlan, CopyError> {
    plan_copy_beside(tx, None, options)
}

/// [`plan_copy`] reading every destination account a plan could meet,
/// never only those its customers' emails and ids name: what a re-run's
/// keyed reading must agree with (tests compare the two).
pub fn plan_copy_reading_whole_destination(tx: &mut Tx<'_>, options: &CopyOptions) -> Result<CopyPlan, CopyError> {
    let facts = load(tx, None, options, false)?;
    Ok(planner::plan(facts, options)?)
}

/// [`plan_copy`], reading the destination through `sibling` (see [`load`]).
pub(crate) fn plan_copy_beside(
    tx: &mut Tx<'_>,
    sibling: Option<&mut Store>,
    options: &CopyOptions,
) -> Result<CopyPlan, CopyError> {
    let facts = load(tx, sibling, options, true)?;
    let keyed = facts.destination.hidden_emails.is_some();
    let plan = planner::plan(facts, options)?;
    if keyed && !new_ids_free(tx, &plan)? {
        // A new account's id went past the candidates read: read the
        // destination whole and decide again.
        let facts = load(tx, None, options, false)?;
        return Ok(planner::plan(facts, options)?);
    }
    Ok(plan)
}

/// How a first copy's plan is cut ([`plan_in_parts`]): a source of more
/// than `whole_up_to` accounts is decided `part` customers at a time, so
/// that memory stays flat as the site grows (SPEC §9: ten million); a
/// smaller one whole, which is faster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanParts {
    pub whole_up_to: usize,
    pub part: usize,
}

impl PlanParts {
    /// Sources up to 1,048,576 accounts whole; larger ones in parts of
    /// 262,144 customers.
    pub const DEFAULT: PlanParts = PlanParts { whole_up_to: 1 << 20, part: 1 << 18 };

    /// Parts of `part` customers for any source larger than one part.
    pub fn of(part: usize) -> PlanParts {
        PlanParts { whole_up_to: part, part: part.max(1) }
    }
}

/// Whether a first copy of `options` is decided in parts: its source may
/// hold more than `whole_up_to` customers (its accounts and site users,
/// counted by the database). Re-runs read only what arrived, and stay
/// whole.
pub fn planned_in_parts(tx: &mut Tx<'_>, options: &CopyOptions, whole_up_to: usize) -> Result<bool, CopyError> {
    let source = sites::site(tx, &options.from)?;
    let count = |tx: &mut Tx<'_>, sql: &str| -> Result<i64, CopyError> {
        Ok(tx.query_opt(sql, &[Val::I(source.id)], |r| r.int(0))?.unwrap_or(0))
    };
    let accounts = count(tx, "SELECT COUNT(*) FROM accounts WHERE site_id = $1")?
        + count(tx, "SELECT COUNT(*) FROM site_users WHERE site_id = $1")?;
    Ok(usize::try_from(accounts).unwrap_or(usize::MAX) > whole_up_to)
}

/// What takes each part of a plan's customers ([`plan_in_parts`]).
pub type PartSink<'a> = dyn FnMut(&mut Tx<'_>, Vec<planner::PlannedCustomer>) -> Result<(), CopyError> + 'a;

/// [`plan_copy`] deciding the customers in parts of at most `parts.part`
/// (plus the rest of one email), each handed to `each` in report order,
/// then dropped: the plan returned holds no customers (its group is
/// decided from all of them). A re-run, or a source of at most
/// `parts.whole_up_to` accounts, is decided whole (then handed to `each`
/// at once). Blocking conflicts end it
/// before any customer is decided. The parts decide as one plan would: in
/// email order (the database sorts, as Rust compares), the destination's
/// accounts looked up by key for each part, every new account's id
/// checked against the destination's and those given before.
pub fn plan_in_parts(
    tx: &mut Tx<'_>,
    sibling: Option<&mut Store>,
    options: &CopyOptions,
    parts: PlanParts,
    each: &mut PartSink<'_>,
) -> Result<CopyPlan, CopyError> {
    let frame = load_frame(tx, options)?;
    let first_copy = frame.copied_through == 0 && frame.members_through == 0;
    if !first_copy || !planned_in_parts(tx, options, parts.whole_up_to)? {
        let mut plan = plan_copy_beside(tx, sibling, options)?;
        if plan.conflicts.is_empty() {
            each(tx, std::mem::take(&mut plan.customers))?;
        }
        return Ok(plan);
    }
    let part = parts.part;
    let (in_scope, already_copied) = scope_not_linked(tx, options, &frame)?;
    let SideReads { mut destination, source_organizations, organization_links, requests } =
        side_reads(tx, &frame, AccountsRead::Nothing)?;
    let (destination_id, source_slug) = (frame.projects.destination.id, frame.projects.source.slug.clone());
    destination.hidden_emails = Some(count_hidden_emails(tx, destination_id)?);
    let group_keys = destination.group_keys.clone();
    let mut plan = planner::plan(
        PlanFacts {
            membership_mark: frame.membership_mark,
            projects: frame.projects,
            customers: Vec::new(),
            destination,
            source_organizations,
            organization_links,
            requests_to_copy: requests.0,
            source_request_limit: requests.1,
            already_copied,
        },
        options,
    )?;
    if !plan.conflicts.is_empty() || in_scope.len == 0 {
        return Ok(plan);
    }
    let mut parts = PartPlanner { destination_id, source_slug, taken: Default::default(), joins_group: false };
    let (low, high) = (in_scope.low.unwrap_or(0), in_scope.high.unwrap_or(-1));
    // The scope's id range in email order (the rows in it outside the scope
    // are passed over as they are read): numbered and copied once, with
    // what the planner reads of each, then read a page at a time by number,
    // in the order the rows lie (on SQLite the number is the row id): a
    // part no longer looks up each of its customers in the accounts table.
    // SQLite numbers the rows as they are inserted (the row id of an empty
    // table counts up from 1), in the order the SELECT gives them: about
    // twice as fast as numbering them with ROW_NUMBER first (1.6 s against
    // 3.0 s for 1,000,000 accounts). PostgreSQL numbers them.
    let (number, seq_column, seq_value, by_bytes) = match tx.backend() {
        ferry_store::Backend::Sqlite => ("INTEGER", "", "", ""),
        ferry_store::Backend::Postgres => {
            ("BIGINT", "seq, ", "ROW_NUMBER() OVER (ORDER BY email_key COLLATE \"C\", id), ", " COLLATE \"C\"")
        }
    };
    tx.execute("DROP TABLE IF EXISTS ferry_plan_order", &[])?;
    tx.execute(
        &format!(
            "CREATE TEMP TABLE ferry_plan_order (seq {number} PRIMARY KEY, id BIGINT NOT NULL, kind TEXT, ext_id TEXT,
                 email TEXT, email_key TEXT, active BOOLEAN, email_verified BOOLEAN)"
        ),
        &[],
    )?;
    let numbered = tx.execute(
        &format!(
            "INSERT INTO ferry_plan_order ({seq_column}id, kind, ext_id, email, email_key, active, email_verified)
             SELECT {seq_value}id, kind, ext_id, email, email_key, active, email_verified
             FROM accounts WHERE id >= {low} AND id <= {high} ORDER BY email_key{by_bytes}, id"
        ),
        &[],
    )?;
    let mut pending: Vec<ScopedCustomer> = Vec::new();
    let (mut from, mut read_in_all) = (0i64, 0u64);
    loop {
        let mut read = 0usize;
        tx.query_each(
            "SELECT id, kind, ext_id, email, email_key, active, email_verified FROM ferry_plan_order
             WHERE seq > $1 AND seq <= $2 ORDER BY seq",
            &[Val::I(from), Val::I(from + part as i64)],
            |r| {
                read += 1;
                if in_scope.contains(r.int(0)?) {
                    pending.push(scoped_customer(r)?);
                }
                Ok(())
            },
        )?;
        from += part as i64;
        read_in_all += read as u64;
        let last = read < part;
        if last || pending.len() >= part {
            // A part ends where an email ends: the customers of the last
            // email read may go on in the next page.
            let keep = if last {
                0
            } else {
                let key = pending.last().map(|c| c.customer.email_key.clone()).unwrap_or_default();
                pending.iter().rev().take_while(|c| c.customer.email_key == key).count()
            };
            if keep < pending.len() {
                let rest = pending.split_off(pending.len() - keep);
                let planned = parts.plan(tx, std::mem::replace(&mut pending, rest))?;
                each(tx, planned)?;
            }
        }
        if last {
            break;
        }
    }
    // The pages end at the first one not full: numbers with a gap would
    // end the plan early, silently.
    if read_in_all != numbered {
        return Err(StoreError::decode(
            "ferry_plan_order.seq",
            format!("{numbered} accounts were numbered but {read_in_all} read back in order"),
        )
        .into());
    }
    tx.execute("DROP TABLE ferry_plan_order", &[])?;
    if parts.joins_group {
        plan.group_name = Some(planner::group_name_for(&plan.source.slug, &group_keys));
    }
    Ok(plan)
}

/// The name a run of `options` gives its imported group, should any
/// customer join it (as [`planner::plan`] names it).
pub(crate) fn imported_group_for(tx: &mut Tx<'_>, options: &CopyOptions) -> Result<String, CopyError> {
    let source = sites::site(tx, &options.from)?;
    let destination = sites::site(tx, &options.to)?;
    let keys = tx.query_all("SELECT name_key FROM groups WHERE site_id = $1", &[Val::I(destination.id)], |r| {
        Ok(r.text(0)?.to_owned())
    })?;
    Ok(planner::group_name_for(&source.slug, &keys.into_iter().collect()))
}

/// The state a plan decided in parts carries from one part to the next.
struct PartPlanner {
    destination_id: i64,
    source_slug: String,
    /// The ids the new accounts of earlier parts took, and destination ids
    /// found taken beyond the candidates read.
    taken: rustc_hash::FxHashSet<String>,
    joins_group: bool,
}

impl PartPlanner {
    /// Decides one part (whole emails): the destination's accounts it can
    /// meet by email, and of the ids its new accounts want first (their
    /// own) those the destination holds; an id further down a new account's
    /// list of candidates is looked up once given.
    fn plan(
        &mut self,
        tx: &mut Tx<'_>,
        mut customers: Vec<ScopedCustomer>,
    ) -> Result<Vec<planner::PlannedCustomer>, CopyError> {
        customers.sort_unstable_by(planner::customer_order);
        let mut known = DestinationFacts::default();
        let mut emails: Vec<String> = customers.iter().map(|c| c.customer.email_key.clone()).collect();
        emails.dedup();
        read_destination_email_range(tx, self.destination_id, &emails, &mut known)?;
        drop(emails);
        let own: Vec<String> = customers
            .iter()
            .filter(|c| {
                ferry_core::plan::decide(&c.customer, &known.index).target == ferry_core::plan::Target::NewPortalOnly
            })
            .map(|c| c.ext_id.clone())
            .collect();
        let held = destination_ids_held(tx, self.destination_id, &own)?;
        let mut free: rustc_hash::FxHashSet<String> = own.into_iter().collect();
        for ext_id in held.values() {
            free.remove(ext_id);
        }
        known.ext_ids.extend(held);
        let upgraded = rustc_hash::FxHashSet::default();
        loop {
            // The destination's ids join those taken for this part only.
            let added: Vec<String> =
                known.ext_ids.values().filter(|id| self.taken.insert((*id).clone())).cloned().collect();
            let destination =
                planner::KnownDestination { index: &known.index, ext_ids: &known.ext_ids, upgraded_links: &upgraded };
            let planned = planner::plan_customers(customers, &destination, &self.source_slug, &mut self.taken);
            for id in &added {
                self.taken.remove(id);
            }
            let unchecked: Vec<String> =
                planned.iter().filter_map(|c| c.new_ext_id.clone()).filter(|id| !free.contains(id)).collect();
            let held = destination_ids_held(tx, self.destination_id, &unchecked)?;
            if held.is_empty() {
                self.joins_group |= planned.iter().any(|c| c.decision.joins_imported_group());
                return Ok(planned);
            }
            // A new account took an id the destination holds: decide the
            // part again with it taken.
            for id in planned.iter().filter_map(|c| c.new_ext_id.as_ref()) {
                self.taken.remove(id);
            }
            free.extend(unchecked.into_iter().filter(|id| !held.values().any(|h| h == id)));
            known.ext_ids.extend(held);
            customers =
                planned.into_iter().map(|c| ScopedCustomer { customer: c.customer, ext_id: c.ext_id }).collect();
        }
    }
}

/// Which of `ids` destination accounts (portal-only or site users) hold,
/// each looked up by key: account id -> id.
fn destination_ids_held(
    tx: &mut Tx<'_>,
    destination_id: i64,
    ids: &[String],
) -> Result<FxHashMap<i64, String>, StoreError> {
    let mut held = FxHashMap::default();
    for chunk in ids.chunks(500) {
        let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let params: Vec<Val<'_>> =
            std::iter::once(Val::I(destination_id)).chain(chunk.iter().map(|k| Val::T(k))).collect();
        for sql in [
            format!("SELECT id, ext_id FROM accounts WHERE site_id = $1 AND ext_id IN ({})", list.join(", ")),
            format!(
                "SELECT a.id, a.ext_id FROM accounts a JOIN site_users su ON su.site_id = $1 AND su.account_id = a.id
                 WHERE a.site_id IS NULL AND a.ext_id IN ({})",
                list.join(", ")
            ),
        ] {
            tx.query_each(&sql, &params, |r| {
                held.insert(r.int(0)?, r.text(1)?.to_owned());
                Ok(())
            })?;
        }
    }
    Ok(held)
}

/// Checks everything about `options` that can be checked before a run
/// exists, as planning does (both sites, that they differ, the projects and
/// the renames), without reading organizations or customers; the two
/// sites. Blocking conflicts are not errors here: a run records them.
pub fn validate_options(tx: &mut Tx<'_>, options: &CopyOptions) -> Result<(Site, Site), CopyError> {
    let projects = load_projects(tx, options)?;
    planner::select_projects(&projects, options)?;
    Ok((projects.source, projects.destination))
}

/// The blocking conflicts of a plan (and its invalid options, as errors),
/// without reading or deciding its customers: what a caller checks before
/// it starts a run in the background.
pub fn check_conflicts(tx: &mut Tx<'_>, options: &CopyOptions) -> Result<Vec<Conflict>, CopyError> {
    let frame = load_frame(tx, options)?;
    let (source, destination) = (frame.projects.source.id, frame.projects.destination.id);
    let (source_members, named) = same_named_organizations(&frame);
    let source_organizations =
        organizations_with_members(tx, &format!("o.id IN ({})", frame.organizations_sql), &source_members, &[])?;
    let organization_links = links(tx, source, destination, "organization")?;
    let destination_organizations =
        organizations_with_members(tx, &format!("o.site_id = $1 AND {named}"), "TRUE", &[Val::I(destination)])?;
    Ok(planner::conflicts(
        &frame.projects,
        &source_organizations,
        &organization_links,
        &destination_organizations,
        options,
    )?)
}
