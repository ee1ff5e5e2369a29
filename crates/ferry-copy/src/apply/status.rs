//! Where runs stand and what their reports say, from the persisted
//! decisions.

#[allow(unused_imports)]
use super::*;

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStatus {
    pub id: i64,
    pub from: String,
    pub to: String,
    pub state: RunState,
    pub phase: Phase,
    pub cursor: i64,
    pub customers: u64,
    pub requests_copied: u64,
    pub group_name: Option<String>,
    /// The imported group's review state; `None` once rolled back or when
    /// none.
    pub group_state: Option<GroupState>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Why the run failed (state `failed`).
    pub error: Option<String>,
}

/// Hands each customer line of run `run_id` to `each`, from its persisted
/// decisions (which never change once planned), in report order:
/// normalized email, then account type (portal-only first), then the
/// source's id. The database sorts, so nothing here grows with the run.
pub(super) fn each_report_line(
    tx: &mut Tx<'_>,
    run_id: i64,
    mut each: impl FnMut(&LineRef<'_>) -> Result<(), CopyError>,
) -> Result<(), CopyError> {
    // Byte order on both backends, as Rust compares the planner's keys;
    // 'customer' (portal-only) sorts after 'atlassian', hence DESC.
    let bytes = match tx.backend() {
        Backend::Postgres => " COLLATE \"C\"",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "SELECT a.email, a.email_key, a.kind, a.ext_id, cc.type_before, cc.type_after, cc.outcome,
                m.ext_id AS matched_ext_id, cc.problems
         FROM copy_customers cc
         JOIN accounts a ON a.id = cc.source_account_id
         LEFT JOIN accounts m ON m.id = cc.matched_account_id
         WHERE cc.run_id = $1
         ORDER BY a.email_key{bytes}, a.kind DESC, a.ext_id{bytes}"
    );
    let mut failed = None;
    let mut problems = Vec::new();
    tx.query_each(&sql, &[Val::I(run_id)], |r| {
        if failed.is_some() {
            return Ok(());
        }
        problems.clear();
        problems.extend(Problem::from_bits(r.int("problems")?));
        let line = LineRef {
            email: r.text("email")?,
            email_key: r.text("email_key")?,
            source_type: r.parsed("kind", "account type", AccountType::from_jira_value)?,
            source_ext_id: r.text("ext_id")?,
            before: r.parsed("type_before", "account type held", TypesHeld::parse)?,
            after: r.parsed("type_after", "account type held", TypesHeld::parse)?,
            outcome: r.coded("outcome", "outcome code", Outcome::from_code)?,
            destination_ext_id: r.opt_text("matched_ext_id")?,
            problems: &problems,
        };
        if let Err(e) = each(&line) {
            failed = Some(e);
        }
        Ok(())
    })?;
    failed.map_or(Ok(()), Err)
}

/// The report's line per customer of run `run_id`, in report order.
pub(super) fn report_customers(tx: &mut Tx<'_>, run_id: i64) -> Result<Vec<CustomerLine>, CopyError> {
    let mut customers = Vec::new();
    each_report_line(tx, run_id, |line| {
        customers.push(line.to_owned_line());
        Ok(())
    })?;
    Ok(customers)
}

/// Writes the customer lines of run `run_id` into report folder `dir` (under
/// their partial names) as they are read, through `store` (a reader beside
/// the apply, or the only connection); their totals. The database sorts the
/// whole run: on SQLite in temporary files, so memory does not grow with it.
pub(super) fn write_report_lines(store: &mut Store, run_id: i64, dir: &Path) -> Result<LineTotals, CopyError> {
    store.with_temp_files(|store| {
        store.read(|tx| {
            let group = tx
                .query_opt("SELECT group_name FROM copy_runs WHERE id = $1", &[Val::I(run_id)], |r| {
                    Ok(r.opt_text(0)?.map(str::to_owned))
                })?
                .flatten();
            let mut writer = LineWriter::create(dir, group.as_deref())?;
            each_report_line(tx, run_id, |line| writer.line(line))?;
            writer.finish()
        })
    })
}

/// The report of a run, from its persisted decisions.
pub(super) fn report_data(tx: &mut Tx<'_>, run_id: i64, lines: ReportLines) -> Result<ReportData, CopyError> {
    let row = load_run(tx, run_id)?;
    let (customers, totals, lines_written_to) = match lines {
        ReportLines::Read => {
            let customers = report_customers(tx, run_id)?;
            let totals = LineTotals::of(&customers);
            (customers, totals, None)
        }
        ReportLines::Held(customers) => {
            let totals = LineTotals::of(&customers);
            (customers, totals, None)
        }
        ReportLines::Written(dir, totals) => (Vec::new(), totals, Some(dir)),
    };
    let projects = tx.query_all(
        "SELECT p.key, cp.destination_key FROM copy_projects cp JOIN projects p ON p.id = cp.source_project_id
         WHERE cp.run_id = $1 ORDER BY p.key",
        &[Val::I(run_id)],
        |r| Ok((r.text(0)?.to_owned(), r.text(1)?.to_owned())),
    )?;
    let group_name = tx
        .query_opt("SELECT group_name FROM copy_runs WHERE id = $1", &[Val::I(run_id)], |r| {
            Ok(r.opt_text(0)?.map(str::to_owned))
        })?
        .flatten();
    let count = |tx: &mut Tx<'_>, sql: &str| -> Result<u64, StoreError> {
        Ok(tx.query_opt(sql, &[Val::I(run_id)], |r| r.int(0))?.unwrap_or(0) as u64)
    };
    let requests = count(tx, "SELECT requests_copied FROM copy_runs WHERE id = $1")?;
    let already_copied = count(tx, "SELECT already_copied FROM copy_runs WHERE id = $1")?;
    let organizations = count(tx, "SELECT COUNT(*) FROM copy_organizations WHERE run_id = $1")?;
    Ok(ReportData {
        kind: ReportKind::Run(run_id),
        options: row.options,
        projects,
        customers,
        totals,
        lines_written_to,
        conflicts: Vec::new(),
        group_name,
        requests,
        organizations,
        timings: Default::default(),
        state: row.state.as_str().to_owned(),
        destination_hidden_emails: None,
        already_copied,
    })
}

/// How a run's report gets its customer lines.
pub(super) enum ReportLines {
    /// Read into memory (what the server shows).
    Read,
    /// Read into memory already.
    Held(Vec<CustomerLine>),
    /// Already written into this folder's partial line files.
    Written(PathBuf, LineTotals),
}

/// Writes the report folder of run `run_id`, its lines streamed from the
/// database into their files.
pub fn write_run_report(store: &mut Store, run_id: i64, dir: &Path) -> Result<(), CopyError> {
    let data = write_report_lines(store, run_id, dir)
        .and_then(|totals| store.read(|tx| report_data(tx, run_id, ReportLines::Written(dir.to_owned(), totals))));
    match data {
        Ok(data) => write_report(&data, dir),
        Err(e) => {
            discard_partial_lines(dir);
            Err(e)
        }
    }
}

/// The report of run `run_id` as it stands.
pub fn run_report(store: &mut Store, run_id: i64) -> Result<ReportData, CopyError> {
    store.read(|tx| report_data(tx, run_id, ReportLines::Read))
}

/// Every run, newest first.
pub fn list_runs(store: &mut Store) -> Result<Vec<RunStatus>, CopyError> {
    let ids = store.read(|tx| tx.query_all("SELECT id FROM copy_runs ORDER BY id DESC", &[], |r| r.int(0)))?;
    ids.into_iter().map(|id| status(store, id)).collect()
}

/// Where run `run_id` stands.
pub fn status(store: &mut Store, run_id: i64) -> Result<RunStatus, CopyError> {
    store.read(|tx| {
        let row = load_run(tx, run_id)?;
        let (started_at, finished_at, group_name, error) = tx
            .query_opt(
                "SELECT started_at, finished_at, group_name, error FROM copy_runs WHERE id = $1",
                &[Val::I(run_id)],
                |r| {
                    Ok((
                        r.text(0)?.to_owned(),
                        r.opt_text(1)?.map(str::to_owned),
                        r.opt_text(2)?.map(str::to_owned),
                        r.opt_text(3)?.map(str::to_owned),
                    ))
                },
            )?
            .unwrap_or_default();
        let customers = tx
            .query_opt("SELECT COUNT(*) FROM copy_customers WHERE run_id = $1", &[Val::I(run_id)], |r| r.int(0))?
            .unwrap_or(0) as u64;
        let requests_copied = tx
            .query_opt("SELECT requests_copied FROM copy_runs WHERE id = $1", &[Val::I(run_id)], |r| r.int(0))?
            .unwrap_or(0) as u64;
        let group_state = tx.query_opt(
            "SELECT g.state FROM copy_runs r JOIN groups g ON g.id = r.group_id WHERE r.id = $1",
            &[Val::I(run_id)],
            |r| r.parsed(0, "group state", GroupState::parse),
        )?;
        Ok(RunStatus {
            id: run_id,
            from: row.source.slug,
            to: row.destination.slug,
            state: row.state,
            phase: row.phase,
            cursor: row.cursor,
            customers,
            requests_copied,
            group_name,
            group_state,
            started_at,
            finished_at,
            error,
        })
    })
}
