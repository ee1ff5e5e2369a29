//! `ferry`: thin. Parses the command line, calls the library, prints.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ferry_core::csv_guard::guard_cell;
use ferry_core::model::AccountType;
use ferry_snapshot::{ImportError, Progress};
use ferry_store::accounts::{self, CustomerFilter};
use ferry_store::{Store, StoreError, audit, sites};

mod args;
mod commands;
mod output;

#[allow(unused_imports)]
use {args::*, commands::*, output::*};

// Import and copy build millions of small strings; glibc's allocator spends
// seconds freeing them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`: its place in mimalloc.h's `mi_option_e` (the
/// same in mimalloc v2 and v3); libmimalloc-sys names no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps freed memory before giving it back to the OS.
const PURGE_DELAY_MS: std::ffi::c_long = 60_000;

/// A copy frees and allocates chunk-sized buffers every second or so. With
/// mimalloc's default purge delay (1 s) that memory went back to the OS and
/// came back as fresh pages the kernel had to zero: 1.5 s of a
/// 1,000,000-customer copy was spent in the kernel's `clear_page`. Freed
/// memory is now kept for a minute, then given back when the process next
/// allocates (a long-running `ferry serve` too).
#[allow(unsafe_code)]
fn keep_freed_memory() {
    // SAFETY: mi_option_set stores an integer in mimalloc's option table;
    // it takes no pointers and is called before any other thread starts.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}

/// Every failure is ferry's one error type; its code decides the exit
/// status (2: the input is at fault and nothing was written; 1: anything
/// else), as it decides the API's HTTP status.
type Failure = ferry_ops::Error;

/// The message as printed: a database failure names the database (its
/// password hidden) and, where the disk is the cause, what to do.
fn message_for(failure: &Failure, db: &str) -> String {
    let text = failure.full_text();
    if !failure.database {
        return text;
    }
    let name = ferry_store::redact_url(db);
    let hint = if failure.disk {
        format!(
            "; the disk holding {name} is probably full or failing: free space there (`df -h`), then run the command \
             again (a failed command wrote nothing; an interrupted copy continues with `ferry copy resume <run>`)"
        )
    } else {
        String::new()
    };
    format!("database {name}: {text}{hint}")
}

/// `ferry serve`: the server on a runtime of its own until stopped.
fn serve(db: &str, listen: &str, demo: bool) -> Result<(), Failure> {
    let mut out = Output::new(std::io::stdout());
    if demo {
        let mut store = Store::open(db)?;
        store.set_actor(cli_actor());
        let sign_in = ferry_ops::admin::prepare_demo(&mut store, 1000)?;
        if sign_in.created_data {
            writeln!(out, "created the demo: organization demo with sites demo-src and demo-dst")?;
        }
        writeln!(out, "sign in as {} with password {}", sign_in.email, sign_in.password)?;
        if let Some((email, password)) = &sign_in.customer {
            writeln!(
                out,
                "help center demo-dst: sign in as {email} with password {password} (its copied requests appear once the imported group is approved)"
            )?;
        }
    }
    let state = ferry_server::AppState::open(db)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::internal(format!("cannot start the server's runtime: {e}")))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| bad_input(format!("--listen {listen}: cannot listen there: {e}")))?;
        let address = listener.local_addr().map_err(|e| Failure::internal(e.to_string()))?;
        writeln!(out, "ferry serving on http://{address}/")?;
        writeln!(out, "  console:      http://{address}/console")?;
        writeln!(out, "  API:          http://{address}/api/v1 (document: http://{address}/api/v1/openapi.json)")?;
        writeln!(out, "  help centers: http://{address}/help/<site> (customers' passwords: ferry customer password <site> <email>)")?;
        out.flush()?;
        ferry_server::serve(listener, state)
            .await
            .map_err(|e| Failure::internal(format!("server stopped: {e}")))
    })
}

fn bad_input(message: String) -> Failure {
    Failure::invalid(message)
}

/// Who the CLI acts as in the audit log: `FERRY_ACTOR` when set, else the
/// operating-system user, as `cli:<user>`.
fn cli_actor() -> String {
    match std::env::var("FERRY_ACTOR") {
        Ok(actor) if !actor.trim().is_empty() => actor.trim().to_owned(),
        _ => format!(
            "cli:{}",
            std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".to_owned())
        ),
    }
}

/// Logs go to stderr, filtered by `--log`, else RUST_LOG, else `default`.
/// Lines carry no secrets: database URLs are logged redacted, passwords and
/// tokens never.
fn start_logging(level: Option<&str>, default: &str) -> Result<(), Failure> {
    let filter = match level {
        Some(level) => tracing_subscriber::EnvFilter::try_new(level)
            .map_err(|e| bad_input(format!("--log {level:?} is not a log level or filter: {e}")))?,
        // RUST_LOG is shared with other programs: one this cannot read is
        // passed over, never a reason to refuse the command.
        None => std::env::var("RUST_LOG")
            .ok()
            .and_then(|value| tracing_subscriber::EnvFilter::try_new(value).ok())
            .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default)),
    };
    // Another subscriber already set (never in `ferry` itself) is kept.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // A closed stderr drops log lines as it drops notes; any other
        // failure to write one is not reported (tracing would print it to
        // the same stderr, and panic if that is closed).
        .with_writer(|| Output::new(std::io::stderr()))
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    Ok(())
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let db = cli.db.clone();
    let default_level = if matches!(cli.command, Command::Serve { .. }) { "info" } else { "warn" };
    let started = start_logging(cli.log.as_deref(), default_level);
    match started.and_then(|()| run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // stderr may be closed too: nothing else to tell.
            let _ = writeln!(std::io::stderr(), "error: {}", message_for(&failure, &db));
            ExitCode::from(failure.code.exit_status())
        }
    }
}

/// `FERRY_PLAN_PART`: how many customers a first copy's plan decides at
/// once, for any source larger than that (default: parts of 262,144 for
/// sources of more than 1,048,576 accounts; fewer hold less memory).
/// Anything but a positive whole number is refused before any work.
fn plan_part_from_env() -> Result<(), Failure> {
    let Some(value) = std::env::var_os("FERRY_PLAN_PART") else { return Ok(()) };
    match value.to_str().and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n > 0) {
        Some(part) => {
            ferry_copy::set_plan_part(part);
            Ok(())
        }
        None => {
            let default = ferry_copy::PlanParts::DEFAULT;
            Err(Failure::invalid(format!(
                "FERRY_PLAN_PART is {value:?}: it must be a positive whole number of customers (or unset: parts of {} \
                 for sources of more than {} accounts)",
                default.part, default.whole_up_to
            )))
        }
    }
}

/// Whether `command` may create the database: only the commands that start
/// one (the first organization, the demo, the server). Every other command
/// works on an existing one and never leaves an empty file behind a typo.
fn creates_database(command: &Command) -> bool {
    matches!(
        command,
        Command::Org { command: OrgCommand::Create { .. } } | Command::Demo { .. } | Command::Serve { .. }
    )
}

fn run(cli: Cli) -> Result<(), Failure> {
    plan_part_from_env()?;
    if let Command::Demo { customers, seed, snapshots_only: Some(dir) } = &cli.command {
        let counts = ferry_snapshot::demo::write_demo(
            &dir.join(ferry_snapshot::demo::SOURCE_SITE),
            &dir.join(ferry_snapshot::demo::DESTINATION_SITE),
            *customers,
            *seed,
        )?;
        writeln!(
            Output::new(std::io::stdout()),
            "wrote {} source customers and {} requests to {}",
            counts.source_customers,
            counts.source_requests,
            dir.display()
        )?;
        return Ok(());
    }
    if let Command::Site { command: SiteCommand::Pull { site, jira, projects, out, org_id, admin_api } } = &cli.command
    {
        let options = ferry_ops::pull::PullOptions {
            jira: jira.clone(),
            projects: projects.clone(),
            org_id: org_id.clone(),
            admin_api: Some(admin_api.clone()),
        };
        return commands::pull(&cli.db, site, &options, out.as_deref());
    }
    if let Command::Serve { listen, demo } = &cli.command {
        return serve(&cli.db, listen, *demo);
    }
    let mut store = if creates_database(&cli.command) { Store::open(&cli.db)? } else { Store::open_existing(&cli.db)? };
    store.set_actor(cli_actor());
    let mut out = Output::new(std::io::stdout().lock());
    match cli.command {
        Command::Serve { .. } | Command::Site { command: SiteCommand::Pull { .. } } => {}
        Command::Admin { command: AdminCommand::Create { org, email } } => {
            let password = ferry_ops::admin::create_admin(&mut store, &org, &email)?;
            writeln!(out, "admin {email} of organization {org}; password (shown once): {password}")?;
        }
        Command::Org { command: OrgCommand::Create { org } } => {
            let actor = store.actor().to_owned();
            store.write(|tx| sites::create_org_audited(tx, &org, &actor))?;
            writeln!(out, "created organization {org}")?;
        }
        Command::Site { command: SiteCommand::Create { org, site } } => {
            let actor = store.actor().to_owned();
            store.write(|tx| sites::create_site_audited(tx, &org, &site, &actor))?;
            writeln!(out, "created site {site} in organization {org}")?;
        }
        Command::Site { command: SiteCommand::Import { site, dir } } => {
            let mut progress = TerminalProgress::new("importing");
            match ferry_snapshot::import_site(&mut store, &site, &dir, &mut progress) {
                Ok(summary) => {
                    progress.done();
                    let total: u64 = summary.rows.iter().map(|(_, n)| n).sum();
                    writeln!(out, "imported {total} rows into site {site}")?;
                    for (file, rows) in summary.rows {
                        writeln!(out, "  {file}: {rows}")?;
                    }
                }
                Err(ImportError::Invalid(problems)) => {
                    progress.done();
                    let mut err = Output::new(std::io::stderr().lock());
                    for problem in &problems {
                        writeln!(
                            err,
                            "{}",
                            ferry_snapshot::Problem {
                                file: dir.join(&problem.file).display().to_string(),
                                ..problem.clone()
                            }
                        )?;
                    }
                    return Err(bad_input(format!(
                        "{} problem(s) in {}; nothing was imported",
                        problems.len(),
                        dir.display()
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Command::Site { command: SiteCommand::Export { site, dir } } => {
            let counts = ferry_snapshot::export_site(&mut store, &site, &dir)?;
            let total: u64 = counts.iter().map(|(_, n)| n).sum();
            writeln!(out, "exported {total} rows of site {site} to {}", dir.display())?;
        }
        Command::Customer { command: CustomerCommand::List { site, account_type, duplicates } } => {
            let filter = CustomerFilter { account_type: account_type.map(Into::into), duplicates_only: duplicates };
            // An unknown site is refused before the header is printed.
            store.read(|tx| sites::site(tx, &site))?;
            let mut csv = csv::Writer::from_writer(out);
            let header = ["Customer email", "Account type", "Account id", "Display name", "Active"];
            csv.write_record(header).map_err(csv_failure)?;
            // The database sorts the whole site: on SQLite in temporary
            // files, so memory does not grow with the site.
            store.with_temp_files(|store| {
                store.read(|tx| {
                    let site = sites::site(tx, &site)?;
                    accounts::each_customer(tx, site.id, filter, |c| {
                        let active = if c.active { "true" } else { "false" };
                        let cells = [c.email.as_str(), c.account_type.label(), &c.account_id, &c.display_name, active];
                        csv.write_record(cells.iter().map(|cell| guard_cell(cell).into_owned()))
                            .map_err(|e| StoreError::Io(format!("cannot write output: {e}")))
                    })
                })
            })?;
            csv.flush()?;
        }
        Command::Access { site, email, account_type } => {
            let keys =
                ferry_ops::access::customer_access(&mut store, &site, &email, account_type.map(AccountType::from))?;
            for key in keys {
                writeln!(out, "{key}")?;
            }
        }
        Command::Demo { customers, seed, snapshots_only: None } => {
            let mut progress = TerminalProgress::new("demo");
            let counts = ferry_snapshot::demo::load_demo(&mut store, customers, seed, &mut progress)?;
            progress.done();
            writeln!(
                out,
                "created organization demo: site demo-src with {} customers and {} requests, site demo-dst with {} accounts",
                counts.source_customers, counts.source_requests, counts.destination_accounts
            )?;
            writeln!(out, "next: ferry copy check --from demo-src --to demo-dst")?;
        }
        Command::Demo { snapshots_only: Some(_), .. } => {}
        Command::Copy { command } => copy(&mut store, command, &mut out)?,
        Command::Group { command } => group(&mut store, command, &mut out)?,
        Command::Customer { command: CustomerCommand::Password { site, email, account_type } } => {
            let prefer = account_type.map(AccountType::from);
            let password = ferry_ops::admin::set_customer_password(&mut store, &site, &email, prefer)?;
            writeln!(out, "help-center password for {email} on {site} (shown once): {password}")?;
        }
        Command::Customer { command: CustomerCommand::Upgrade { site, emails, all_duplicates, dry_run } } => {
            let selection = if all_duplicates {
                ferry_remedy::Selection::AllDuplicates
            } else {
                ferry_remedy::Selection::Emails(emails)
            };
            let mut progress = UpgradeProgress(TerminalProgress::new("upgrading"));
            let report = ferry_remedy::upgrade(&mut store, &site, &selection, dry_run, &mut progress)?;
            progress.0.done();
            print_upgrade(&report, &mut out)?;
            if report.blocked() > 0 && !all_duplicates {
                return Err(Failure::new(
                    ferry_ops::Code::Partial,
                    format!("{} of the named accounts could not be upgraded (see the blocked lines)", report.blocked()),
                ));
            }
        }
        Command::Audit { site, since } => {
            let since = since.as_deref().map(parse_since).transpose()?;
            let entries = store.read(|tx| -> Result<_, StoreError> {
                let site_id = match &site {
                    Some(slug) => Some(sites::site(tx, slug)?.id),
                    None => None,
                };
                audit::list(tx, site_id, since.as_deref())
            })?;
            writeln!(out, "at\tactor\taction\tsite\ttarget\tbefore\tafter")?;
            for e in entries {
                // Tab-separated for scripts and spreadsheets: no tab or line
                // break inside a cell, and no cell a spreadsheet would run.
                let cell = |v: &str| guard_cell(&v.replace(['\t', '\n', '\r'], " ")).into_owned();
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    e.at,
                    cell(&e.actor),
                    cell(&e.action),
                    cell(&e.site.unwrap_or_default()),
                    cell(&e.target),
                    cell(e.before.as_deref().unwrap_or("")),
                    cell(e.after.as_deref().unwrap_or(""))
                )?;
            }
        }
    }
    Ok(())
}

fn csv_failure(e: csv::Error) -> Failure {
    Failure::internal(format!("cannot write output: {e}"))
}

#[cfg(test)]
mod tests {
    use super::{Failure, MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS, keep_freed_memory, message_for};
    use ferry_store::StoreError;

    /// Issue 13, 11: a failing database is named (password hidden), and a
    /// full or failing disk says what to do; bad input is left as it is.
    #[test]
    fn database_failures_name_the_database_and_what_to_do() {
        let io = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR), None);
        let message = message_for(&Failure::from(StoreError::Sqlite(io)), "/data/ferry.db");
        assert!(
            message.starts_with("database /data/ferry.db: SQLite: ") && message.contains("disk I/O error"),
            "{message}"
        );
        assert!(message.contains("free space there"), "{message}");
        let full = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
        let message = message_for(&Failure::from(StoreError::Sqlite(full)), "postgres://u:secret@h/db");
        assert!(message.starts_with("database postgres://u:***@h/db: "), "{message}");
        assert!(message.contains("`df -h`") && !message.contains("secret"), "{message}");
        let input =
            message_for(&Failure::from(StoreError::NotFound("no site named \"x\"".to_owned())), "/data/ferry.db");
        assert_eq!(input, "no site named \"x\"");
    }

    #[allow(unsafe_code)]
    fn purge_delay() -> std::ffi::c_long {
        // SAFETY: mi_option_get reads an integer from mimalloc's option table.
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
    }

    #[test]
    fn the_allocator_keeps_freed_memory_for_a_minute() {
        // mimalloc v3's purge delay defaults to 1000 ms; any other default
        // means the index names some other option.
        assert_eq!(purge_delay(), 1000);
        keep_freed_memory();
        assert_eq!(purge_delay(), PURGE_DELAY_MS);
    }
}
