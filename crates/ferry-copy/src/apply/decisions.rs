//! Persisting a plan: every customer's decision, the projects and
//! organizations, reserved ids and the run's imported group, in one
//! transaction (the write-ahead plan); or the run blocked by its conflicts.

#[allow(unused_imports)]
use super::*;

pub(super) static COPY_CUSTOMERS: TableSpec = TableSpec {
    table: "copy_customers",
    columns: &[
        "run_id",
        "source_account_id",
        "destination_account_id",
        "matched_account_id",
        "outcome",
        "type_before",
        "type_after",
        "problems",
        "new_account_ext_id",
        "adds_site_user",
        "via_group",
    ],
    on_conflict: OnConflict::Fail,
};

pub(super) static COPY_ORGANIZATIONS: TableSpec = TableSpec {
    table: "copy_organizations",
    columns: &["run_id", "source_organization_id", "destination_organization_id", "name", "created"],
    on_conflict: OnConflict::Fail,
};

/// Decides everything and writes the decisions, in one transaction; or
/// records that blocking conflicts stopped the run. A first copy of a large
/// source is decided and written a part at a time ([`plan_in_parts`]), its
/// sorts in temporary files.
pub(super) fn persist_plan(store: &mut Store, run_id: i64, options: &CopyOptions) -> Result<(), CopyError> {
    let parts = plan_parts();
    if store.read(|tx| planned_in_parts(tx, options, parts.whole_up_to))? {
        store.with_temp_files(|store| persist_plan_in(store, run_id, options, parts))
    } else {
        persist_plan_in(store, run_id, options, parts)
    }
}

fn persist_plan_in(store: &mut Store, run_id: i64, options: &CopyOptions, parts: PlanParts) -> Result<(), CopyError> {
    // SQLite: a second connection reads the destination while this one
    // reads the source (it reads only after the write lock is taken).
    let mut sibling = store.sqlite_sibling()?;
    let conflicts = store.write(|tx| -> Result<Vec<crate::Conflict>, CopyError> {
        tx.lock_for_writing_ids()?;
        if load_run(tx, run_id)?.state != RunState::Planning {
            return Ok(Vec::new()); // another process planned it meanwhile
        }
        let mut customers = CustomerWriter::start(tx, run_id)?;
        let plan = plan_in_parts(tx, sibling.as_mut(), options, parts, &mut |tx, part| customers.write(tx, part))?;
        if !plan.conflicts.is_empty() {
            tx.execute(
                "UPDATE copy_runs SET state = $3, finished_at = $2 WHERE id = $1",
                &[Val::I(run_id), Val::T(&now()), Val::T(RunState::Blocked.as_str())],
            )?;
            tracing::info!(run = run_id, conflicts = plan.conflicts.len(), "copy run blocked by conflicts");
            return Ok(plan.conflicts);
        }
        customers.finish(tx)?;
        write_plan(tx, run_id, &plan)?;
        tx.analyze(&["copy_customers", "copy_projects", "copy_organizations", "copy_runs"])?;
        Ok(Vec::new())
    })?;
    if conflicts.is_empty() { Ok(()) } else { Err(CopyError::Conflicts(conflicts)) }
}

/// The customers a plan decides at once, when set (0: [`PlanParts::DEFAULT`]).
static PART_SET: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Sets how many customers the plans of this process (runs and checks)
/// decide at once, for any source larger than that (fewer hold less memory
/// and read the destination in more, smaller parts); 0 restores
/// [`PlanParts::DEFAULT`]. Tests plan small sites in parts.
pub fn set_plan_part(customers: usize) {
    PART_SET.store(customers, std::sync::atomic::Ordering::Relaxed);
}

pub(crate) fn plan_parts() -> PlanParts {
    match PART_SET.load(std::sync::atomic::Ordering::Relaxed) {
        0 => PlanParts::DEFAULT,
        n => PlanParts::of(n),
    }
}

/// Writes the customers' decisions as the plan hands them over, giving the
/// new accounts their ids.
struct CustomerWriter {
    run_id: i64,
    account_ids: IdAllocator,
    writer: BulkWriter,
}

impl CustomerWriter {
    fn start(tx: &mut Tx<'_>, run_id: i64) -> Result<CustomerWriter, CopyError> {
        Ok(CustomerWriter {
            run_id,
            account_ids: IdAllocator::start(tx, "accounts")?,
            writer: BulkWriter::new(&COPY_CUSTOMERS),
        })
    }

    fn write(&mut self, tx: &mut Tx<'_>, mut customers: Vec<crate::PlannedCustomer>) -> Result<(), CopyError> {
        // In key order, so the table's b-tree grows at its end.
        customers.sort_unstable_by_key(|c| c.customer.account_id);
        let mut batch = RowBatch::new(&COPY_CUSTOMERS);
        for c in &customers {
            let destination = match c.decision.target {
                Target::Existing(id) => id,
                Target::NewPortalOnly => self.account_ids.next_id(),
            };
            let problems: i64 = c.decision.problems.iter().map(|p| p.bit()).sum();
            batch.push(&[
                Val::I(self.run_id),
                Val::I(c.customer.account_id),
                Val::I(destination),
                Val::from(c.decision.matched),
                Val::I(c.decision.outcome.code()),
                Val::T(c.decision.before.label()),
                Val::T(c.decision.after.label()),
                Val::I(problems),
                Val::from(c.new_ext_id.as_deref()),
                Val::B(c.adds_site_user),
                Val::B(c.via_group),
            ]);
            if batch.weight() > 1 << 20 {
                self.writer.write(tx, &batch)?;
                batch = RowBatch::new(&COPY_CUSTOMERS);
            }
        }
        self.writer.write(tx, &batch)?;
        Ok(())
    }

    /// Ends the writing; the new accounts' ids are reserved.
    fn finish(self, tx: &mut Tx<'_>) -> Result<(), CopyError> {
        let CustomerWriter { account_ids, mut writer, .. } = self;
        writer.finish(tx)?;
        account_ids.reserve(tx)?;
        Ok(())
    }
}

/// Writes what a plan decides beside its customers (already written).
fn write_plan(tx: &mut Tx<'_>, run_id: i64, plan: &CopyPlan) -> Result<(), CopyError> {
    tx.execute(
        "UPDATE copy_runs SET already_copied = $2 WHERE id = $1",
        &[Val::I(run_id), Val::I(plan.already_copied as i64)],
    )?;
    // The new accounts, projects, organizations and group are written by
    // later transactions: their ids are reserved in the transaction that
    // hands them out, so no other writer takes them meanwhile.

    let mut project_ids = IdAllocator::start(tx, "projects")?;
    for p in &plan.projects {
        let (destination, created) = match p.linked {
            Some(id) => (id, false),
            None => (project_ids.next_id(), true),
        };
        tx.execute(
            "INSERT INTO copy_projects (run_id, source_project_id, destination_project_id, destination_key, created)
             VALUES ($1, $2, $3, $4, $5)",
            &[Val::I(run_id), Val::I(p.source_id), Val::I(destination), Val::T(&p.destination_key), Val::B(created)],
        )?;
    }
    project_ids.reserve(tx)?;
    // A site may have tens of thousands of organizations: one bulk write,
    // not a statement (a round trip on PostgreSQL) each.
    let mut organization_ids = IdAllocator::start(tx, "organizations")?;
    let mut batch = RowBatch::with_capacity(&COPY_ORGANIZATIONS, plan.organizations.len(), 24);
    for o in &plan.organizations {
        let (destination, created) = match o.existing {
            Some(id) => (id, false),
            None => (organization_ids.next_id(), true),
        };
        batch.push(&[Val::I(run_id), Val::I(o.source_id), Val::I(destination), Val::T(&o.name), Val::B(created)]);
    }
    write_batch(tx, &batch)?;
    organization_ids.reserve(tx)?;
    let group_id = match &plan.group_name {
        Some(_) => {
            let mut group_ids = IdAllocator::start(tx, "groups")?;
            let id = group_ids.next_id();
            group_ids.reserve(tx)?;
            Some(id)
        }
        None => None,
    };
    tx.execute(
        "UPDATE copy_runs SET state = $6, phase = $2, cursor = 0, source_request_limit = $3,
                group_name = $4, group_id = $5, membership_mark = $7
         WHERE id = $1",
        &[
            Val::I(run_id),
            Val::I(Phase::Accounts.code()),
            Val::I(plan.source_request_limit),
            Val::from(plan.group_name.as_deref()),
            Val::from(group_id),
            Val::T(RunState::Applying.as_str()),
            Val::I(plan.membership_mark),
        ],
    )?;
    Ok(())
}
