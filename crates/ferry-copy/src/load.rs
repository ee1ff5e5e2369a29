//! Loading the two views and deciding everything a copy will do.

use std::collections::{BTreeMap, HashMap, HashSet};

use ferry_core::model::{AccountType, validate_project_key};
use ferry_core::plan::{
    CustomerDecision, DestinationAccount, DestinationIndex, Outcome, SourceCustomer, Target, TypesHeld, decide,
    imported_group_name,
};
use ferry_store::sites::{self, Site};
use ferry_store::{Store, StoreError, Tx, Val};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::CopyError;

/// Which customers a plan copies (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Customers of the selected projects: customer lists, members of groups
    /// holding their Customer role, reporters, participants and comment
    /// authors of their requests, members of their organizations.
    #[default]
    Related,
    /// Every customer of the source site, active or not.
    All,
}

/// What to do with an organization whose name the destination already uses
/// with other members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OrganizationMode {
    /// A blocking conflict (as in Atlassian).
    #[default]
    Block,
    /// Add the copied members to the existing organization.
    Merge,
}

/// A copy plan as the admin states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyOptions {
    pub from: String,
    pub to: String,
    /// Project keys to copy; `None` copies every project.
    pub projects: Option<Vec<String>>,
    pub customers: Scope,
    /// Source key -> key on the destination.
    pub renames: BTreeMap<String, String>,
    pub organizations: OrganizationMode,
}

impl CopyOptions {
    /// The plan with every default of `copy run --from <from> --to <to>`:
    /// every project, related customers, no renames, organizations block.
    pub fn between(from: &str, to: &str) -> CopyOptions {
        CopyOptions {
            from: from.to_owned(),
            to: to.to_owned(),
            projects: None,
            customers: Scope::Related,
            renames: BTreeMap::new(),
            organizations: OrganizationMode::Block,
        }
    }
}

/// A problem that stops `run` before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub kind: &'static str,
    pub source: String,
    pub destination: String,
    pub problem: String,
    pub resolution: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCustomer {
    pub customer: SourceCustomer,
    pub ext_id: String,
    pub decision: CustomerDecision,
    /// The destination account id (as snapshots name it) the report shows.
    pub matched_ext_id: Option<String>,
    /// The id a new portal-only account gets on the destination.
    pub new_ext_id: Option<String>,
    /// The Atlassian account becomes a site user of the destination.
    pub adds_site_user: bool,
    /// A portal-only customer that reached the destination as an Atlassian
    /// account: access comes through an imported group, never a customer list.
    pub via_group: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedProject {
    pub source_id: i64,
    pub source_key: String,
    pub name: String,
    pub destination_key: String,
    /// The destination project, when an earlier run created it.
    pub linked: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedOrganization {
    pub source_id: i64,
    pub name: String,
    /// An existing destination organization to use (linked by an earlier
    /// run, same name and members, or merged into).
    pub existing: Option<i64>,
}

/// Everything a copy will do, decided before anything is written.
#[derive(Debug, Clone)]
pub struct CopyPlan {
    pub options: CopyOptions,
    pub source: Site,
    pub destination: Site,
    /// Sorted by normalized email.
    pub customers: Vec<PlannedCustomer>,
    pub projects: Vec<PlannedProject>,
    pub organizations: Vec<PlannedOrganization>,
    pub conflicts: Vec<Conflict>,
    /// The run's imported group, when any customer matched an Atlassian
    /// account (case 3).
    pub group_name: Option<String>,
    /// Source requests not copied before, and the highest source request
    /// id the run covers (requests added later wait for the next run).
    pub requests_to_copy: u64,
    pub source_request_limit: i64,
}

fn id_list(ids: impl IntoIterator<Item = i64>) -> String {
    let list: Vec<String> = ids.into_iter().map(|id| id.to_string()).collect();
    if list.is_empty() { "NULL".to_owned() } else { list.join(",") }
}

/// The source accounts a plan considers (SPEC §2): every customer related
/// to the chosen projects, and with `--customers all` every account of the
/// source site. Each relation is read on its own and merged here; one SQL
/// `UNION` of them all costs SQLite several times more.
fn scope_ids(
    tx: &mut Tx<'_>,
    scope: Scope,
    source_site: i64,
    projects: &str,
    organizations: &str,
) -> Result<IdSet, CopyError> {
    let mut parts = vec![
        format!("SELECT account_id FROM project_customers WHERE project_id IN ({projects})"),
        format!(
            "SELECT gm.account_id FROM customer_roles cr JOIN group_members gm ON gm.group_id = cr.group_id
             WHERE cr.project_id IN ({projects})"
        ),
        // `+project_id`: scanning requests in table order beats SQLite's
        // walk of the (project, number) index with a row lookup per request.
        format!("SELECT reporter_id FROM requests WHERE +project_id IN ({projects})"),
        format!(
            "SELECT rp.account_id FROM request_participants rp JOIN requests r ON r.id = rp.request_id
             WHERE +r.project_id IN ({projects})"
        ),
        format!(
            "SELECT c.author_id FROM comments c JOIN requests r ON r.id = c.request_id WHERE +r.project_id IN ({projects})"
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
}

/// Source organizations by id: name and members' normalized emails.
type SourceOrganizations = BTreeMap<i64, (String, HashSet<String>)>;
/// Destination organizations by name: id and members' normalized emails.
type DestinationOrganizations = HashMap<String, (i64, HashSet<String>)>;

/// What a plan needs of the destination and of earlier runs into it.
struct DestinationView {
    index: DestinationIndex,
    /// Destination account id -> its id as snapshots name it.
    destination_ext: FxHashMap<i64, String>,
    /// Source accounts linked by an earlier run to an account since upgraded.
    upgraded_links: HashSet<i64>,
    /// By name: id and members' normalized emails.
    organizations: DestinationOrganizations,
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

/// Reads the destination: its accounts by email, its site users, what
/// earlier runs linked, and its organizations.
fn load_destination(tx: &mut Tx<'_>, source_id: i64, destination_id: i64) -> Result<DestinationView, CopyError> {
    // The destination, by email.
    let mut index = DestinationIndex::default();
    let mut destination_ext: FxHashMap<i64, String> = FxHashMap::default();
    tx.query_each(
        "SELECT id, ext_id, email_key, active, email_verified, merged_into FROM accounts WHERE site_id = $1",
        &[Val::I(destination_id)],
        |r| {
            let account = DestinationAccount { account_id: r.int(0)?, active: r.bool(3)?, email_verified: r.bool(4)? };
            destination_ext.insert(account.account_id, r.text(1)?.to_owned());
            if r.opt_int(5)?.is_none() {
                index.portal_by_email.insert(r.text(2)?.to_owned(), account);
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
            destination_ext.insert(account.account_id, r.text(1)?.to_owned());
            index.atlassian_by_email.insert(r.text(2)?.to_owned(), account);
            Ok(())
        },
    )?;
    index.linked = links(tx, source_id, destination_id, "account")?;
    // An account copied earlier and since upgraded lives on as the account
    // it was merged into.
    let mut merged: HashMap<i64, i64> = HashMap::new();
    tx.query_each(
        "SELECT id, merged_into FROM accounts WHERE site_id = $1 AND merged_into IS NOT NULL",
        &[Val::I(destination_id)],
        |r| {
            merged.insert(r.int(0)?, r.int(1)?);
            Ok(())
        },
    )?;
    // Their access came through customer lists, which the upgrade moved,
    // never through the imported group.
    let mut upgraded_links: HashSet<i64> = HashSet::new();
    for (source_id, destination_id) in index.linked.iter_mut() {
        if let Some(&into) = merged.get(destination_id) {
            *destination_id = into;
            upgraded_links.insert(*source_id);
        }
    }
    let organizations = read_destination_organizations(tx, destination_id)?;
    Ok(DestinationView { index, destination_ext, upgraded_links, organizations })
}

/// The destination's organizations by name: id and members' normalized
/// emails.
fn read_destination_organizations(tx: &mut Tx<'_>, destination_id: i64) -> Result<DestinationOrganizations, CopyError> {
    let by_id = organizations_with_members(tx, "o.site_id = $1", &[Val::I(destination_id)])?;
    Ok(by_id.into_iter().map(|(id, (name, members))| (name, (id, members))).collect())
}

/// The source organizations `organizations_sql` selects, by id: name and
/// members' normalized emails.
fn read_source_organizations(tx: &mut Tx<'_>, organizations_sql: &str) -> Result<SourceOrganizations, CopyError> {
    organizations_with_members(tx, &format!("o.id IN ({organizations_sql})"), &[])
}

/// The organizations `condition` (on `o`) selects, by id: name and members'
/// normalized emails.
fn organizations_with_members(
    tx: &mut Tx<'_>,
    condition: &str,
    params: &[Val<'_>],
) -> Result<SourceOrganizations, CopyError> {
    let mut organizations: SourceOrganizations = BTreeMap::new();
    tx.query_each(
        &format!(
            "SELECT o.id, o.name, a.email_key FROM organizations o
             LEFT JOIN organization_members m ON m.organization_id = o.id
             LEFT JOIN accounts a ON a.id = m.account_id
             WHERE {condition}"
        ),
        params,
        |r| {
            let entry = organizations
                .entry(r.int(0)?)
                .or_insert_with(|| (r.text(1).unwrap_or_default().to_owned(), HashSet::new()));
            if let Some(key) = r.opt_text(2)? {
                entry.1.insert(key.to_owned());
            }
            Ok(())
        },
    )?;
    Ok(organizations)
}

/// Loads both sites and decides every outcome. Writes nothing.
pub fn plan_copy(tx: &mut Tx<'_>, options: &CopyOptions) -> Result<CopyPlan, CopyError> {
    plan_copy_beside(tx, None, options)
}

/// [`plan_copy`], with `sibling` (another connection to the same SQLite
/// file) reading the destination on another core while `tx` reads the
/// source. The caller's transaction must hold the write lock and not have
/// written yet, so that both connections see the same database.
pub(crate) fn plan_copy_beside(
    tx: &mut Tx<'_>,
    sibling: Option<&mut Store>,
    options: &CopyOptions,
) -> Result<CopyPlan, CopyError> {
    std::thread::scope(|scope| decide_plan(scope, tx, sibling, options))
}

/// What a plan reads beside the source's customers: the destination, the
/// source's organizations and the requests left to copy.
struct SideReads {
    destination: DestinationView,
    /// By id: name and members' normalized emails.
    source_organizations: SourceOrganizations,
    /// Source requests not copied before, and the highest of their ids.
    requests: (u64, i64),
}

fn side_reads(
    tx: &mut Tx<'_>,
    source_id: i64,
    destination_id: i64,
    project_ids: &str,
    organizations_sql: &str,
) -> Result<SideReads, CopyError> {
    let destination = load_destination(tx, source_id, destination_id)?;
    let source_organizations = read_source_organizations(tx, organizations_sql)?;
    let requests = tx
        .query_opt(
            &format!(
                "SELECT COUNT(*), COALESCE(MAX(r.id), 0) FROM requests r
                 WHERE r.project_id IN ({project_ids}) AND NOT EXISTS (
                     SELECT 1 FROM copy_links l WHERE l.source_site_id = $1 AND l.destination_site_id = $2
                     AND l.kind = 'request' AND l.source_id = r.id)"
            ),
            &[Val::I(source_id), Val::I(destination_id)],
            |r| Ok((r.int(0)? as u64, r.int(1)?)),
        )?
        .unwrap_or((0, 0));
    Ok(SideReads { destination, source_organizations, requests })
}

/// What a plan settles before its customers: its two sites (which must
/// differ), its projects with their key conflicts, and which source
/// organizations it involves.
struct Frame {
    source: Site,
    destination: Site,
    projects: Vec<PlannedProject>,
    /// The source projects' ids, as an SQL list.
    project_ids: String,
    /// SQL selecting the ids of the organizations the plan involves.
    organizations_sql: String,
    conflicts: Vec<Conflict>,
}

fn plan_frame(tx: &mut Tx<'_>, options: &CopyOptions) -> Result<Frame, CopyError> {
    let source = sites::site(tx, &options.from)?;
    let destination = sites::site(tx, &options.to)?;
    if source.id == destination.id {
        return Err(StoreError::Conflict(format!(
            "the plan copies site {} onto itself: choose another destination site",
            source.slug
        ))
        .into());
    }
    let mut conflicts = Vec::new();
    let projects = plan_projects(tx, options, (&source, &destination), &mut conflicts)?;
    let project_ids = id_list(projects.iter().map(|p| p.source_id));
    let organizations_sql = organizations_sql(&project_ids);
    Ok(Frame { source, destination, projects, project_ids, organizations_sql, conflicts })
}

/// The projects a plan copies, in key order, with their keys on the
/// destination; a key taken there is a conflict.
fn plan_projects(
    tx: &mut Tx<'_>,
    options: &CopyOptions,
    (source, destination): (&Site, &Site),
    conflicts: &mut Vec<Conflict>,
) -> Result<Vec<PlannedProject>, CopyError> {
    let all_projects = tx.query_all(
        "SELECT id, key, name FROM projects WHERE site_id = $1 ORDER BY key",
        &[Val::I(source.id)],
        |r| Ok((r.int(0)?, r.text(1)?.to_owned(), r.text(2)?.to_owned())),
    )?;
    let selected: Vec<(i64, String, String)> = match &options.projects {
        None => all_projects,
        Some(keys) => {
            let mut chosen = Vec::new();
            for key in keys {
                validate_project_key(key).map_err(|e| CopyError::Invalid(format!("project {key:?}: {e}")))?;
                match all_projects.iter().find(|(_, k, _)| k == key) {
                    Some(project) => chosen.push(project.clone()),
                    None => {
                        return Err(StoreError::NotFound(format!(
                            "project {key:?} is not a project of site {}",
                            source.slug
                        ))
                        .into());
                    }
                }
            }
            chosen.sort_by(|a, b| a.1.cmp(&b.1));
            chosen.dedup();
            chosen
        }
    };
    for (old, new) in &options.renames {
        validate_project_key(old).map_err(|e| CopyError::Invalid(format!("rename {old}={new}: {e}")))?;
        if !selected.iter().any(|(_, key, _)| key == old) {
            return Err(
                StoreError::Conflict(format!("rename {old}={new}: {old} is not a project this plan copies")).into()
            );
        }
        validate_project_key(new).map_err(|e| CopyError::Invalid(format!("rename {old}={new}: {e}")))?;
    }
    let project_links = links(tx, source.id, destination.id, "project")?;
    let destination_projects: HashMap<String, i64> = tx
        .query_all("SELECT key, id FROM projects WHERE site_id = $1", &[Val::I(destination.id)], |r| {
            Ok((r.text(0)?.to_owned(), r.int(1)?))
        })?
        .into_iter()
        .collect();
    let mut projects = Vec::new();
    let mut claimed_keys = HashSet::new();
    for (id, key, name) in &selected {
        let destination_key = options.renames.get(key).cloned().unwrap_or_else(|| key.clone());
        let linked = project_links.get(id).copied();
        if linked.is_none()
            && (destination_projects.contains_key(&destination_key) || !claimed_keys.insert(destination_key.clone()))
        {
            conflicts.push(Conflict {
                kind: "project",
                source: key.clone(),
                destination: destination_key.clone(),
                problem: format!("Project key {destination_key} already exists on {}", destination.slug),
                resolution: format!("Rename it: --rename {key}=<NEW KEY>"),
            });
        }
        projects.push(PlannedProject {
            source_id: *id,
            source_key: key.clone(),
            name: name.clone(),
            destination_key,
            linked,
        });
    }
    Ok(projects)
}

/// Organizations linked to the projects or shared by their requests.
fn organizations_sql(project_ids: &str) -> String {
    format!(
        "SELECT organization_id FROM organization_projects WHERE project_id IN ({project_ids})
         UNION SELECT organization_id FROM requests WHERE +project_id IN ({project_ids}) AND organization_id IS NOT NULL"
    )
}

/// Each source organization linked by an earlier run, merged into the
/// destination's organization of the same name, or created; one of the
/// same name with other members is a conflict unless the plan merges.
fn plan_organizations(
    tx: &mut Tx<'_>,
    options: &CopyOptions,
    (source, destination): (&Site, &Site),
    (source_organizations, destination_organizations): (SourceOrganizations, &DestinationOrganizations),
    conflicts: &mut Vec<Conflict>,
) -> Result<Vec<PlannedOrganization>, CopyError> {
    let organization_links = links(tx, source.id, destination.id, "organization")?;
    let mut organizations = Vec::new();
    for (source_id, (name, members)) in source_organizations {
        let existing = match (organization_links.get(&source_id), destination_organizations.get(&name)) {
            (Some(linked), _) => Some(*linked),
            (None, Some((id, destination_members))) => {
                if destination_members != &members && options.organizations == OrganizationMode::Block {
                    conflicts.push(Conflict {
                        kind: "organization",
                        source: name.clone(),
                        destination: name.clone(),
                        problem: format!(
                            "Organization {name} already exists on {} with other members",
                            destination.slug
                        ),
                        resolution: "Merge the members into it: --organizations merge".to_owned(),
                    });
                }
                Some(*id)
            }
            (None, None) => None,
        };
        organizations.push(PlannedOrganization { source_id, name, existing });
    }
    Ok(organizations)
}

/// Checks everything about `options` that can be checked before a run
/// exists, as planning does (both sites, that they differ, the projects and
/// the renames), without reading organizations or customers; the two
/// sites. Blocking conflicts are not errors here: a run records them.
pub fn validate_options(tx: &mut Tx<'_>, options: &CopyOptions) -> Result<(Site, Site), CopyError> {
    plan_frame(tx, options).map(|frame| (frame.source, frame.destination))
}

/// The blocking conflicts of a plan (and its invalid options, as errors),
/// without reading or deciding its customers: what a caller checks before
/// it starts a run in the background.
pub fn check_conflicts(tx: &mut Tx<'_>, options: &CopyOptions) -> Result<Vec<Conflict>, CopyError> {
    let Frame { source, destination, organizations_sql, mut conflicts, .. } = plan_frame(tx, options)?;
    let organizations =
        (read_source_organizations(tx, &organizations_sql)?, &read_destination_organizations(tx, destination.id)?);
    plan_organizations(tx, options, (&source, &destination), organizations, &mut conflicts)?;
    Ok(conflicts)
}

/// Every customer's decision, in order. Deciding is pure and a million
/// decisions take most of a second, so half are decided on another thread.
fn decide_all(customers: &[(SourceCustomer, String)], index: &DestinationIndex) -> Vec<CustomerDecision> {
    let (first, second) = customers.split_at(customers.len() / 2);
    let decide_each = |part: &[(SourceCustomer, String)]| -> Vec<CustomerDecision> {
        part.iter().map(|(customer, _)| decide(customer, index)).collect()
    };
    std::thread::scope(|scope| {
        let other = scope.spawn(|| decide_each(second));
        let mut decisions = decide_each(first);
        decisions.extend(ferry_store::joined(other));
        decisions
    })
}

fn decide_plan<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    tx: &mut Tx<'_>,
    sibling: Option<&'env mut Store>,
    options: &CopyOptions,
) -> Result<CopyPlan, CopyError> {
    let Frame { source, destination, projects, project_ids, organizations_sql, mut conflicts } =
        plan_frame(tx, options)?;

    // The rest is read by the other connection, when there is one, while
    // this one reads the customers.
    let (source_id, destination_id) = (source.id, destination.id);
    let side = sibling.map(|other| {
        let (projects, organizations) = (project_ids.clone(), organizations_sql.clone());
        scope.spawn(move || other.read(|t| side_reads(t, source_id, destination_id, &projects, &organizations)))
    });

    // Customers in scope: the accounts in the id range of the scope, kept
    // when in it (one range scan instead of a lookup per id).
    let in_scope = scope_ids(tx, options.customers, source.id, &project_ids, &organizations_sql)?;
    let (low, high) = (in_scope.low.unwrap_or(0), in_scope.high.unwrap_or(-1));
    let mut customers: Vec<(SourceCustomer, String)> = Vec::with_capacity(in_scope.len);
    tx.query_each(
        "SELECT id, kind, ext_id, email, email_key, active, email_verified FROM accounts WHERE id >= $1 AND id <= $2",
        &[Val::I(low), Val::I(high)],
        |r| {
            let account_id = r.int(0)?;
            if in_scope.contains(account_id) {
                customers.push((
                    SourceCustomer {
                        account_id,
                        kind: AccountType::from_jira_value(r.text(1)?).unwrap_or(AccountType::PortalOnly),
                        email: r.text(3)?.to_owned(),
                        email_key: r.text(4)?.to_owned(),
                        active: r.bool(5)?,
                        email_verified: r.bool(6)?,
                    },
                    r.text(2)?.to_owned(),
                ));
            }
            Ok(())
        },
    )?;
    customers.sort_unstable_by(|a, b| {
        (a.0.email_key.as_str(), a.0.kind, a.1.as_str()).cmp(&(b.0.email_key.as_str(), b.0.kind, b.1.as_str()))
    });

    let SideReads {
        destination:
            DestinationView { index, destination_ext, upgraded_links, organizations: destination_organizations },
        source_organizations,
        requests: (requests_to_copy, source_request_limit),
    } = match side {
        Some(handle) => ferry_store::joined(handle)?,
        None => side_reads(tx, source_id, destination_id, &project_ids, &organizations_sql)?,
    };
    let mut taken_ext: FxHashSet<String> = destination_ext.values().cloned().collect();
    let site_user_ids: HashSet<i64> = index.atlassian_by_email.values().map(|a| a.account_id).collect();

    let decisions = decide_all(&customers, &index);
    let mut planned = Vec::with_capacity(customers.len());
    for ((customer, ext_id), decision) in customers.into_iter().zip(decisions) {
        let new_ext_id = (decision.target == Target::NewPortalOnly).then(|| {
            let mut candidate = ext_id.clone();
            let mut n = 1;
            while !taken_ext.insert(candidate.clone()) {
                n += 1;
                candidate =
                    if n == 2 { format!("{ext_id}-{}", source.slug) } else { format!("{ext_id}-{}-{n}", source.slug) };
            }
            candidate
        });
        let adds_site_user = customer.kind == AccountType::Atlassian
            && decision.outcome != Outcome::AlreadyCopied
            && !index.atlassian_by_email.contains_key(&customer.email_key);
        let matched_ext_id = decision.matched.and_then(|id| destination_ext.get(&id).cloned());
        let via_group = decision.joins_imported_group()
            || (decision.outcome == Outcome::AlreadyCopied
                && customer.kind == AccountType::PortalOnly
                && !upgraded_links.contains(&customer.account_id)
                && matches!(decision.target, Target::Existing(id) if site_user_ids.contains(&id)));
        planned.push(PlannedCustomer {
            customer,
            ext_id,
            decision,
            matched_ext_id,
            new_ext_id,
            adds_site_user,
            via_group,
        });
    }

    // "Account type after copying" is what the destination holds for the
    // email once the whole copy is done: when the source itself has both
    // types for one email, each row shows both.
    let mut start = 0;
    while start < planned.len() {
        let key = planned[start].customer.email_key.as_str();
        let end = start + planned[start..].iter().take_while(|c| c.customer.email_key == key).count();
        if end - start > 1 {
            let holds = |t: TypesHeld| {
                (
                    matches!(t, TypesHeld::PortalOnly | TypesHeld::Both),
                    matches!(t, TypesHeld::Atlassian | TypesHeld::Both),
                )
            };
            let (portal, atlassian) = planned[start..end]
                .iter()
                .map(|c| holds(c.decision.after))
                .fold((false, false), |(p, a), (cp, ca)| (p || cp, a || ca));
            for c in &mut planned[start..end] {
                c.decision.after = TypesHeld::of(portal, atlassian);
            }
        }
        start = end;
    }

    let organizations = plan_organizations(
        tx,
        options,
        (&source, &destination),
        (source_organizations, &destination_organizations),
        &mut conflicts,
    )?;

    // The imported group, named against the destination's groups.
    let group_name = if planned.iter().any(|c| c.decision.joins_imported_group()) {
        let taken: HashSet<String> = tx
            .query_all("SELECT name_key FROM groups WHERE site_id = $1", &[Val::I(destination.id)], |r| {
                Ok(r.text(0)?.to_owned())
            })?
            .into_iter()
            .collect();
        Some(imported_group_name(&source.slug, |name| taken.contains(&name.to_lowercase())))
    } else {
        None
    };

    Ok(CopyPlan {
        options: options.clone(),
        source,
        destination,
        customers: planned,
        projects,
        organizations,
        conflicts,
        group_name,
        requests_to_copy,
        source_request_limit,
    })
}
