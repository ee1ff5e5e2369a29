//! The report folder (SPEC §4): RequiresAttention.csv, Customers.csv,
//! Summary.json and, when a check finds blocking conflicts, Conflicts.csv.
//! `check` and `run` render the same [`ReportData`], so they cannot disagree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry_core::csv_guard::guard_cell;
use ferry_core::model::AccountType;
use ferry_core::plan::{Outcome, Problem, TypesHeld};
use serde_json::json;

use crate::CopyError;
use ferry_core::planner::{Conflict, CopyOptions, CopyPlan};

pub const REQUIRES_ATTENTION_HEADER: [&str; 6] = [
    "Customer email",
    "Account type on source",
    "Account type on destination",
    "Account type after copying",
    "Problem",
    "Next step",
];
pub const CUSTOMERS_HEADER: [&str; 7] = [
    "Customer email",
    "Account type on source",
    "Account type on destination",
    "Account type after copying",
    "Outcome",
    "Source account id",
    "Destination account id",
];
pub const CONFLICTS_HEADER: [&str; 5] = ["Kind", "Source", "Destination", "Problem", "Resolution"];

/// Whether a report predicts (check) or records (run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Prediction,
    Run(i64),
}

/// One customer as the reports show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerLine {
    pub email: String,
    pub email_key: String,
    pub source_type: AccountType,
    pub before: TypesHeld,
    pub after: TypesHeld,
    pub outcome: Outcome,
    pub source_ext_id: String,
    pub destination_ext_id: Option<String>,
    pub problems: Vec<Problem>,
}

/// Everything a report folder says.
#[derive(Debug, Clone)]
pub struct ReportData {
    pub kind: ReportKind,
    pub options: CopyOptions,
    pub projects: Vec<(String, String)>,
    /// The customer lines, unless they were written straight into a report
    /// folder as they were read ([`ReportData::lines_written_to`]).
    pub customers: Vec<CustomerLine>,
    /// What Summary.json counts of the customer lines.
    pub totals: LineTotals,
    /// The folder whose line files a run wrote while it applied (not yet
    /// under their final names: [`write_report`] puts them there).
    pub lines_written_to: Option<PathBuf>,
    pub conflicts: Vec<Conflict>,
    pub group_name: Option<String>,
    pub requests: u64,
    pub organizations: u64,
    /// Phase name -> seconds.
    pub timings: BTreeMap<String, f64>,
    pub state: String,
    /// Destination accounts with a hidden email, as the check found them
    /// (a run's report, read back later, does not know).
    pub destination_hidden_emails: Option<u64>,
    /// Customers of the scope earlier runs between the two sites copied:
    /// counted, not listed (a re-run costs what changed).
    pub already_copied: u64,
}

impl ReportData {
    pub fn from_plan(plan: &CopyPlan, kind: ReportKind) -> ReportData {
        let customers = plan.customers.iter().map(|c| line_of(c).to_owned_line()).collect::<Vec<_>>();
        ReportData {
            kind,
            options: plan.options.clone(),
            projects: plan.projects.iter().map(|p| (p.source_key.clone(), p.destination_key.clone())).collect(),
            totals: LineTotals::of(&customers),
            customers,
            lines_written_to: None,
            conflicts: plan.conflicts.clone(),
            group_name: plan.group_name.clone(),
            requests: plan.requests_to_copy,
            organizations: plan.organizations.len() as u64,
            timings: BTreeMap::new(),
            state: match kind {
                ReportKind::Prediction => "prediction".to_owned(),
                ReportKind::Run(_) => "planned".to_owned(),
            },
            destination_hidden_emails: Some(plan.destination_hidden_emails),
            already_copied: plan.already_copied,
        }
    }

    /// The RequiresAttention rows: one per customer and problem, sorted by
    /// normalized email.
    pub fn requires_attention(&self) -> Vec<[String; 6]> {
        let group = self.group_name.as_deref().unwrap_or("");
        let mut rows = Vec::new();
        for c in &self.customers {
            for problem in &c.problems {
                rows.push([
                    c.email.clone(),
                    c.source_type.label().to_owned(),
                    c.before.label().to_owned(),
                    c.after.label().to_owned(),
                    problem.text().to_owned(),
                    problem.next_step(group),
                ]);
            }
        }
        rows
    }

    /// Each RequiresAttention row's normalized email and Problem, in the
    /// order of [`ReportData::requires_attention`].
    pub fn attention_keys(&self) -> Vec<(String, Problem)> {
        self.customers.iter().flat_map(|c| c.problems.iter().map(|p| (c.email_key.clone(), *p))).collect()
    }

    /// Customers with `outcome`: those listed, and for "already copied"
    /// also those of the scope an earlier run copied (counted, not listed).
    pub fn outcome_count(&self, outcome: Outcome) -> u64 {
        let listed = self.totals.outcomes.get(&outcome).copied().unwrap_or(0);
        if outcome == Outcome::AlreadyCopied { listed + self.already_copied } else { listed }
    }

    /// The source account ids of the customers whose outcome is uncertain
    /// (SPEC §8): their source site hides their email, so ferry matched them
    /// by account id only, where Atlassian's copy, which sees the email, may
    /// match them by it.
    pub fn uncertain(&self) -> &[String] {
        &self.totals.uncertain
    }

    /// What Summary.json holds.
    pub fn summary(&self) -> serde_json::Value {
        let mut outcomes = BTreeMap::new();
        for outcome in Outcome::ALL {
            outcomes.insert(outcome.label(), self.outcome_count(outcome));
        }
        let mut problems = BTreeMap::new();
        for problem in Problem::ALL {
            problems.insert(problem.text(), self.totals.problems.get(&problem).copied().unwrap_or(0));
        }
        json!({
            "prediction": self.kind == ReportKind::Prediction,
            "run": match self.kind { ReportKind::Run(id) => Some(id), ReportKind::Prediction => None },
            "state": self.state,
            "plan": {
                "from": self.options.from,
                "to": self.options.to,
                "projects": self.projects.iter().map(|(s, d)| json!({"source": s, "destination": d})).collect::<Vec<_>>(),
                "customers": self.options.customers,
                "organizations": self.options.organizations,
            },
            "timings_seconds": self.timings,
            "counts": {
                "customers": self.totals.listed + self.already_copied,
                "already_copied": self.already_copied,
                "outcomes": outcomes,
                "problems": problems,
                "requires_attention_rows": self.totals.attention_rows,
                "requests": self.requests,
                "organizations": self.organizations,
                "conflicts": self.conflicts.len(),
            },
            "imported_group": self.group_name,
            "uncertain": {
                "customers": self.totals.uncertain.len(),
                "reason": UNCERTAIN_REASON,
                "source_account_ids": self.totals.uncertain,
                "destination_accounts_with_hidden_email": self.destination_hidden_emails,
            },
        })
    }
}

/// Why [`ReportData::uncertain`] customers are uncertain, as Summary.json
/// and the console say it.
pub const UNCERTAIN_REASON: &str = "the source site hides these customers' emails: ferry never matches them by email \
     (only an account with the same id is the same account), while Atlassian's copy, which sees the emails, may; \
     pull with the organization admin key (ATLASSIAN_ADMIN_API_KEY, --org-id) to read them, then check again";

/// What Summary.json counts of a report's customer lines, kept as the lines
/// go by, so a run's lines can stream into their files without being held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineTotals {
    /// Customer lines (Customers.csv rows).
    pub listed: u64,
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Customers with each problem.
    pub problems: BTreeMap<Problem, u64>,
    /// RequiresAttention.csv rows: one per customer and problem.
    pub attention_rows: u64,
    /// Source account ids of the customers whose email their site hides,
    /// in report order.
    pub uncertain: Vec<String>,
}

impl LineTotals {
    /// Counts one customer line.
    pub fn count(&mut self, line: &LineRef<'_>) {
        self.listed += 1;
        *self.outcomes.entry(line.outcome).or_default() += 1;
        for problem in line.problems {
            *self.problems.entry(*problem).or_default() += 1;
        }
        self.attention_rows += line.problems.len() as u64;
        if ferry_core::email::is_hidden(line.email_key) {
            self.uncertain.push(line.source_ext_id.to_owned());
        }
    }

    /// The totals of lines held in memory.
    pub fn of(lines: &[CustomerLine]) -> LineTotals {
        let mut totals = LineTotals::default();
        for line in lines {
            totals.count(&line.borrowed());
        }
        totals
    }
}

/// One customer line, borrowed from wherever it is read.
#[derive(Debug, Clone, Copy)]
pub struct LineRef<'a> {
    pub email: &'a str,
    pub email_key: &'a str,
    pub source_type: AccountType,
    pub before: TypesHeld,
    pub after: TypesHeld,
    pub outcome: Outcome,
    pub source_ext_id: &'a str,
    pub destination_ext_id: Option<&'a str>,
    pub problems: &'a [Problem],
}

impl LineRef<'_> {
    /// The line, owning its texts (for reports held in memory).
    pub fn to_owned_line(self) -> CustomerLine {
        CustomerLine {
            email: self.email.to_owned(),
            email_key: self.email_key.to_owned(),
            source_type: self.source_type,
            before: self.before,
            after: self.after,
            outcome: self.outcome,
            source_ext_id: self.source_ext_id.to_owned(),
            destination_ext_id: self.destination_ext_id.map(str::to_owned),
            problems: self.problems.to_vec(),
        }
    }
}

impl CustomerLine {
    pub fn borrowed(&self) -> LineRef<'_> {
        LineRef {
            email: &self.email,
            email_key: &self.email_key,
            source_type: self.source_type,
            before: self.before,
            after: self.after,
            outcome: self.outcome,
            source_ext_id: &self.source_ext_id,
            destination_ext_id: self.destination_ext_id.as_deref(),
            problems: &self.problems,
        }
    }
}

/// Where this process writes a line file before the report is complete: a
/// run that fails or is killed leaves no half report under the final name,
/// and two processes finishing one run at once (two `copy resume`s on
/// SQLite) each write their own file and each put a whole one in place.
fn partial_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.{}.partial", std::process::id()))
}

const LINE_FILES: [&str; 2] = ["Customers.csv", "RequiresAttention.csv"];

/// Writes a report's two line files (Customers.csv, RequiresAttention.csv)
/// a line at a time, under their partial names, counting what Summary.json
/// needs; memory stays the same however many customers go by. Every cell
/// goes through the formula guard.
pub struct LineWriter {
    dir: PathBuf,
    customers: csv::Writer<std::fs::File>,
    attention: csv::Writer<std::fs::File>,
    group: String,
    totals: LineTotals,
}

impl LineWriter {
    /// Starts the line files in report folder `dir` (created if missing);
    /// `group` is the run's imported group, which next steps name.
    pub fn create(dir: &Path, group: Option<&str>) -> Result<LineWriter, CopyError> {
        std::fs::create_dir_all(dir).map_err(report_error(dir))?;
        let open = |name: &str, header: &[&str]| -> Result<csv::Writer<std::fs::File>, CopyError> {
            let path = partial_path(dir, name);
            let failure = |e: &dyn std::fmt::Display| CopyError::Report {
                path: dir.join(name).display().to_string(),
                reason: e.to_string(),
            };
            let file = std::fs::File::create(&path).map_err(|e| failure(&e))?;
            let mut out = csv::WriterBuilder::new().buffer_capacity(1 << 20).from_writer(file);
            out.write_record(header).map_err(|e| failure(&e))?;
            Ok(out)
        };
        Ok(LineWriter {
            dir: dir.to_owned(),
            customers: open(LINE_FILES[0], &CUSTOMERS_HEADER)?,
            attention: open(LINE_FILES[1], &REQUIRES_ATTENTION_HEADER)?,
            group: group.unwrap_or("").to_owned(),
            totals: LineTotals::default(),
        })
    }

    fn failure(&self, file: &str, e: &dyn std::fmt::Display) -> CopyError {
        CopyError::Report { path: self.dir.join(file).display().to_string(), reason: e.to_string() }
    }

    /// Writes one customer's line and a RequiresAttention row per problem.
    pub fn line(&mut self, c: &LineRef<'_>) -> Result<(), CopyError> {
        let row = [
            c.email,
            c.source_type.label(),
            c.before.label(),
            c.after.label(),
            c.outcome.label(),
            c.source_ext_id,
            c.destination_ext_id.unwrap_or("None"),
        ];
        self.customers
            .write_record(row.map(guard_cell).iter().map(|cell| cell.as_bytes()))
            .map_err(|e| self.failure(LINE_FILES[0], &e))?;
        for problem in c.problems {
            let next_step = problem.next_step(&self.group);
            let row = [c.email, c.source_type.label(), c.before.label(), c.after.label(), problem.text(), &next_step];
            self.attention
                .write_record(row.map(guard_cell).iter().map(|cell| cell.as_bytes()))
                .map_err(|e| self.failure(LINE_FILES[1], &e))?;
        }
        self.totals.count(c);
        Ok(())
    }

    /// Flushes both files (still under their partial names) and gives the
    /// totals.
    pub fn finish(mut self) -> Result<LineTotals, CopyError> {
        self.customers.flush().map_err(|e| self.failure(LINE_FILES[0], &e))?;
        self.attention.flush().map_err(|e| self.failure(LINE_FILES[1], &e))?;
        Ok(self.totals)
    }
}

/// Removes line files a run began in `dir` and did not finish.
pub(crate) fn discard_partial_lines(dir: &Path) {
    for name in LINE_FILES {
        let _ = std::fs::remove_file(partial_path(dir, name));
    }
}

/// Gives the line files written in `from` their final names in `dir`.
fn publish_lines(from: &Path, dir: &Path) -> Result<(), CopyError> {
    for name in LINE_FILES {
        let target = dir.join(name);
        std::fs::rename(partial_path(from, name), &target)
            .map_err(|e| CopyError::Report { path: target.display().to_string(), reason: e.to_string() })?;
    }
    Ok(())
}

/// Writes a CSV file: the header, then each row `rows` hands to the sink,
/// every cell through the formula guard. Cells are borrowed.
fn write_csv<const N: usize>(
    path: &Path,
    header: [&str; N],
    rows: impl FnOnce(&mut dyn FnMut([&str; N]) -> csv::Result<()>) -> csv::Result<()>,
) -> Result<(), CopyError> {
    let failure =
        |e: &dyn std::fmt::Display| CopyError::Report { path: path.display().to_string(), reason: e.to_string() };
    let mut out = csv::Writer::from_path(path).map_err(|e| failure(&e))?;
    out.write_record(header).map_err(|e| failure(&e))?;
    rows(&mut |row| out.write_record(row.map(guard_cell).iter().map(|cell| cell.as_bytes())))
        .map_err(|e| failure(&e))?;
    out.flush().map_err(|e| failure(&e))
}

/// Makes sure report folder `dir` can be created and written, before any
/// work: a folder that cannot be written is found out before a copy, not
/// after it. Creates the folder (and its parents) if missing.
pub fn prepare_report_dir(dir: &Path) -> Result<(), CopyError> {
    std::fs::create_dir_all(dir).map_err(report_error(dir))?;
    let probe = dir.join(format!(".ferry-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"ferry").map_err(report_error(dir))?;
    std::fs::remove_file(&probe).map_err(report_error(dir))
}

/// An IO failure on report folder `dir`, as the copy engine reports it.
fn report_error(dir: &Path) -> impl Fn(std::io::Error) -> CopyError + '_ {
    move |e| CopyError::Report { path: dir.display().to_string(), reason: e.to_string() }
}

/// Writes the report folder for `data` into `dir` (created if missing).
/// Lines a run already wrote while it applied
/// ([`ReportData::lines_written_to`]) only take their final names, so such
/// data is written once.
pub fn write_report(data: &ReportData, dir: &Path) -> Result<(), CopyError> {
    std::fs::create_dir_all(dir).map_err(report_error(dir))?;
    match &data.lines_written_to {
        Some(written) => publish_lines(written, dir)?,
        None => {
            let mut lines = LineWriter::create(dir, data.group_name.as_deref())?;
            for c in &data.customers {
                lines.line(&c.borrowed())?;
            }
            lines.finish()?;
            publish_lines(dir, dir)?;
        }
    }
    let conflicts = dir.join("Conflicts.csv");
    if data.conflicts.is_empty() {
        let _ = std::fs::remove_file(&conflicts);
    } else {
        write_csv(&conflicts, CONFLICTS_HEADER, |row| {
            for c in &data.conflicts {
                row([c.kind, &c.source, &c.destination, &c.problem, &c.resolution])?;
            }
            Ok(())
        })?;
    }
    let summary = serde_json::to_string_pretty(&data.summary())
        .map_err(|e| CopyError::Report { path: "Summary.json".into(), reason: e.to_string() })?;
    std::fs::write(dir.join("Summary.json"), summary + "\n")
        .map_err(|e| CopyError::Report { path: dir.join("Summary.json").display().to_string(), reason: e.to_string() })
}

/// The report of a check: the plan, marked as a prediction.
pub fn write_plan_report(plan: &CopyPlan, dir: &Path) -> Result<(), CopyError> {
    write_report(&ReportData::from_plan(plan, ReportKind::Prediction), dir)
}

/// A planned customer's report line.
pub fn line_of(c: &ferry_core::planner::PlannedCustomer) -> LineRef<'_> {
    LineRef {
        email: &c.customer.email,
        email_key: &c.customer.email_key,
        source_type: c.customer.kind,
        before: c.decision.before,
        after: c.decision.after,
        outcome: c.decision.outcome,
        source_ext_id: &c.ext_id,
        destination_ext_id: c.matched_ext_id.as_deref(),
        problems: &c.decision.problems,
    }
}

/// `copy check` into report folder `dir` (SPEC §4, a prediction; nothing
/// is written to the database): the plan is decided as a run would decide
/// it (in parts for a first copy of a large source, see
/// [`crate::plan_in_parts`]) and each customer's line is written as it is
/// decided, never held. The plan returned holds no customers; the data's
/// totals count them.
pub fn check_reporting(
    store: &mut ferry_store::Store,
    options: &CopyOptions,
    dir: &Path,
) -> Result<(CopyPlan, ReportData), CopyError> {
    let parts = crate::apply::plan_parts();
    let group = store.read(|tx| crate::load::imported_group_for(tx, options))?;
    std::fs::create_dir_all(dir).map_err(report_error(dir))?;
    let mut lines = LineWriter::create(dir, Some(&group))?;
    let planned = store.with_temp_files(|store| {
        store.read(|tx| {
            crate::plan_in_parts(tx, None, options, parts, &mut |_, customers| {
                customers.iter().try_for_each(|c| lines.line(&line_of(c)))
            })
        })
    });
    let plan = match planned {
        Ok(plan) => plan,
        Err(e) => {
            drop(lines);
            discard_partial_lines(dir);
            return Err(e);
        }
    };
    let totals = lines.finish()?;
    let mut data = ReportData::from_plan(&plan, ReportKind::Prediction);
    data.totals = totals;
    data.lines_written_to = Some(dir.to_owned());
    if let Err(e) = write_report(&data, dir) {
        discard_partial_lines(dir);
        return Err(e);
    }
    Ok((plan, data))
}

pub use crate::apply::write_run_report;
