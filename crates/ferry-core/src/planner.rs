//! The copy planner (SPEC §2-§3): every rule of what a copy will do, as one
//! pure function over the facts a loader read. [`plan`] takes [`PlanFacts`]
//! and the admin's [`CopyOptions`] and returns the [`CopyPlan`]; it reads
//! nothing and writes nothing, so `copy check` and `copy run` decide alike
//! by construction and every rule can be tested without a database.
//!
//! The loader needs to know which projects a plan copies before it reads
//! their customers; [`select_projects`] is that first step, and [`plan`]
//! runs it again over the same facts.

use std::collections::{BTreeMap, HashMap, HashSet};

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::model::{AccountType, Site, validate_project_key};
use crate::plan::{CustomerDecision, DestinationIndex, Outcome, SourceCustomer, Target, TypesHeld, decide};

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

/// Options a plan cannot be made from; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A value is malformed (a project key).
    #[error("{0}")]
    Invalid(String),
    /// The options name a project the source does not have.
    #[error("{0}")]
    NotFound(String),
    /// The options contradict themselves or the sites (a site onto itself,
    /// a rename of a project the plan does not copy).
    #[error("{0}")]
    Conflict(String),
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

/// A project of the source site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceProject {
    pub id: i64,
    pub key: String,
    pub name: String,
}

/// What deciding the projects needs: the two sites, the source's projects,
/// the destination's keys and what earlier runs between the two linked.
#[derive(Debug, Clone, Default)]
pub struct ProjectFacts {
    pub source: Site,
    pub destination: Site,
    /// Every project of the source site.
    pub source_projects: Vec<SourceProject>,
    /// Every project key the destination uses.
    pub destination_keys: HashSet<String>,
    /// Source project -> destination project, from earlier runs.
    pub links: FxHashMap<i64, i64>,
}

/// Organizations by id: name and members' normalized emails.
pub type Organizations = BTreeMap<i64, (String, HashSet<String>)>;

/// An account of the scope, with its id as snapshots name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedCustomer {
    pub customer: SourceCustomer,
    pub ext_id: String,
}

/// What the destination holds and what earlier runs into it did.
#[derive(Debug, Clone, Default)]
pub struct DestinationFacts {
    /// Accounts by email, and the links of earlier runs as they were
    /// recorded (before [`plan`] follows upgrades).
    pub index: DestinationIndex,
    /// Every destination account id (portal-only or site user) -> its id as
    /// snapshots name it.
    pub ext_ids: FxHashMap<i64, String>,
    /// Merged (upgraded) portal-only account -> the account it became.
    pub merged_into: FxHashMap<i64, i64>,
    /// Organizations by id: name and members' normalized emails.
    pub organizations: Organizations,
    /// The names of the destination's groups, as [`crate::model::name_key`]
    /// folds them.
    pub group_keys: HashSet<String>,
    /// How many destination accounts hide their email, when the loader
    /// counted them because `index` holds only the accounts the plan's
    /// customers can meet (a re-run); `None`: counted from `index`.
    pub hidden_emails: Option<u64>,
}

/// Everything a plan is decided from, read by a loader in one transaction.
#[derive(Debug, Clone, Default)]
pub struct PlanFacts {
    pub projects: ProjectFacts,
    /// The scope's accounts, each once, in any order.
    pub customers: Vec<ScopedCustomer>,
    pub destination: DestinationFacts,
    /// The source organizations the plan involves (linked to its projects
    /// or shared by their requests).
    pub source_organizations: Organizations,
    /// Source organization -> destination organization, from earlier runs.
    pub organization_links: FxHashMap<i64, i64>,
    /// Source requests not copied before, and the highest of their ids.
    pub requests_to_copy: u64,
    pub source_request_limit: i64,
    /// Customers of the scope an earlier run between the two sites copied
    /// (linked): not in `customers`, counted (SPEC §2, re-run).
    pub already_copied: u64,
    /// The database's membership clock when the facts were read: every
    /// membership stamped at or below it is in them.
    pub membership_mark: i64,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyPlan {
    pub options: CopyOptions,
    pub source: Site,
    pub destination: Site,
    /// Sorted by normalized email, then account type, then source id.
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
    /// Destination accounts whose email their site hides (SPEC §8): no
    /// customer is matched to them by email, so any could be one of them.
    pub destination_hidden_emails: u64,
    /// Customers of the scope earlier runs copied: not decided again.
    pub already_copied: u64,
    /// The membership clock the plan was read at (see [`PlanFacts`]): a
    /// later run between the two sites reads memberships stamped above it.
    pub membership_mark: i64,
}

/// The projects a plan copies, in key order, with their keys on the
/// destination; a key taken there (or by another copied project) is a
/// blocking conflict. Checks the sites differ, the keys and the renames.
pub fn select_projects(
    facts: &ProjectFacts,
    options: &CopyOptions,
) -> Result<(Vec<PlannedProject>, Vec<Conflict>), PlanError> {
    let (source, destination) = (&facts.source, &facts.destination);
    if source.id == destination.id {
        return Err(PlanError::Conflict(format!(
            "the plan copies site {} onto itself: choose another destination site",
            source.slug
        )));
    }
    let mut all: Vec<&SourceProject> = facts.source_projects.iter().collect();
    all.sort_by(|a, b| a.key.cmp(&b.key));
    let selected: Vec<&SourceProject> = match &options.projects {
        None => all,
        Some(keys) => {
            let mut chosen = Vec::new();
            for key in keys {
                validate_project_key(key).map_err(|e| PlanError::Invalid(format!("project {key:?}: {e}")))?;
                match all.iter().find(|p| &p.key == key) {
                    Some(project) => chosen.push(*project),
                    None => {
                        return Err(PlanError::NotFound(format!(
                            "project {key:?} is not a project of site {}",
                            source.slug
                        )));
                    }
                }
            }
            chosen.sort_by(|a, b| a.key.cmp(&b.key));
            chosen.dedup();
            chosen
        }
    };
    for (old, new) in &options.renames {
        validate_project_key(old).map_err(|e| PlanError::Invalid(format!("rename {old}={new}: {e}")))?;
        if !selected.iter().any(|p| &p.key == old) {
            return Err(PlanError::Conflict(format!("rename {old}={new}: {old} is not a project this plan copies")));
        }
        validate_project_key(new).map_err(|e| PlanError::Invalid(format!("rename {old}={new}: {e}")))?;
    }
    let mut projects = Vec::new();
    let mut conflicts = Vec::new();
    let mut claimed_keys = HashSet::new();
    for project in selected {
        let destination_key = options.renames.get(&project.key).cloned().unwrap_or_else(|| project.key.clone());
        let linked = facts.links.get(&project.id).copied();
        if linked.is_none()
            && (facts.destination_keys.contains(&destination_key) || !claimed_keys.insert(destination_key.clone()))
        {
            conflicts.push(Conflict {
                kind: "project",
                source: project.key.clone(),
                destination: destination_key.clone(),
                problem: format!("Project key {destination_key} already exists on {}", destination.slug),
                resolution: format!("Rename it: --rename {}=<NEW KEY>", project.key),
            });
        }
        projects.push(PlannedProject {
            source_id: project.id,
            source_key: project.key.clone(),
            name: project.name.clone(),
            destination_key,
            linked,
        });
    }
    Ok((projects, conflicts))
}

/// Each source organization linked by an earlier run, merged into the
/// destination's organization of the same name, or created; one of the
/// same name with other members is a blocking conflict unless the plan
/// merges.
pub fn plan_organizations(
    source: &Organizations,
    links: &FxHashMap<i64, i64>,
    destination: &Organizations,
    options: &CopyOptions,
    destination_slug: &str,
) -> (Vec<PlannedOrganization>, Vec<Conflict>) {
    let by_name: HashMap<&str, (i64, &HashSet<String>)> =
        destination.iter().map(|(id, (name, members))| (name.as_str(), (*id, members))).collect();
    let mut organizations = Vec::new();
    let mut conflicts = Vec::new();
    for (&source_id, (name, members)) in source {
        let existing = match (links.get(&source_id), by_name.get(name.as_str())) {
            (Some(linked), _) => Some(*linked),
            (None, Some((id, destination_members))) => {
                if *destination_members != members && options.organizations == OrganizationMode::Block {
                    conflicts.push(Conflict {
                        kind: "organization",
                        source: name.clone(),
                        destination: name.clone(),
                        problem: format!("Organization {name} already exists on {destination_slug} with other members"),
                        resolution: "Merge the members into it: --organizations merge".to_owned(),
                    });
                }
                Some(*id)
            }
            (None, None) => None,
        };
        organizations.push(PlannedOrganization { source_id, name: name.clone(), existing });
    }
    (organizations, conflicts)
}

/// The order customers are planned and reported in: normalized email, then
/// account type, then the source's id for the account.
pub fn customer_order(a: &ScopedCustomer, b: &ScopedCustomer) -> std::cmp::Ordering {
    (a.customer.email_key.as_str(), a.customer.kind, a.ext_id.as_str()).cmp(&(
        b.customer.email_key.as_str(),
        b.customer.kind,
        b.ext_id.as_str(),
    ))
}

/// Every customer's decision, in order. Deciding is pure and a million
/// decisions take most of a second, so half are decided on another thread.
fn decide_all(customers: &[ScopedCustomer], index: &DestinationIndex) -> Vec<CustomerDecision> {
    let (first, second) = customers.split_at(customers.len() / 2);
    let decide_each = |part: &[ScopedCustomer]| -> Vec<CustomerDecision> {
        part.iter().map(|c| decide(&c.customer, index)).collect()
    };
    std::thread::scope(|scope| {
        let other = scope.spawn(|| decide_each(second));
        let mut decisions = decide_each(first);
        match other.join() {
            Ok(rest) => decisions.extend(rest),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        decisions
    })
}

/// The id a new portal-only account takes on the destination: the source's
/// own id, else `<id>-<source site>`, `<id>-<source site>-3`… the first one
/// no destination account (nor another new one) has. Records it as taken.
pub fn new_ext_id(ext_id: &str, source_slug: &str, taken: &mut FxHashSet<String>) -> String {
    let mut candidate = ext_id.to_owned();
    let mut n = 1;
    while !taken.insert(candidate.clone()) {
        n += 1;
        candidate = if n == 2 { format!("{ext_id}-{source_slug}") } else { format!("{ext_id}-{source_slug}-{n}") };
    }
    candidate
}

/// "Account type after copying" is what the destination holds for the
/// email once the whole copy is done: when the source itself has both types
/// for one email, each of its rows shows both. `planned` is in email order.
fn settle_types_after(planned: &mut [PlannedCustomer]) {
    let mut start = 0;
    while start < planned.len() {
        let key = planned[start].customer.email_key.as_str();
        let end = start + planned[start..].iter().take_while(|c| c.customer.email_key == key).count();
        if end - start > 1 {
            let (portal, atlassian) = planned[start..end]
                .iter()
                .map(|c| c.decision.after)
                .fold((false, false), |(p, a), t| (p || t.has_portal_only(), a || t.has_atlassian()));
            for c in &mut planned[start..end] {
                c.decision.after = TypesHeld::of(portal, atlassian);
            }
        }
        start = end;
    }
}

/// The run's imported group's name, beside the destination's groups
/// (`group_keys`, as [`crate::model::name_key`] folds them).
pub fn group_name_for(source_site: &str, group_keys: &HashSet<String>) -> String {
    imported_group_name(source_site, |name| group_keys.contains(&crate::model::name_key(name)))
}

/// The imported group's name: `customers-from-<site>`, with `-2`, `-3`…
/// when the destination already has a group of that name (case-insensitive).
pub fn imported_group_name(source_site: &str, taken: impl Fn(&str) -> bool) -> String {
    let base = format!("customers-from-{source_site}");
    if !taken(&base) {
        return base;
    }
    (2..).map(|n| format!("{base}-{n}")).find(|name| !taken(name)).unwrap_or(base)
}

/// What deciding customers reads of the destination: its accounts by
/// email (those the customers can meet, at least), their ids as snapshots
/// name them, and the source accounts whose earlier links followed an
/// upgrade.
pub struct KnownDestination<'a> {
    pub index: &'a DestinationIndex,
    pub ext_ids: &'a FxHashMap<i64, String>,
    pub upgraded_links: &'a FxHashSet<i64>,
}

/// Decides `customers` (sorted by [`customer_order`], no email split from
/// the customers of that email) against `known`: the planned customers in
/// the same order. `taken` holds every id a new portal-only account may
/// not take (the destination's, and those given before) and receives the
/// new ones. A plan decided in parts, in order, each with `taken` carried
/// on, decides as [`plan`] does at once.
pub fn plan_customers(
    customers: Vec<ScopedCustomer>,
    known: &KnownDestination<'_>,
    source_slug: &str,
    taken: &mut FxHashSet<String>,
) -> Vec<PlannedCustomer> {
    let index = known.index;
    let decisions = decide_all(&customers, index);
    let site_user_ids: FxHashSet<i64> = index.atlassian_by_email.values().map(|a| a.account_id).collect();
    let mut planned = Vec::with_capacity(customers.len());
    for (ScopedCustomer { customer, ext_id }, decision) in customers.into_iter().zip(decisions) {
        let new_ext_id = (decision.target == Target::NewPortalOnly).then(|| new_ext_id(&ext_id, source_slug, taken));
        let adds_site_user = customer.kind == AccountType::Atlassian
            && decision.outcome != Outcome::AlreadyCopied
            && !index.atlassian_by_email.contains_key(&customer.email_key);
        let matched_ext_id = decision.matched.and_then(|id| known.ext_ids.get(&id).cloned());
        let via_group = decision.joins_imported_group()
            || (decision.outcome == Outcome::AlreadyCopied
                && customer.kind == AccountType::PortalOnly
                && !known.upgraded_links.contains(&customer.account_id)
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
    settle_types_after(&mut planned);
    planned
}

/// Decides everything a copy will do (SPEC §2-§3). Takes the facts by value:
/// a million customers move into the plan instead of being copied.
pub fn plan(facts: PlanFacts, options: &CopyOptions) -> Result<CopyPlan, PlanError> {
    let (projects, mut conflicts) = select_projects(&facts.projects, options)?;
    let PlanFacts {
        projects: ProjectFacts { source, destination, .. },
        mut customers,
        destination: DestinationFacts { mut index, ext_ids, merged_into, organizations, group_keys, hidden_emails },
        source_organizations,
        organization_links,
        requests_to_copy,
        source_request_limit,
        already_copied,
        membership_mark,
    } = facts;

    // An account copied earlier and since upgraded lives on as the account
    // it was merged into. Its access came through customer lists, which the
    // upgrade moved, never through the imported group.
    let mut upgraded_links: FxHashSet<i64> = FxHashSet::default();
    for (source_id, destination_id) in index.linked.iter_mut() {
        if let Some(&into) = merged_into.get(destination_id) {
            *destination_id = into;
            upgraded_links.insert(*source_id);
        }
    }

    let destination_hidden_emails = hidden_emails.unwrap_or_else(|| {
        index
            .portal_by_email
            .keys()
            .chain(index.atlassian_by_email.keys())
            .filter(|key| crate::email::is_hidden(key))
            .count() as u64
    });
    customers.sort_unstable_by(customer_order);
    let mut taken_ext: FxHashSet<String> = ext_ids.values().cloned().collect();
    let known = KnownDestination { index: &index, ext_ids: &ext_ids, upgraded_links: &upgraded_links };
    let planned = plan_customers(customers, &known, &source.slug, &mut taken_ext);

    let (organizations, organization_conflicts) =
        plan_organizations(&source_organizations, &organization_links, &organizations, options, &destination.slug);
    conflicts.extend(organization_conflicts);

    let group_name =
        planned.iter().any(|c| c.decision.joins_imported_group()).then(|| group_name_for(&source.slug, &group_keys));

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
        destination_hidden_emails,
        already_copied,
        membership_mark,
    })
}

/// The blocking conflicts of a plan (and its invalid options, as errors),
/// from the facts that decide them: projects and organizations. What a
/// caller checks before it starts a run in the background; the same
/// functions [`plan`] calls, so the two cannot disagree.
pub fn conflicts(
    projects: &ProjectFacts,
    source_organizations: &Organizations,
    organization_links: &FxHashMap<i64, i64>,
    destination_organizations: &Organizations,
    options: &CopyOptions,
) -> Result<Vec<Conflict>, PlanError> {
    let (_, mut conflicts) = select_projects(projects, options)?;
    let (_, more) = plan_organizations(
        source_organizations,
        organization_links,
        destination_organizations,
        options,
        &projects.destination.slug,
    );
    conflicts.extend(more);
    Ok(conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{DestinationAccount, Problem};
    use proptest::prelude::*;

    const EMAILS: [&str; 5] = ["ann@a.test", "bo@a.test", "cy@b.test", "dee@b.test", "eve@c.test"];

    fn site(id: i64, slug: &str) -> Site {
        Site { id, slug: slug.to_owned(), org: "org".to_owned() }
    }

    /// One email's accounts: the source's (portal-only, Atlassian) and the
    /// destination's (portal-only, site user), each with its flags.
    #[derive(Debug, Clone)]
    struct EmailCase {
        source_portal: Option<(bool, bool)>,
        source_atlassian: Option<(bool, bool)>,
        destination_portal: Option<bool>,
        destination_atlassian: Option<(bool, bool)>,
        /// The destination portal-only account's id as snapshots name it
        /// is the source's (a collision new accounts must step around).
        same_ext_id: bool,
    }

    fn flags() -> impl Strategy<Value = (bool, bool)> {
        (any::<bool>(), any::<bool>())
    }

    fn email_case() -> impl Strategy<Value = EmailCase> {
        (
            proptest::option::of(flags()),
            proptest::option::of(flags()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(flags()),
            any::<bool>(),
        )
            .prop_map(
                |(source_portal, source_atlassian, destination_portal, destination_atlassian, same_ext_id)| EmailCase {
                    source_portal,
                    source_atlassian,
                    destination_portal,
                    destination_atlassian,
                    same_ext_id,
                },
            )
    }

    /// Facts for a copy from `eu` (site 1) to `us` (site 2) of the cases'
    /// accounts, with a destination group already named like the imported
    /// group when `group_taken`.
    fn facts(cases: &[EmailCase], group_taken: bool) -> PlanFacts {
        let mut facts = PlanFacts::default();
        facts.projects.source = site(1, "eu");
        facts.projects.destination = site(2, "us");
        facts.projects.source_projects = vec![SourceProject { id: 1, key: "HELP".into(), name: "Help".into() }];
        let mut next_source = 1;
        let mut next_destination = 1000;
        for (case, email) in cases.iter().zip(EMAILS) {
            for (kind, flags) in
                [(AccountType::PortalOnly, case.source_portal), (AccountType::Atlassian, case.source_atlassian)]
            {
                let Some((active, email_verified)) = flags else { continue };
                facts.customers.push(ScopedCustomer {
                    customer: SourceCustomer {
                        account_id: next_source,
                        kind,
                        email: email.to_uppercase(),
                        email_key: email.to_owned(),
                        active,
                        email_verified,
                    },
                    ext_id: format!("qm:{next_source}"),
                });
                next_source += 1;
            }
            if let Some(active) = case.destination_portal {
                let account = DestinationAccount { account_id: next_destination, active, email_verified: true };
                let ext =
                    if case.same_ext_id { format!("qm:{}", next_source - 1) } else { format!("d:{next_destination}") };
                facts.destination.ext_ids.insert(next_destination, ext);
                facts.destination.index.portal_by_email.insert(email.to_owned(), account);
                next_destination += 1;
            }
            if let Some((active, email_verified)) = case.destination_atlassian {
                let account = DestinationAccount { account_id: next_destination, active, email_verified };
                facts.destination.ext_ids.insert(next_destination, format!("d:{next_destination}"));
                facts.destination.index.atlassian_by_email.insert(email.to_owned(), account);
                next_destination += 1;
            }
        }
        if group_taken {
            facts.destination.group_keys.insert("customers-from-eu".to_owned());
        }
        facts
    }

    /// The destination after `plan` is applied: new portal-only accounts,
    /// new site users and the links a run records.
    fn applied(mut facts: PlanFacts, plan: &CopyPlan) -> PlanFacts {
        let mut next = 5000;
        for c in &plan.customers {
            let destination = &mut facts.destination;
            let target = match c.decision.target {
                Target::Existing(id) => id,
                Target::NewPortalOnly => {
                    next += 1;
                    let account =
                        DestinationAccount { account_id: next, active: c.customer.active, email_verified: true };
                    destination.index.portal_by_email.insert(c.customer.email_key.clone(), account);
                    destination.ext_ids.insert(next, c.new_ext_id.clone().unwrap_or_default());
                    next
                }
            };
            if c.adds_site_user {
                let account = DestinationAccount {
                    account_id: c.customer.account_id,
                    active: c.customer.active,
                    email_verified: c.customer.email_verified,
                };
                destination.index.atlassian_by_email.insert(c.customer.email_key.clone(), account);
                destination.ext_ids.insert(c.customer.account_id, c.ext_id.clone());
            }
            destination.index.linked.insert(c.customer.account_id, target);
        }
        if let Some(name) = &plan.group_name {
            facts.destination.group_keys.insert(crate::model::name_key(name));
        }
        facts
    }

    proptest! {
        #[test]
        fn plans_keep_their_promises(cases in proptest::collection::vec(email_case(), 1..=5), group_taken in any::<bool>()) {
            let options = CopyOptions::between("eu", "us");
            let facts = facts(&cases, group_taken);
            let first = plan(facts.clone(), &options).unwrap();

            // Check == run: the same facts give the same plan, and the
            // conflicts a check reports are the run's.
            prop_assert_eq!(&plan(facts.clone(), &options).unwrap(), &first);
            let checked = conflicts(&facts.projects, &facts.source_organizations, &facts.organization_links, &facts.destination.organizations, &options).unwrap();
            prop_assert_eq!(&checked, &first.conflicts);

            // Every source customer once, in email order.
            prop_assert_eq!(first.customers.len(), facts.customers.len());
            prop_assert!(first.customers.windows(2).all(|w| w[0].customer.email_key <= w[1].customer.email_key));

            // One way in, never two: a customer who reaches the destination
            // as an Atlassian account through the imported group is never
            // put on a customer list, and the group exists exactly when
            // someone joins it.
            for c in &first.customers {
                let via_site_user = matches!(c.decision.target, Target::Existing(id)
                    if facts.destination.index.atlassian_by_email.values().any(|a| a.account_id == id));
                if c.via_group {
                    prop_assert!(via_site_user, "{c:?}");
                    prop_assert_eq!(c.customer.kind, AccountType::PortalOnly);
                }
                if c.customer.kind == AccountType::PortalOnly && !c.via_group {
                    prop_assert!(!via_site_user, "a portal-only customer on a list of a site user's: {c:?}");
                }
                // Never linked by email to an unverified Atlassian account.
                if let Some(atlassian) = facts.destination.index.atlassian_by_email.get(&c.customer.email_key)
                    && !atlassian.email_verified
                    && c.customer.kind == AccountType::PortalOnly
                {
                    prop_assert_ne!(c.decision.target, Target::Existing(atlassian.account_id));
                }
                prop_assert_eq!(c.new_ext_id.is_some(), c.decision.target == Target::NewPortalOnly);
            }
            prop_assert_eq!(first.group_name.is_some(), first.customers.iter().any(|c| c.decision.joins_imported_group()));
            if let Some(name) = &first.group_name {
                prop_assert_eq!(name, if group_taken { "customers-from-eu-2" } else { "customers-from-eu" });
            }

            // New accounts' ids are unique and taken by nobody on the
            // destination.
            let new_ids: Vec<&String> = first.customers.iter().filter_map(|c| c.new_ext_id.as_ref()).collect();
            let unique: HashSet<&String> = new_ids.iter().copied().collect();
            prop_assert_eq!(unique.len(), new_ids.len());
            prop_assert!(new_ids.iter().all(|id| !facts.destination.ext_ids.values().any(|taken| taken == *id)));

            // A re-run over what the run wrote changes nothing, and every
            // customer keeps the way in the first run gave them.
            let after = applied(facts, &first);
            let second = plan(after, &options).unwrap();
            prop_assert_eq!(second.customers.len(), first.customers.len());
            for (one, two) in first.customers.iter().zip(&second.customers) {
                prop_assert_eq!(two.decision.outcome, Outcome::AlreadyCopied);
                prop_assert!(two.decision.problems.is_empty());
                prop_assert!(two.new_ext_id.is_none() && !two.adds_site_user);
                prop_assert_eq!(one.via_group, two.via_group, "{:?}", one);
                prop_assert_eq!(two.decision.target, match one.decision.target {
                    Target::Existing(id) => Target::Existing(id),
                    Target::NewPortalOnly => two.decision.target,
                });
            }
            prop_assert_eq!(second.group_name, None);
        }
    }

    #[test]
    fn a_site_onto_itself_and_unknown_projects_are_refused() {
        let mut facts = facts(&[], false);
        let mut options = CopyOptions::between("eu", "us");
        options.projects = Some(vec!["NOPE".into()]);
        assert!(matches!(select_projects(&facts.projects, &options), Err(PlanError::NotFound(_))));
        options.projects = Some(vec!["bad key".into()]);
        assert!(matches!(select_projects(&facts.projects, &options), Err(PlanError::Invalid(_))));
        options.projects = None;
        options.renames.insert("OTHER".into(), "NEW".into());
        assert!(matches!(select_projects(&facts.projects, &options), Err(PlanError::Conflict(_))));
        facts.projects.destination = facts.projects.source.clone();
        let same = CopyOptions::between("eu", "eu");
        assert!(matches!(plan(facts, &same), Err(PlanError::Conflict(_))));
    }

    #[test]
    fn a_taken_project_key_and_a_differing_organization_block() {
        let mut facts = facts(&[], false);
        facts.projects.destination_keys.insert("HELP".into());
        facts.source_organizations.insert(7, ("acme".into(), HashSet::from(["ann@a.test".to_owned()])));
        facts.destination.organizations.insert(9, ("acme".into(), HashSet::from(["bo@a.test".to_owned()])));
        let mut options = CopyOptions::between("eu", "us");
        let blocked = plan(facts.clone(), &options).unwrap();
        let kinds: Vec<&str> = blocked.conflicts.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, ["project", "organization"]);
        assert_eq!(blocked.conflicts[0].resolution, "Rename it: --rename HELP=<NEW KEY>");
        options.renames.insert("HELP".into(), "HELP2".into());
        options.organizations = OrganizationMode::Merge;
        let clear = plan(facts, &options).unwrap();
        assert_eq!(clear.conflicts, []);
        assert_eq!(clear.projects[0].destination_key, "HELP2");
        assert_eq!(clear.organizations[0].existing, Some(9));
    }

    #[test]
    fn a_link_to_an_upgraded_account_follows_the_merge_and_leaves_the_group() {
        let case = EmailCase {
            source_portal: Some((true, true)),
            source_atlassian: None,
            destination_portal: None,
            destination_atlassian: Some((true, true)),
            same_ext_id: false,
        };
        let mut facts = facts(&[case], false);
        // Copied earlier as portal-only account 900, since merged into the
        // site user 1000.
        facts.destination.index.linked.insert(1, 900);
        facts.destination.merged_into.insert(900, 1000);
        let planned = plan(facts, &CopyOptions::between("eu", "us")).unwrap();
        let c = &planned.customers[0];
        assert_eq!(c.decision.outcome, Outcome::AlreadyCopied);
        assert_eq!(c.decision.target, Target::Existing(1000));
        assert!(!c.via_group, "its access moved with the upgrade, not through the group");
    }

    #[test]
    fn both_types_on_the_source_show_both_after_copying() {
        let case = EmailCase {
            source_portal: Some((true, true)),
            source_atlassian: Some((true, true)),
            destination_portal: None,
            destination_atlassian: None,
            same_ext_id: false,
        };
        let planned = plan(facts(&[case], false), &CopyOptions::between("eu", "us")).unwrap();
        assert!(planned.customers.iter().all(|c| c.decision.after == TypesHeld::Both));
        assert_eq!(
            planned.customers.iter().filter(|c| c.decision.problems.contains(&Problem::DuplicateAccounts)).count(),
            0
        );
    }

    #[test]
    fn new_accounts_step_around_taken_ids() {
        let mut taken: FxHashSet<String> = ["qm:1".to_owned(), "qm:1-eu".to_owned()].into_iter().collect();
        assert_eq!(new_ext_id("qm:1", "eu", &mut taken), "qm:1-eu-3");
        assert_eq!(new_ext_id("qm:2", "eu", &mut taken), "qm:2");
        assert_eq!(new_ext_id("qm:2", "eu", &mut taken), "qm:2-eu");
    }

    #[test]
    fn imported_group_names_take_a_suffix_when_taken() {
        assert_eq!(imported_group_name("eu", |_| false), "customers-from-eu");
        let taken = ["customers-from-eu", "customers-from-eu-2"];
        assert_eq!(imported_group_name("eu", |n| taken.contains(&n)), "customers-from-eu-3");
    }
}
