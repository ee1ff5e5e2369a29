//! The report folder (SPEC §4): RequiresAttention.csv, Customers.csv,
//! Summary.json and, when a check finds blocking conflicts, Conflicts.csv.
//! `check` and `run` render the same [`ReportData`], so they cannot disagree.

use std::collections::BTreeMap;
use std::path::Path;

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
    pub customers: Vec<CustomerLine>,
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
        let customers = plan
            .customers
            .iter()
            .map(|c| CustomerLine {
                email: c.customer.email.clone(),
                email_key: c.customer.email_key.clone(),
                source_type: c.customer.kind,
                before: c.decision.before,
                after: c.decision.after,
                outcome: c.decision.outcome,
                source_ext_id: c.ext_id.clone(),
                destination_ext_id: c.matched_ext_id.clone(),
                problems: c.decision.problems.clone(),
            })
            .collect();
        ReportData {
            kind,
            options: plan.options.clone(),
            projects: plan.projects.iter().map(|p| (p.source_key.clone(), p.destination_key.clone())).collect(),
            customers,
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
        let listed = self.customers.iter().filter(|c| c.outcome == outcome).count() as u64;
        if outcome == Outcome::AlreadyCopied { listed + self.already_copied } else { listed }
    }

    /// The customers whose outcome is uncertain (SPEC §8): their source
    /// site hides their email, so ferry matched them by account id only,
    /// where Atlassian's copy, which sees the email, may match them by it.
    pub fn uncertain(&self) -> impl Iterator<Item = &CustomerLine> {
        self.customers.iter().filter(|c| ferry_core::email::is_hidden(&c.email_key))
    }

    /// What Summary.json holds.
    pub fn summary(&self) -> serde_json::Value {
        let mut outcomes = BTreeMap::new();
        for outcome in Outcome::ALL {
            outcomes.insert(outcome.label(), self.outcome_count(outcome));
        }
        let mut problems = BTreeMap::new();
        for problem in Problem::ALL {
            let n = self.customers.iter().filter(|c| c.problems.contains(&problem)).count();
            problems.insert(problem.text(), n);
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
                "customers": self.customers.len() as u64 + self.already_copied,
                "already_copied": self.already_copied,
                "outcomes": outcomes,
                "problems": problems,
                "requires_attention_rows": self.customers.iter().map(|c| c.problems.len()).sum::<usize>(),
                "requests": self.requests,
                "organizations": self.organizations,
                "conflicts": self.conflicts.len(),
            },
            "imported_group": self.group_name,
            "uncertain": {
                "customers": self.uncertain().count(),
                "reason": UNCERTAIN_REASON,
                "source_account_ids": self.uncertain().map(|c| c.source_ext_id.as_str()).collect::<Vec<_>>(),
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

/// Writes a CSV file: the header, then each row `rows` hands to the sink,
/// every cell through the formula guard. Cells are borrowed: a million
/// customers make seven million of them.
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
pub fn write_report(data: &ReportData, dir: &Path) -> Result<(), CopyError> {
    std::fs::create_dir_all(dir).map_err(report_error(dir))?;
    let group = data.group_name.as_deref().unwrap_or("");
    // The two large files (a million customers make 200 MB) are written at
    // once, one on another thread.
    let (attention, customers) = std::thread::scope(|scope| {
        let attention = scope.spawn(|| {
            write_csv(&dir.join("RequiresAttention.csv"), REQUIRES_ATTENTION_HEADER, |row| {
                for c in &data.customers {
                    for problem in &c.problems {
                        let next_step = problem.next_step(group);
                        row([
                            &c.email,
                            c.source_type.label(),
                            c.before.label(),
                            c.after.label(),
                            problem.text(),
                            &next_step,
                        ])?;
                    }
                }
                Ok(())
            })
        });
        let customers = write_csv(&dir.join("Customers.csv"), CUSTOMERS_HEADER, |row| {
            for c in &data.customers {
                row([
                    &c.email,
                    c.source_type.label(),
                    c.before.label(),
                    c.after.label(),
                    c.outcome.label(),
                    &c.source_ext_id,
                    c.destination_ext_id.as_deref().unwrap_or("None"),
                ])?;
            }
            Ok(())
        });
        (ferry_store::joined(attention), customers)
    });
    attention?;
    customers?;
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

pub use crate::apply::write_run_report;
