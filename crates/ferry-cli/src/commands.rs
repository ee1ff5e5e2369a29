//! The `copy` and `group` commands and how their results are printed.

#[allow(unused_imports)]
use crate::*;

pub(crate) fn print_report_summary(
    out: &mut impl Write,
    data: &ferry_copy::ReportData,
    dir: &std::path::Path,
) -> std::io::Result<()> {
    use ferry_core::plan::Outcome;
    for outcome in Outcome::ALL {
        let n = data.outcome_count(outcome);
        if n > 0 {
            writeln!(out, "  {n:>9}  {}", outcome.label())?;
        }
    }
    writeln!(out, "  {:>9}  requests", data.requests)?;
    writeln!(out, "  {:>9}  RequiresAttention rows", data.totals.attention_rows)?;
    let uncertain = data.uncertain().len();
    if uncertain > 0 {
        writeln!(
            out,
            "  {uncertain:>9}  customers with an uncertain outcome: their source site hides their email (Summary.json names them)"
        )?;
    }
    if let Some(group) = &data.group_name {
        writeln!(out, "  imported group {group} awaits review")?;
    }
    writeln!(out, "report: {}", dir.display())
}

pub(crate) fn copy(store: &mut Store, command: CopyCommand, out: &mut impl Write) -> Result<(), Failure> {
    match command {
        CopyCommand::Check(args) => {
            let options = args.options()?;
            let dir = args
                .report
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("ferry-reports/check-{}-to-{}", options.from, options.to)));
            store.read(|tx| ferry_copy::validate_options(tx, &options))?;
            ferry_copy::prepare_report_dir(&dir)?;
            // The lines are written as the plan decides them, never held.
            let (plan, data) = ferry_copy::check_reporting(store, &options, &dir)?;
            writeln!(
                out,
                "check {} -> {}: {} customers (prediction, nothing written)",
                options.from, options.to, data.totals.listed
            )?;
            print_report_summary(out, &data, &dir)?;
            for conflict in &plan.conflicts {
                writeln!(out, "blocking conflict: {} ({})", conflict.problem, conflict.resolution)?;
            }
        }
        CopyCommand::Run(args) => {
            let options = args.options()?;
            // What run refuses is refused before the report folder is made.
            store.read(|tx| ferry_copy::check_can_start(tx, &options))?;
            // The report folder must be writable before any work: its
            // default is named after the run, so its parent is checked.
            match &args.report {
                Some(dir) => ferry_copy::prepare_report_dir(dir)?,
                None => ferry_copy::prepare_report_dir(std::path::Path::new("ferry-reports"))?,
            }
            let mut progress = CopyProgress::new();
            let mut run_id = 0;
            let dir_of =
                |id: i64| args.report.clone().unwrap_or_else(|| PathBuf::from(format!("ferry-reports/run-{id}")));
            // The report's customer lines are written while the run applies.
            let result = ferry_copy::run_reporting(
                store,
                &options,
                &mut progress,
                |id| {
                    run_id = id;
                    let _ = writeln!(out, "run {id}");
                    let _ = out.flush();
                },
                Some(&dir_of),
            );
            progress.done();
            let dir = dir_of(run_id);
            match result {
                Ok((_, data)) => {
                    ferry_copy::write_report(&data, &dir)?;
                    print_report_summary(out, &data, &dir)?;
                }
                Err(ferry_copy::CopyError::Conflicts(conflicts)) => {
                    let plan = store.read(|tx| ferry_copy::plan_copy(tx, &options))?;
                    ferry_copy::write_plan_report(&plan, &dir)?;
                    writeln!(out, "report: {}", dir.display())?;
                    return Err(ferry_copy::CopyError::Conflicts(conflicts).into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        CopyCommand::Resume { run, report } => {
            let dir = report.unwrap_or_else(|| PathBuf::from(format!("ferry-reports/run-{run}")));
            // A finished run is refused before anything else; done is the
            // state resume aims for, so that one exits 0.
            match ferry_copy::check_resumable(store, run) {
                Err(ferry_copy::CopyError::NotResumable {
                    state: ferry_core::run::RunState::Done, message, ..
                }) => {
                    writeln!(out, "{message}")?;
                    return Ok(());
                }
                other => other?,
            }
            ferry_copy::prepare_report_dir(&dir)?;
            let mut progress = CopyProgress::new();
            let data = ferry_copy::resume_reporting(store, run, &mut progress, Some(&dir))?;
            progress.done();
            ferry_copy::write_report(&data, &dir)?;
            writeln!(out, "run {run} {}", data.state)?;
            print_report_summary(out, &data, &dir)?;
        }
        CopyCommand::Status { run } => {
            let status = ferry_copy::status(store, run)?;
            writeln!(out, "run {}: {} -> {}", status.id, status.from, status.to)?;
            writeln!(out, "state: {}", status.state)?;
            if let Some(error) = &status.error {
                writeln!(out, "error: {error}")?;
                writeln!(out, "next: ferry copy rollback {} (removes what it wrote), then a new copy run", status.id)?;
            }
            if status.state == ferry_core::run::RunState::Applying {
                writeln!(out, "phase: {} (cursor {})", status.phase.name(), status.cursor)?;
                writeln!(out, "resume with: ferry copy resume {}", status.id)?;
            }
            writeln!(out, "customers: {}", status.customers)?;
            writeln!(out, "requests copied: {}", status.requests_copied)?;
            if let Some(group) = status.group_name {
                let review = match status.group_state {
                    Some(ferry_core::model::GroupState::AwaitingReview) => " (awaiting review)",
                    Some(ferry_core::model::GroupState::Active) => " (approved)",
                    Some(ferry_core::model::GroupState::Declined) => " (declined)",
                    None => "",
                };
                writeln!(out, "imported group: {group}{review}")?;
            }
            writeln!(out, "started: {}", status.started_at)?;
            if let Some(finished) = status.finished_at {
                writeln!(out, "finished: {finished}")?;
            }
        }
        CopyCommand::Rollback { run } => {
            let summary = ferry_copy::rollback(store, run)?;
            writeln!(
                out,
                "rolled back run {run}: removed {} requests, {} accounts, {} projects, {} organizations{}; revoked {} grants",
                summary.requests,
                summary.accounts,
                summary.projects,
                summary.organizations,
                summary.group.map(|g| format!(" and group {g}")).unwrap_or_default(),
                summary.grants
            )?;
        }
        CopyCommand::Report { run, out: dir } => {
            ferry_copy::write_run_report(store, run, &dir)?;
            writeln!(out, "report: {}", dir.display())?;
        }
    }
    Ok(())
}

/// `--since`: an RFC 3339 time or a date, as the log's own timestamp.
pub(crate) fn parse_since(value: &str) -> Result<String, Failure> {
    audit::parse_since(value).map_err(|e| bad_input(format!("--since {e}")))
}

pub(crate) fn group(store: &mut Store, command: GroupCommand, out: &mut impl Write) -> Result<(), Failure> {
    match command {
        GroupCommand::List { site, pending } => {
            let groups = ferry_remedy::list_groups(store, &site, pending)?;
            if groups.is_empty() {
                writeln!(out, "{}", if pending { "no imported groups need review" } else { "no groups" })?;
            }
            for g in groups {
                write_group(&g, out)?;
            }
        }
        GroupCommand::Approve { ref site, ref group } | GroupCommand::Decline { ref site, ref group } => {
            let approve = matches!(command, GroupCommand::Approve { .. });
            let decision =
                if approve { ferry_remedy::GroupDecision::Approve } else { ferry_remedy::GroupDecision::Decline };
            let (review, changed) = ferry_remedy::decide_group(store, site, group, decision)?;
            let verb = if approve { "approved" } else { "declined" };
            if changed {
                writeln!(out, "{verb} group {}", review.name)?;
            } else {
                writeln!(out, "group {} was already {verb}; nothing changed", review.name)?;
            }
            write_group(&review, out)?;
        }
    }
    Ok(())
}

pub(crate) fn write_group(g: &ferry_remedy::GroupReview, out: &mut impl Write) -> std::io::Result<()> {
    let state = match g.state {
        ferry_core::model::GroupState::Active => "active",
        ferry_core::model::GroupState::AwaitingReview => "awaiting review",
        ferry_core::model::GroupState::Declined => "declined",
    };
    let run = g.run.map(|r| format!("imported by run {r}")).unwrap_or_else(|| "not imported".to_owned());
    let projects = if g.projects.is_empty() { "none".to_owned() } else { g.projects.join(",") };
    writeln!(
        out,
        "{}\t{state}\t{run}\t{} members\tprojects {projects}\t{} requests gained on approval",
        g.name,
        g.members.len(),
        g.requests_gained
    )?;
    for member in &g.members {
        writeln!(out, "  {member}")?;
    }
    Ok(())
}

pub(crate) fn print_upgrade(report: &ferry_remedy::UpgradeReport, out: &mut impl Write) -> std::io::Result<()> {
    use ferry_remedy::UpgradeStatus as S;
    // A line per account, a hundred thousand of them: one write per block.
    let out = &mut std::io::BufWriter::new(out);
    let would = if report.dry_run { "would upgrade" } else { "upgraded" };
    for line in &report.lines {
        match &line.status {
            S::ToExisting { atlassian_ext_id } | S::ToNew { atlassian_ext_id } => {
                let how = if matches!(line.status, S::ToNew { .. }) {
                    "new, email unverified, invitation pending"
                } else {
                    "existing"
                };
                write!(
                    out,
                    "{would} {}: portal-only {} -> Atlassian account {atlassian_ext_id} ({how})",
                    line.email, line.portal_ext_id
                )?;
                if let Some(r) = line.references {
                    write!(
                        out,
                        "; moves {} requests reported, {} participations, {} comments, {} customer lists, {} organization memberships",
                        r.requests_reported, r.participations, r.comments, r.customer_lists, r.organizations
                    )?;
                }
                writeln!(out)?;
            }
            S::AlreadyUpgraded { atlassian_ext_id } => {
                writeln!(out, "already upgraded {}: merged into {atlassian_ext_id}; nothing changed", line.email)?;
            }
            S::Blocked { reason } => writeln!(out, "blocked {}: {reason}", line.email)?,
        }
    }
    if report.dry_run {
        writeln!(
            out,
            "dry run: {} would be upgraded ({} Atlassian accounts created), {} blocked, {} already upgraded; nothing was changed",
            report.upgraded(),
            report.created(),
            report.blocked(),
            report.already()
        )?;
    } else {
        writeln!(
            out,
            "upgraded {} accounts ({} Atlassian accounts created, invitations pending), {} blocked, {} already upgraded",
            report.upgraded(),
            report.created(),
            report.blocked(),
            report.already()
        )?;
    }
    out.flush()
}

/// A spinner with the pull's current step and count, on a terminal only.
struct PullBar(Option<indicatif::ProgressBar>);

impl ferry_jira::PullProgress for PullBar {
    fn step(&self, step: &str, items: u64) {
        if let Some(bar) = &self.0 {
            bar.set_message(format!("pulling {step}: {items}"));
        }
    }
}

/// `ferry site pull`: the site into a snapshot folder (`--out`), or through
/// a temporary one into the ferry site, all or nothing.
pub(crate) fn pull(
    db: &str,
    site: &str,
    options: &ferry_ops::pull::PullOptions,
    out_dir: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let credentials = ferry_ops::pull::Credentials::from_env()?;
    let config = ferry_ops::pull::config(options, credentials)?;
    // The site must exist before anything is asked of Jira. The database
    // is closed while the pull runs (it may take hours; a server may close
    // an idle connection) and opened again for the import.
    if out_dir.is_none() {
        ferry_ops::pull::check_site(&mut Store::open_existing(db)?, site)?;
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    });
    let progress = PullBar(bar);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::internal(format!("cannot start the HTTP runtime: {e}")))?;
    let started = std::time::Instant::now();
    let pulled = runtime.block_on(ferry_ops::pull::fetch(&config, &progress));
    if let Some(bar) = &progress.0 {
        bar.finish_and_clear();
    }
    // Only now, with the whole site read, does anything reach the disk.
    let temporary = match out_dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("ferry-pull-").tempdir()?),
    };
    let dir = match (out_dir, &temporary) {
        (Some(dir), _) => dir.to_owned(),
        (None, Some(temp)) => temp.path().to_owned(),
        (None, None) => return Err(Failure::internal("no folder to pull into")),
    };
    let report = ferry_ops::pull::write(pulled?, &dir)?;
    let seconds = started.elapsed().as_secs_f64();
    let mut out = Output::new(std::io::stdout().lock());
    let total: u64 = report.counts.iter().map(|(_, n)| n).sum();
    match out_dir {
        Some(_) => {
            writeln!(out, "pulled {} into snapshot {}: {total} rows in {seconds:.1} s", config.site_url, dir.display())?
        }
        None => {
            let mut store = Store::open_existing(db)?;
            store.set_actor(cli_actor());
            let store = &mut store;
            let mut import_progress = TerminalProgress::new("importing");
            let imported = ferry_ops::pull::import(store, site, &dir, &mut import_progress);
            import_progress.done();
            if let Err(failure) = imported {
                // Keep what was pulled, to read the problems against.
                if let Some(temp) = temporary {
                    let kept = temp.keep();
                    return Err(Failure {
                        message: format!("{}; the pulled snapshot is kept in {}", failure.message, kept.display()),
                        ..failure
                    });
                }
                return Err(failure);
            }
            writeln!(out, "pulled {} into site {site}: {total} rows in {seconds:.1} s", config.site_url)?;
        }
    }
    for (file, rows) in &report.counts {
        writeln!(out, "  {file}: {rows}")?;
    }
    for line in ferry_ops::pull::report_lines(&report) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}
