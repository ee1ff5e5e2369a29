//! One chunk of a phase: accounts (new accounts, site users, links), the
//! structure (projects, customer lists, organizations, the imported group)
//! and the maps every phase after the accounts reads the decisions through.

#[allow(unused_imports)]
use super::*;

/// One chunk of the current phase, in the caller's transaction.
pub(super) fn apply_step(
    tx: &mut Tx<'_>,
    run_id: i64,
    row: &RunRow,
    maps: Option<&RunMaps>,
    progress: &mut dyn Progress,
    prefetched: Option<ReadAhead<Prefetched>>,
    lists: Option<ReadAhead<SourceLists>>,
) -> Result<(), CopyError> {
    tx.lock_for_writing_ids()?;
    let now = load_run(tx, run_id)?;
    if now.state != RunState::Applying || (now.phase, now.cursor) != (row.phase, row.cursor) {
        return Ok(()); // applied by another process meanwhile, or rolled back
    }
    // Each phase joins what the one before it wrote: the planner's
    // statistics are taken again, unless the run is a re-run adding little
    // (they describe the tables as well as before, and taking them costs
    // about 0.5 s a phase at a million rows).
    if row.cursor == 0 && !small_rerun(tx, run_id)? {
        tx.analyze(&[
            "accounts",
            "site_users",
            "copy_links",
            "copy_grants",
            "projects",
            "organizations",
            "project_customers",
            "organization_members",
            "requests",
            "request_participants",
            "comments",
        ])?;
    }
    let (run, s, d) = (Val::I(run_id), Val::I(row.source.id), Val::I(row.destination.id));
    match row.phase {
        Phase::Accounts => {
            let end = tx
                .query_opt(
                    "SELECT MAX(source_account_id) FROM (SELECT source_account_id FROM copy_customers
                     WHERE run_id = $1 AND source_account_id > $2 ORDER BY source_account_id LIMIT $3) chunk",
                    &[run, Val::I(row.cursor), Val::I(chunk(ACCOUNT_CHUNK))],
                    |r| r.opt_int(0),
                )?
                .flatten();
            let Some(end) = end else {
                // Every account is written: the destination's duplicates
                // can be counted again. A run with no customers to decide
                // (a re-run with nothing new) changed no account.
                // A small re-run kept the count exact chunk by chunk.
                let unknown = accounts::counts(tx, row.destination.id)?.duplicates.is_none();
                if row.cursor > 0 && (unknown || !small_rerun(tx, run_id)?) {
                    accounts::recount(tx, row.destination.id)?;
                }
                set_cursor(tx, run_id, Phase::Structure, 0)?;
                return Ok(());
            };
            let range = [run, Val::I(row.cursor), Val::I(end), d, s];
            // The new accounts have the emails and names of source
            // accounts, whose search terms are indexed already.
            let portal_only = tx.execute(
                "INSERT INTO accounts (id, kind, site_id, ext_id, email, email_key, display_name, active, email_verified)
                 SELECT cc.destination_account_id, 'customer', CAST($4 AS BIGINT), cc.new_account_ext_id, a.email, a.email_key,
                        a.display_name, a.active, a.email_verified
                 FROM copy_customers cc JOIN accounts a ON a.id = cc.source_account_id
                 WHERE cc.run_id = $1 AND cc.source_account_id > $2 AND cc.source_account_id <= $3
                   AND cc.new_account_ext_id IS NOT NULL",
                &range[..4],
            )?;
            tx.execute(
                "INSERT INTO copy_grants (run_id, kind, a, b)
                 SELECT $1, 'site_user', CAST($4 AS BIGINT), cc.source_account_id FROM copy_customers cc
                 WHERE cc.run_id = $1 AND cc.source_account_id > $2 AND cc.source_account_id <= $3 AND cc.adds_site_user
                   AND NOT EXISTS (SELECT 1 FROM site_users su WHERE su.site_id = $4 AND su.account_id = cc.source_account_id)",
                &range[..4],
            )?;
            // As for every membership: the grants are exactly the new rows.
            let site_users = tx.execute(
                "INSERT INTO site_users (site_id, account_id)
                 SELECT a, b FROM copy_grants WHERE run_id = $1 AND kind = 'site_user' AND b > $2 AND b <= $3",
                &range[..3],
            )?;
            // A small re-run counts the emails its chunk gave both types
            // (O(chunk)); otherwise the count is taken again at the end.
            let duplicates = if small_rerun(tx, run_id)? { Some(new_duplicates(tx, &range[..4])?) } else { None };
            let change = accounts::CountChange {
                portal_only: i64::try_from(portal_only).unwrap_or(i64::MAX),
                atlassian: i64::try_from(site_users).unwrap_or(i64::MAX),
                duplicates,
            };
            accounts::change_counts(tx, row.destination.id, change)?;
            tx.execute(
                "INSERT INTO copy_links (source_site_id, destination_site_id, kind, source_id, destination_id, run_id)
                 SELECT CAST($5 AS BIGINT), CAST($4 AS BIGINT), 'account', cc.source_account_id, cc.destination_account_id, CAST($1 AS BIGINT) FROM copy_customers cc
                 WHERE cc.run_id = $1 AND cc.source_account_id > $2 AND cc.source_account_id <= $3 AND cc.outcome <> $6",
                &[range[0], range[1], range[2], range[3], range[4], Val::I(Outcome::AlreadyCopied.code())],
            )?;
            set_cursor(tx, run_id, Phase::Accounts, end)?;
            progress.step("accounts", end as u64, 0);
        }
        Phase::Structure => {
            let maps = maps.ok_or_else(|| CopyError::Invalid("the structure phase ran without its maps".to_owned()))?;
            let lists = match lists {
                Some(ahead) => ahead.fresh(tx)?,
                None => None,
            };
            apply_structure(tx, run_id, row, maps, lists)?;
            // Requests up to the earlier runs' watermark are copied: the
            // run starts above it, so a re-run reads only what is new.
            let start = run_watermarks(tx, run_id)?.requests;
            set_cursor(tx, run_id, Phase::Requests, start)?;
            progress.step("projects and memberships", 1, 1);
        }
        Phase::Requests => {
            // Read ahead by another connection when it read from this
            // cursor and nothing else was committed since.
            let ahead = match prefetched {
                Some(ahead) => ahead.fresh(tx)?,
                None => None,
            };
            let source = match ahead {
                Some(ahead) if ahead.from == row.cursor => ahead.chunk,
                _ => read_chunk(tx, run_id, row, row.cursor)?,
            };
            let Some(source) = source else {
                set_cursor(tx, run_id, Phase::Done, 0)?;
                return Ok(());
            };
            let end = source.to;
            let maps = maps.ok_or_else(|| CopyError::Invalid("the requests phase ran without its maps".to_owned()))?;
            let copied = copy_requests(tx, run_id, row, maps, &source)?;
            tx.execute(
                "UPDATE copy_runs SET requests_copied = requests_copied + $2 WHERE id = $1",
                &[Val::I(run_id), Val::I(copied as i64)],
            )?;
            set_cursor(tx, run_id, Phase::Requests, end)?;
            progress.step("requests", end as u64, row.source_request_limit as u64);
        }
        _ => {}
    }
    Ok(())
}

/// The customer-list entries and organization memberships of the run's
/// source projects and organizations, mapped through the run's decisions
/// to destination ids, sorted, without repeats. The source alone: another
/// connection may read them ahead. A re-run ([`Arrivals`]) reads only what
/// arrived since the earlier runs' mark; `delta` says so.
pub(crate) struct SourceLists {
    pub(super) customers: Vec<(i64, i64)>,
    pub(super) organization_members: Vec<(i64, i64)>,
    pub(super) delta: bool,
}

/// The memberships a run compares with the destination's, as SQL selecting
/// (destination owner, source account) with `$1` the run. A first copy
/// compares every one; a re-run (`Some(mark)`, with `$2` the mark) only
/// those that arrived above the mark, the lists and organizations it meets
/// for the first time, and the memberships of the customers it decides.
fn membership_sql(delta: bool) -> (String, String) {
    let granting = GroupState::grants_customer_role_sql("g.state");
    // The Customer role on a source project: its customer list, and every
    // member of a group holding the role there, unless the group is an
    // imported group awaiting review or declined (its members have no
    // access on the source, so get none here).
    let roles = format!(
        "SELECT cp.destination_project_id, gm.account_id FROM copy_projects cp
             JOIN customer_roles cr ON cr.project_id = cp.source_project_id
             JOIN groups g ON g.id = cr.group_id AND {granting}
             JOIN group_members gm ON gm.group_id = cr.group_id"
    );
    if !delta {
        return (
            format!(
                "SELECT cp.destination_project_id, pc.account_id FROM copy_projects cp
                 JOIN project_customers pc ON pc.project_id = cp.source_project_id WHERE cp.run_id = $1
                 UNION ALL {roles} WHERE cp.run_id = $1"
            ),
            "SELECT co.destination_organization_id, m.account_id FROM copy_organizations co
             JOIN organization_members m ON m.organization_id = co.source_organization_id WHERE co.run_id = $1"
                .to_owned(),
        );
    }
    (
        format!(
            "SELECT cp.destination_project_id, pc.account_id FROM copy_projects cp
             JOIN project_customers pc ON pc.project_id = cp.source_project_id AND pc.seq > $2 WHERE cp.run_id = $1
             UNION ALL {roles} AND gm.seq > $2 WHERE cp.run_id = $1
             UNION ALL {roles} WHERE cp.run_id = $1 AND cr.seq > $2
             UNION ALL
             SELECT cp.destination_project_id, pc.account_id FROM copy_customers cc
             JOIN copy_projects cp ON cp.run_id = cc.run_id
             JOIN project_customers pc ON pc.project_id = cp.source_project_id AND pc.account_id = cc.source_account_id
             WHERE cc.run_id = $1
             UNION ALL
             SELECT cp.destination_project_id, gm.account_id FROM copy_customers cc
             JOIN group_members gm ON gm.account_id = cc.source_account_id
             JOIN customer_roles cr ON cr.group_id = gm.group_id
             JOIN copy_projects cp ON cp.run_id = cc.run_id AND cp.source_project_id = cr.project_id
             JOIN groups g ON g.id = gm.group_id AND {granting}
             WHERE cc.run_id = $1"
        ),
        // An organization no earlier run created is compared whole.
        "SELECT co.destination_organization_id, m.account_id FROM copy_organizations co
         JOIN organization_members m ON m.organization_id = co.source_organization_id AND m.seq > $2
         WHERE co.run_id = $1
         UNION ALL
         SELECT co.destination_organization_id, m.account_id FROM copy_organizations co
         JOIN copy_runs r ON r.id = co.run_id
         JOIN organization_members m ON m.organization_id = co.source_organization_id
         WHERE co.run_id = $1 AND NOT EXISTS (SELECT 1 FROM copy_links l
             WHERE l.source_site_id = r.source_site_id AND l.destination_site_id = r.destination_site_id
             AND l.kind = 'organization' AND l.source_id = co.source_organization_id AND l.run_id <> co.run_id)
         UNION ALL
         SELECT co.destination_organization_id, m.account_id FROM copy_customers cc
         JOIN organization_members m ON m.account_id = cc.source_account_id
         JOIN copy_organizations co ON co.run_id = cc.run_id AND co.source_organization_id = m.organization_id
         WHERE cc.run_id = $1"
            .to_owned(),
    )
}

/// The emails of the destination that the accounts chunk `range` (run,
/// after, through, destination site) gave both a portal-only account and a
/// site user: pairs whose portal-only account is new, plus pairs whose
/// site user is new, less those where both are (counted twice).
fn new_duplicates(tx: &mut Tx<'_>, range: &[Val<'_>]) -> Result<i64, StoreError> {
    let new_portal = "SELECT p.email_key FROM copy_customers cc JOIN accounts p ON p.id = cc.destination_account_id
         WHERE cc.run_id = $1 AND cc.source_account_id > $2 AND cc.source_account_id <= $3
           AND cc.new_account_ext_id IS NOT NULL";
    let new_site_users = "SELECT b.email_key FROM copy_grants g JOIN accounts b ON b.id = g.b
         WHERE g.run_id = $1 AND g.kind = 'site_user' AND g.b > $2 AND g.b <= $3";
    let count = tx
        .query_opt(
            &format!(
                "SELECT
                   (SELECT COUNT(*) FROM ({new_portal}) n WHERE EXISTS (SELECT 1 FROM accounts b
                      JOIN site_users su ON su.site_id = $4 AND su.account_id = b.id
                      WHERE b.site_id IS NULL AND b.email_key = n.email_key))
                 + (SELECT COUNT(*) FROM ({new_site_users}) n WHERE EXISTS (SELECT 1 FROM accounts p
                      WHERE p.site_id = $4 AND p.merged_into IS NULL AND p.email_key = n.email_key))
                 - (SELECT COUNT(*) FROM ({new_portal}) n WHERE n.email_key IN ({new_site_users}))"
            ),
            range,
            |r| r.int(0),
        )?
        .unwrap_or(0);
    Ok(count)
}

/// A re-run (earlier runs compared the memberships) deciding fewer than
/// 100,000 customers.
fn small_rerun(tx: &mut Tx<'_>, run_id: i64) -> Result<bool, StoreError> {
    if arrivals(tx, run_id)?.is_none() {
        return Ok(false);
    }
    let decided = tx
        .query_opt(
            "SELECT COUNT(*) FROM (SELECT 1 FROM copy_customers WHERE run_id = $1 LIMIT 100000) decided",
            &[Val::I(run_id)],
            |r| r.int(0),
        )?
        .unwrap_or(0);
    Ok(decided < 100_000)
}

/// A re-run's membership mark: memberships stamped up to it were compared
/// by earlier runs between the run's two sites; `None` for a first copy
/// (or runs from before memberships were stamped).
pub(super) fn arrivals(tx: &mut Tx<'_>, run_id: i64) -> Result<Option<i64>, StoreError> {
    let marks = run_watermarks(tx, run_id)?;
    Ok((marks.memberships > 0).then_some(marks.memberships))
}

/// The watermarks of the run's projects (see [`crate::load::watermarks`]).
fn run_watermarks(tx: &mut Tx<'_>, run_id: i64) -> Result<crate::load::Watermarks, StoreError> {
    let Some((source, destination)) = tx.query_opt(
        "SELECT source_site_id, destination_site_id FROM copy_runs WHERE id = $1",
        &[Val::I(run_id)],
        |r| Ok((r.int(0)?, r.int(1)?)),
    )?
    else {
        return Ok(crate::load::Watermarks::default());
    };
    let projects =
        tx.query_all("SELECT source_project_id FROM copy_projects WHERE run_id = $1", &[Val::I(run_id)], |r| r.int(0))?;
    crate::load::watermarks(tx, source, destination, &projects)
}

/// Reads the (owner, source account) pairs of `sql` and hands each to `each`.
fn each_membership(
    tx: &mut Tx<'_>,
    run_id: i64,
    arrivals: Option<i64>,
    sql: &str,
    mut each: impl FnMut(i64, i64),
) -> Result<(), StoreError> {
    let params: Vec<Val<'_>> = match arrivals {
        Some(mark) => vec![Val::I(run_id), Val::I(mark)],
        None => vec![Val::I(run_id)],
    };
    tx.query_each(sql, &params, |r| {
        each(r.int(0)?, r.int(1)?);
        Ok(())
    })
}

pub(super) fn read_source_lists(tx: &mut Tx<'_>, run_id: i64, maps: &RunMaps) -> Result<SourceLists, StoreError> {
    let arrivals = arrivals(tx, run_id)?;
    let (customers_sql, members_sql) = membership_sql(arrivals.is_some());
    let mut read = |customer_list: bool, sql: &str| -> Result<Vec<(i64, i64)>, StoreError> {
        let mut pairs: Vec<(i64, i64)> = Vec::new();
        each_membership(tx, run_id, arrivals, sql, |owner, account| {
            // Portal-only customers that became Atlassian accounts reach
            // the projects through the imported group, never a list.
            let skip = customer_list && maps.via_group.contains(&account);
            if let (Some(to), false) = (maps.accounts.get(account), skip) {
                pairs.push((owner, to));
            }
        })?;
        pairs.sort_unstable();
        pairs.dedup();
        // Held until the memberships phase: not the room it grew into
        // (16.8 million places for 8.8 million pairs at 10,000,000).
        pairs.shrink_to_fit();
        Ok(pairs)
    };
    Ok(SourceLists {
        customers: read(true, &customers_sql)?,
        organization_members: read(false, &members_sql)?,
        delta: arrivals.is_some(),
    })
}

/// Which of `pairs` (sorted) `table` holds, looked up by key, sorted: a
/// re-run compares its few candidates, not the destination's every
/// membership.
fn held_pairs(
    tx: &mut Tx<'_>,
    table: &str,
    columns: (&str, &str),
    pairs: &[(i64, i64)],
) -> Result<Vec<(i64, i64)>, StoreError> {
    let mut held = Vec::new();
    for chunk in pairs.chunks(500) {
        let values: Vec<String> = chunk.iter().map(|(a, b)| format!("({a}, {b})")).collect();
        tx.query_each(
            &format!(
                "SELECT {a}, {b} FROM {table} WHERE ({a}, {b}) IN (VALUES {values})",
                a = columns.0,
                b = columns.1,
                values = values.join(", ")
            ),
            &[],
            |r| {
                held.push((r.int(0)?, r.int(1)?));
                Ok(())
            },
        )?;
    }
    held.sort_unstable();
    Ok(held)
}

pub(super) fn apply_structure(
    tx: &mut Tx<'_>,
    run_id: i64,
    row: &RunRow,
    maps: &RunMaps,
    lists: Option<SourceLists>,
) -> Result<(), CopyError> {
    let (run, s, d) = (Val::I(run_id), Val::I(row.source.id), Val::I(row.destination.id));
    let stamp = tx.stamp()?;
    tx.execute(
        "INSERT INTO projects (id, site_id, key, name)
         SELECT cp.destination_project_id, CAST($2 AS BIGINT), cp.destination_key, p.name
         FROM copy_projects cp JOIN projects p ON p.id = cp.source_project_id WHERE cp.run_id = $1 AND cp.created",
        &[run, d],
    )?;
    tx.execute(
        "INSERT INTO organizations (id, site_id, name)
         SELECT co.destination_organization_id, CAST($2 AS BIGINT), co.name FROM copy_organizations co WHERE co.run_id = $1 AND co.created",
        &[run, d],
    )?;
    for (kind, table, source_column, destination_column) in [
        ("project", "copy_projects", "source_project_id", "destination_project_id"),
        ("organization", "copy_organizations", "source_organization_id", "destination_organization_id"),
    ] {
        tx.execute(
            &format!(
                "INSERT INTO copy_links (source_site_id, destination_site_id, kind, source_id, destination_id, run_id)
                 SELECT CAST($2 AS BIGINT), CAST($3 AS BIGINT), '{kind}', {source_column}, {destination_column}, CAST($1 AS BIGINT) FROM {table} WHERE run_id = $1 AND created"
            ),
            &[run, s, d],
        )?;
    }
    // Memberships: record exactly the new ones as grants, then add them.
    // Customer lists and organization members (a million rows at scale)
    // are mapped in memory through the run's decisions and written in key
    // order; organizations' projects are few.
    let lists = match lists {
        Some(lists) => lists,
        None => read_source_lists(tx, run_id, maps)?,
    };
    for (kind, spec, owner, existing_sql, mut pairs) in [
        (
            "customer",
            &PROJECT_CUSTOMERS,
            "project_id",
            "SELECT pc.project_id, pc.account_id FROM copy_projects cp
             JOIN project_customers pc ON pc.project_id = cp.destination_project_id WHERE cp.run_id = $1",
            lists.customers,
        ),
        (
            "organization_member",
            &ORGANIZATION_MEMBERS,
            "organization_id",
            "SELECT m.organization_id, m.account_id FROM copy_organizations co
             JOIN organization_members m ON m.organization_id = co.destination_organization_id WHERE co.run_id = $1",
            lists.organization_members,
        ),
    ] {
        // What the destination already holds is read here, in the writer's
        // transaction: a re-run's few candidates by key, a first copy's
        // every pair at once.
        // Sorted, as the pairs are: 16 bytes a pair, where a hash set of
        // the destination's memberships took twice that and more.
        let existing = if lists.delta {
            held_pairs(tx, spec.table, (owner, "account_id"), &pairs)?
        } else {
            let mut existing = Vec::new();
            tx.query_each(existing_sql, &[run], |r| {
                existing.push((r.int(0)?, r.int(1)?));
                Ok(())
            })?;
            existing.sort_unstable();
            existing
        };
        pairs.retain(|pair| existing.binary_search(pair).is_err());
        drop(existing);
        write_memberships(tx, run_id, kind, spec, stamp, &pairs)?;
    }
    tx.execute(
        "INSERT INTO copy_grants (run_id, kind, a, b)
         SELECT DISTINCT CAST($1 AS BIGINT), 'organization_project', co.destination_organization_id, cp.destination_project_id
         FROM organization_projects op
         JOIN copy_organizations co ON co.run_id = $1 AND co.source_organization_id = op.organization_id
         JOIN copy_projects cp ON cp.run_id = $1 AND cp.source_project_id = op.project_id
         WHERE NOT EXISTS (SELECT 1 FROM organization_projects t
                           WHERE t.organization_id = co.destination_organization_id AND t.project_id = cp.destination_project_id)",
        &[run],
    )?;
    tx.execute(
        "INSERT INTO organization_projects (organization_id, project_id)
         SELECT a, b FROM copy_grants WHERE run_id = $1 AND kind = 'organization_project'",
        &[run],
    )?;
    // The imported group: awaiting review, holding the Customer role of the
    // run's projects, so its members gain access only once approved.
    if let Some(group_id) = row.group_id {
        let name = tx
            .query_opt("SELECT group_name FROM copy_runs WHERE id = $1", &[run], |r| {
                Ok(r.opt_text(0)?.map(str::to_owned))
            })?
            .flatten()
            .unwrap_or_default();
        tx.execute(
            "INSERT INTO groups (id, site_id, name, name_key, state, created_by_run) VALUES ($1, $2, $3, $4, $6, $5)",
            &[
                Val::I(group_id),
                d,
                Val::T(&name),
                Val::T(&ferry_core::model::name_key(&name)),
                run,
                Val::T(GroupState::AwaitingReview.as_str()),
            ],
        )?;
        tx.execute(
            "INSERT INTO group_members (group_id, account_id, seq)
             SELECT DISTINCT CAST($2 AS BIGINT), destination_account_id, CAST($4 AS BIGINT) FROM copy_customers
             WHERE run_id = $1 AND outcome = $3",
            &[run, Val::I(group_id), Val::I(Outcome::MatchedAtlassian.code()), Val::I(stamp)],
        )?;
        tx.execute(
            "INSERT INTO customer_roles (project_id, group_id, seq)
             SELECT destination_project_id, CAST($2 AS BIGINT), CAST($3 AS BIGINT) FROM copy_projects WHERE run_id = $1",
            &[run, Val::I(group_id), Val::I(stamp)],
        )?;
    }
    Ok(())
}

/// Memberships written per batch: a run's whole lists (tens of millions of
/// rows at scale) are never held as rows, only as pairs. `FERRY_COPY_CHUNK`
/// overrides it, as it does the other chunks.
const MEMBERSHIP_BATCH: i64 = 65_536;

/// Records `pairs` (new memberships of kind `kind` into `spec`'s table) as
/// the run's grants and adds them, a batch at a time.
fn write_memberships(
    tx: &mut Tx<'_>,
    run_id: i64,
    kind: &str,
    spec: &'static TableSpec,
    stamp: i64,
    pairs: &[(i64, i64)],
) -> Result<(), StoreError> {
    let run = Val::I(run_id);
    let mut grant_writer = BulkWriter::new(&GRANTS);
    let mut member_writer = BulkWriter::new(spec);
    let batch = usize::try_from(chunk(MEMBERSHIP_BATCH)).unwrap_or(1);
    for chunk in pairs.chunks(batch) {
        let mut grants = RowBatch::with_capacity(&GRANTS, chunk.len(), kind.len());
        let mut members = RowBatch::with_capacity(spec, chunk.len(), 0);
        for &(a, b) in chunk {
            grants.push(&[run, Val::T(kind), Val::I(a), Val::I(b)]);
            members.push(&[Val::I(a), Val::I(b), Val::I(stamp)]);
        }
        grant_writer.write(tx, &grants)?;
        member_writer.write(tx, &members)?;
    }
    grant_writer.finish(tx)?;
    member_writer.finish(tx)?;
    Ok(())
}

pub(super) static REQUESTS: TableSpec = TableSpec {
    table: "requests",
    columns: &[
        "id",
        "site_id",
        "project_id",
        "number",
        "summary",
        "status",
        "created",
        "reporter_id",
        "organization_id",
        "copied_from",
    ],
    on_conflict: OnConflict::Fail,
};
pub(super) static REQUEST_LINKS: TableSpec = TableSpec {
    table: "copy_links",
    columns: &["source_site_id", "destination_site_id", "kind", "source_id", "destination_id", "run_id"],
    on_conflict: OnConflict::Fail,
};
pub(super) static GRANTS: TableSpec =
    TableSpec { table: "copy_grants", columns: &["run_id", "kind", "a", "b"], on_conflict: OnConflict::Fail };
pub(super) static PROJECT_CUSTOMERS: TableSpec = TableSpec {
    table: "project_customers",
    columns: &["project_id", "account_id", "seq"],
    on_conflict: OnConflict::Fail,
};
pub(super) static ORGANIZATION_MEMBERS: TableSpec = TableSpec {
    table: "organization_members",
    columns: &["organization_id", "account_id", "seq"],
    on_conflict: OnConflict::Fail,
};
pub(super) static PARTICIPANTS: TableSpec =
    TableSpec { table: "request_participants", columns: &["request_id", "account_id"], on_conflict: OnConflict::Fail };
pub(super) static COMMENTS: TableSpec = TableSpec {
    table: "comments",
    columns: &["request_id", "author_id", "created", "body"],
    on_conflict: OnConflict::Fail,
};

/// The run's decisions the structure and requests phases map source ids
/// through; they never change once written, so they are read once per
/// process.
pub(crate) struct RunMaps {
    pub(super) accounts: AccountMap,
    /// Source accounts whose access comes through the imported group.
    pub(super) via_group: FxHashSet<i64>,
    /// Source project -> (destination project, source key).
    pub(super) projects: FxHashMap<i64, (i64, String)>,
    pub(super) organizations: FxHashMap<i64, i64>,
}

/// The accounts earlier runs between the run's two sites copied (their
/// links; a re-run does not decide them again), as the run's own decisions
/// would map them: a destination account merged by an upgrade lives on as
/// the account it was merged into, and a portal-only source account linked
/// to a site user of the destination (case 3) reaches the projects through
/// the imported group, never a customer list. A first copy of a project
/// after earlier runs reads every link; a re-run only those of `needed`.
fn earlier_accounts(
    tx: &mut Tx<'_>,
    run_id: i64,
    needed: Option<&FxHashSet<i64>>,
    accounts: &mut AccountMap,
    via_group: &mut FxHashSet<i64>,
) -> Result<(), StoreError> {
    let Some((source, destination)) = tx.query_opt(
        "SELECT source_site_id, destination_site_id FROM copy_runs WHERE id = $1",
        &[Val::I(run_id)],
        |r| Ok((r.int(0)?, r.int(1)?)),
    )?
    else {
        return Ok(());
    };
    let pair = [Val::I(source), Val::I(destination), Val::I(run_id)];
    if let Some(needed) = needed {
        let mut ids: Vec<i64> = needed.iter().copied().collect();
        ids.sort_unstable();
        for chunk in ids.chunks(500) {
            tx.query_each(
                &format!(
                    "SELECT l.source_id, l.destination_id, CASE WHEN d.site_id = $2 THEN d.merged_into END,
                            COALESCE(s.site_id = $1, FALSE),
                            EXISTS (SELECT 1 FROM site_users su WHERE su.site_id = $2 AND su.account_id = l.destination_id)
                     FROM copy_links l JOIN accounts s ON s.id = l.source_id JOIN accounts d ON d.id = l.destination_id
                     WHERE l.source_site_id = $1 AND l.destination_site_id = $2 AND l.kind = 'account'
                       AND l.run_id <> $3 AND l.source_id IN ({})",
                    id_list(chunk)
                ),
                &pair,
                |r| {
                    let (from, to) = (r.int(0)?, r.int(1)?);
                    accounts.insert(from, r.opt_int(2)?.unwrap_or(to));
                    if r.bool(3)? && r.bool(4)? {
                        via_group.insert(from);
                    }
                    Ok(())
                },
            )?;
        }
        return Ok(());
    }
    let mut links: Vec<(i64, i64)> = Vec::new();
    tx.query_each(
        "SELECT source_id, destination_id FROM copy_links
         WHERE source_site_id = $1 AND destination_site_id = $2 AND kind = 'account' AND run_id <> $3",
        &pair,
        |r| {
            links.push((r.int(0)?, r.int(1)?));
            Ok(())
        },
    )?;
    if links.is_empty() {
        return Ok(());
    }
    let mut merged: FxHashMap<i64, i64> = FxHashMap::default();
    tx.query_each(
        "SELECT id, merged_into FROM accounts WHERE site_id = $1 AND merged_into IS NOT NULL",
        &[Val::I(destination)],
        |r| {
            merged.insert(r.int(0)?, r.int(1)?);
            Ok(())
        },
    )?;
    let mut site_users: FxHashSet<i64> = FxHashSet::default();
    tx.query_each("SELECT account_id FROM site_users WHERE site_id = $1", &[Val::I(destination)], |r| {
        site_users.insert(r.int(0)?);
        Ok(())
    })?;
    // Portal-only accounts belong to their site; Atlassian accounts to none.
    let mut portal: FxHashSet<i64> = FxHashSet::default();
    tx.query_each("SELECT id FROM accounts WHERE site_id = $1", &[Val::I(source)], |r| {
        portal.insert(r.int(0)?);
        Ok(())
    })?;
    for (from, to) in links {
        accounts.insert(from, merged.get(&to).copied().unwrap_or(to));
        if portal.contains(&from) && site_users.contains(&to) {
            via_group.insert(from);
        }
    }
    Ok(())
}

fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// The source accounts a re-run maps: those of the memberships it compares
/// and the people of the requests it copies (above the earlier runs'
/// watermark).
fn needed_accounts(tx: &mut Tx<'_>, run_id: i64, mark: i64) -> Result<FxHashSet<i64>, StoreError> {
    let mut needed = FxHashSet::default();
    let (customers_sql, members_sql) = membership_sql(true);
    for sql in [&customers_sql, &members_sql] {
        each_membership(tx, run_id, Some(mark), sql, |_, account| {
            needed.insert(account);
        })?;
    }
    let after = run_watermarks(tx, run_id)?.requests;
    for sql in [
        "SELECT r.reporter_id FROM copy_projects cp JOIN requests r ON r.project_id = cp.source_project_id
         WHERE cp.run_id = $1 AND r.id > $2",
        "SELECT rp.account_id FROM copy_projects cp JOIN requests r ON r.project_id = cp.source_project_id
         JOIN request_participants rp ON rp.request_id = r.id WHERE cp.run_id = $1 AND r.id > $2",
        "SELECT c.author_id FROM copy_projects cp JOIN requests r ON r.project_id = cp.source_project_id
         JOIN comments c ON c.request_id = r.id WHERE cp.run_id = $1 AND r.id > $2",
    ] {
        tx.query_each(sql, &[Val::I(run_id), Val::I(after)], |r| {
            needed.insert(r.int(0)?);
            Ok(())
        })?;
    }
    Ok(needed)
}

/// Source account -> destination account: one slot per id over the range of
/// the run's own decisions (ferry gives ids densely, so ten million
/// customers take 80 MB, not the gigabyte a hash map of them takes), and a
/// hash map for the accounts outside it (those of earlier runs).
pub(crate) struct AccountMap {
    low: i64,
    /// The destination account of `low + i`; 0 for none (ids start at 1).
    slots: Vec<i64>,
    rest: FxHashMap<i64, i64>,
}

impl AccountMap {
    /// A map with slots for `low..=high` when the range is at most four
    /// times the `count` ids expected in it; else a hash map only.
    fn over(low: i64, high: i64, count: i64) -> AccountMap {
        let width = high.saturating_sub(low).saturating_add(1);
        let slots = if count > 0 && width > 0 && width <= count.saturating_mul(4) {
            vec![0; usize::try_from(width).unwrap_or(0)]
        } else {
            Vec::new()
        };
        AccountMap { low, slots, rest: FxHashMap::default() }
    }

    fn slot(&self, from: i64) -> Option<usize> {
        usize::try_from(from.checked_sub(self.low)?).ok().filter(|&at| at < self.slots.len())
    }

    fn insert(&mut self, from: i64, to: i64) {
        match self.slot(from) {
            Some(at) if to > 0 => {
                self.slots[at] = to;
                self.rest.remove(&from);
            }
            _ => {
                self.rest.insert(from, to);
            }
        }
    }

    pub(super) fn get(&self, from: i64) -> Option<i64> {
        match self.slot(from) {
            Some(at) if self.slots[at] > 0 => Some(self.slots[at]),
            _ => self.rest.get(&from).copied(),
        }
    }
}

pub(super) fn load_run_maps(tx: &mut Tx<'_>, run_id: i64) -> Result<RunMaps, StoreError> {
    let run = [Val::I(run_id)];
    let (low, high, count) = tx
        .query_opt(
            "SELECT MIN(source_account_id), MAX(source_account_id), COUNT(*) FROM copy_customers WHERE run_id = $1",
            &run,
            |r| Ok((r.opt_int(0)?.unwrap_or(0), r.opt_int(1)?.unwrap_or(-1), r.int(2)?)),
        )?
        .unwrap_or((0, -1, 0));
    let mut accounts = AccountMap::over(low, high, count);
    let mut via_group = FxHashSet::default();
    let needed = match arrivals(tx, run_id)? {
        Some(mark) => Some(needed_accounts(tx, run_id, mark)?),
        None => None,
    };
    earlier_accounts(tx, run_id, needed.as_ref(), &mut accounts, &mut via_group)?;
    tx.query_each(
        "SELECT source_account_id, destination_account_id, via_group FROM copy_customers WHERE run_id = $1",
        &run,
        |r| {
            let source = r.int(0)?;
            accounts.insert(source, r.int(1)?);
            if r.bool(2)? {
                via_group.insert(source);
            } else {
                via_group.remove(&source);
            }
            Ok(())
        },
    )?;
    let mut projects = FxHashMap::default();
    tx.query_each(
        "SELECT cp.source_project_id, cp.destination_project_id, p.key
         FROM copy_projects cp JOIN projects p ON p.id = cp.source_project_id WHERE cp.run_id = $1",
        &run,
        |r| {
            projects.insert(r.int(0)?, (r.int(1)?, r.text(2)?.to_owned()));
            Ok(())
        },
    )?;
    let mut organizations = FxHashMap::default();
    tx.query_each(
        "SELECT source_organization_id, destination_organization_id FROM copy_organizations WHERE run_id = $1",
        &run,
        |r| {
            organizations.insert(r.int(0)?, r.int(1)?);
            Ok(())
        },
    )?;
    Ok(RunMaps { accounts, via_group, projects, organizations })
}
