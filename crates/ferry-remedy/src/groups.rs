//! Imported groups: list them with what approval would grant, approve or
//! decline them.

use ferry_core::model::GroupState;
use ferry_store::audit::{self, Action};
use ferry_store::sites::{self, Site};
use ferry_store::{Store, StoreError, Tx, Val};

use crate::RemedyError;

/// One group of a site as a reviewer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReview {
    pub name: String,
    pub state: GroupState,
    /// The copy run that imported the group; `None` for the site's own
    /// groups.
    pub run: Option<i64>,
    /// Members' emails, sorted by normalized email.
    pub members: Vec<String>,
    /// Members' display names, in the order of `members` (group members
    /// are Atlassian accounts: SPEC §1).
    pub member_names: Vec<String>,
    /// Keys of the projects whose Customer role the group holds (approval
    /// makes it effective), sorted.
    pub projects: Vec<String>,
    /// Requests that members can view only through this group: what they
    /// gain on approval (or hold through it, once approved).
    pub requests_gained: u64,
}

/// What a reviewer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupDecision {
    Approve,
    Decline,
}

impl GroupDecision {
    fn target(self) -> GroupState {
        match self {
            GroupDecision::Approve => GroupState::Active,
            GroupDecision::Decline => GroupState::Declined,
        }
    }

    fn action(self) -> &'static str {
        match self {
            GroupDecision::Approve => "group.approve",
            GroupDecision::Decline => "group.decline",
        }
    }
}

/// The groups of `site`, by name; with `pending_only`, those awaiting
/// review.
pub fn list_groups(store: &mut Store, site: &str, pending_only: bool) -> Result<Vec<GroupReview>, RemedyError> {
    store.read(|tx| {
        let site = sites::site(tx, site)?;
        let groups = tx.query_all(
            "SELECT id, name, state, created_by_run FROM groups WHERE site_id = $1 ORDER BY name_key",
            &[Val::I(site.id)],
            |r| Ok((r.int(0)?, r.text(1)?.to_owned(), r.parsed(2, "group state", GroupState::parse)?, r.opt_int(3)?)),
        )?;
        let mut reviews = Vec::new();
        for (id, name, state, run) in groups {
            if pending_only && state != GroupState::AwaitingReview {
                continue;
            }
            reviews.push(review(tx, id, name, state, run)?);
        }
        Ok(reviews)
    })
}

fn review(
    tx: &mut Tx<'_>,
    group_id: i64,
    name: String,
    state: GroupState,
    run: Option<i64>,
) -> Result<GroupReview, RemedyError> {
    let group = [Val::I(group_id)];
    let (members, member_names): (Vec<String>, Vec<String>) = tx
        .query_all(
            "SELECT a.email, a.display_name FROM group_members gm JOIN accounts a ON a.id = gm.account_id
             WHERE gm.group_id = $1 ORDER BY a.email_key, a.ext_id",
            &group,
            |r| Ok((r.text(0)?.to_owned(), r.text(1)?.to_owned())),
        )?
        .into_iter()
        .unzip();
    let projects = tx.query_all(
        "SELECT p.key FROM customer_roles cr JOIN projects p ON p.id = cr.project_id WHERE cr.group_id = $1 ORDER BY p.key",
        &group,
        |r| Ok(r.text(0)?.to_owned()),
    )?;
    // The access rule, asked for every member at once: requests a member
    // raised, takes part in or shares through an organization, in a project
    // whose role the group holds, that no customer list or other active
    // group already opens to that member.
    // What approval would change: nothing for a group already active.
    let requests_gained = if state.grants_customer_role() {
        0
    } else {
        tx.query_opt(
            &format!(
                "WITH related AS (
                 SELECT r.id AS request_id, r.project_id, gm.account_id FROM group_members gm
                 JOIN requests r ON r.reporter_id = gm.account_id WHERE gm.group_id = $1
                 UNION SELECT r.id, r.project_id, gm.account_id FROM group_members gm
                 JOIN request_participants rp ON rp.account_id = gm.account_id
                 JOIN requests r ON r.id = rp.request_id WHERE gm.group_id = $1
                 UNION SELECT r.id, r.project_id, gm.account_id FROM group_members gm
                 JOIN organization_members om ON om.account_id = gm.account_id
                 JOIN requests r ON r.organization_id = om.organization_id WHERE gm.group_id = $1
             )
             SELECT COUNT(DISTINCT x.request_id) FROM related x
             JOIN customer_roles cr ON cr.group_id = $1 AND cr.project_id = x.project_id
             JOIN accounts a ON a.id = x.account_id
             WHERE a.active
               AND NOT EXISTS (SELECT 1 FROM project_customers pc
                               WHERE pc.project_id = x.project_id AND pc.account_id = x.account_id)
               AND NOT EXISTS (SELECT 1 FROM customer_roles cr2
                               JOIN groups g2 ON g2.id = cr2.group_id AND {granting} AND g2.id <> $1
                               JOIN group_members gm2 ON gm2.group_id = g2.id
                               WHERE cr2.project_id = x.project_id AND gm2.account_id = x.account_id)",
                granting = GroupState::grants_customer_role_sql("g2.state")
            ),
            &group,
            |r| r.int(0),
        )?
        .unwrap_or(0) as u64
    };
    Ok(GroupReview { name, state, run, members, member_names, projects, requests_gained })
}

/// Approves or declines imported group `name` of `site`. Returns the group
/// as it stands after, and whether anything changed: deciding what is
/// already decided changes nothing and is not logged again.
pub fn decide_group(
    store: &mut Store,
    site: &str,
    name: &str,
    decision: GroupDecision,
) -> Result<(GroupReview, bool), RemedyError> {
    let actor = store.actor().to_owned();
    store.write(|tx| {
        let site: Site = sites::site(tx, site)?;
        let found = tx.query_opt(
            "SELECT id, name, state, created_by_run FROM groups WHERE site_id = $1 AND name_key = $2",
            &[Val::I(site.id), Val::T(&ferry_core::model::name_key(name))],
            |r| Ok((r.int(0)?, r.text(1)?.to_owned(), r.parsed(2, "group state", GroupState::parse)?, r.opt_int(3)?)),
        )?;
        let Some((group_id, name, before, run)) = found else {
            return Err(RemedyError::Store(StoreError::NotFound(format!(
                "site {} has no group named {name:?}; `ferry group list {}` lists its groups",
                site.slug, site.slug
            ))));
        };
        // A group a run imported, or one that arrived awaiting review or
        // declined in a snapshot (exported from a site where a run had
        // imported it); the site's own active groups are not reviewed here.
        if run.is_none() && before == GroupState::Active {
            return Err(RemedyError::Store(StoreError::Conflict(format!(
                "group {name} on site {} is not an imported group: only groups a copy run imported are reviewed here",
                site.slug
            ))));
        }
        let after = decision.target();
        let changed = before != after;
        if changed {
            let group = Val::I(group_id);
            tx.execute("UPDATE groups SET state = $2 WHERE id = $1", &[group, Val::T(after.as_str())])?;
            // The group's roles are stamped anew: whom they reach changed,
            // and a later copy from this site reads a changed role as an
            // arrival of every member.
            let stamp = Val::I(tx.stamp()?);
            tx.execute("UPDATE customer_roles SET seq = $2 WHERE group_id = $1", &[group, stamp])?;
            if let (GroupDecision::Approve, Some(run)) = (decision, run) {
                // The Customer role of every project the run copied.
                tx.execute(
                    "INSERT INTO customer_roles (project_id, group_id, seq)
                     SELECT cp.destination_project_id, CAST($1 AS BIGINT), CAST($3 AS BIGINT) FROM copy_projects cp
                     WHERE cp.run_id = $2 AND NOT EXISTS (SELECT 1 FROM customer_roles cr
                         WHERE cr.project_id = cp.destination_project_id AND cr.group_id = $1)",
                    &[group, Val::I(run), stamp],
                )?;
            }
            let review = review(tx, group_id, name.clone(), after, run)?;
            let state_json = |s: GroupState, review: Option<&GroupReview>| {
                let mut v = serde_json::json!({ "state": s.as_str(), "run": run });
                if let Some(review) = review {
                    v["members"] = review.members.len().into();
                    v["projects"] = review.projects.clone().into();
                }
                v.to_string()
            };
            audit::record(
                tx,
                Action {
                    actor: &actor,
                    action: decision.action(),
                    site_id: Some(site.id),
                    target: &name,
                    before: Some(&state_json(before, None)),
                    after: Some(&state_json(after, Some(&review))),
                },
            )?;
            Ok((review, true))
        } else {
            Ok((review(tx, group_id, name, before, run)?, false))
        }
    })
}

/// Imported groups awaiting review, as (site, group), by site then name:
/// what the console's `N imported groups need review` banner counts.
pub fn pending_groups(store: &mut Store) -> Result<Vec<(String, String)>, RemedyError> {
    Ok(store.read(|tx| {
        tx.query_all(
            "SELECT s.slug, g.name FROM groups g JOIN sites s ON s.id = g.site_id
             WHERE g.state = $1 ORDER BY s.slug, g.name_key",
            &[Val::T(GroupState::AwaitingReview.as_str())],
            |r| Ok((r.text(0)?.to_owned(), r.text(1)?.to_owned())),
        )
    })?)
}
