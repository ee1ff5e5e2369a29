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

#[derive(Parser)]
#[command(name = "ferry", version, about = "Copy service-desk customers between sites without anyone losing access.")]
struct Cli {
    /// Database: a SQLite file (default ferry.db in the working folder) or postgres://…
    #[arg(long, global = true, env = "FERRY_DB", default_value = "ferry.db", hide_env_values = true)]
    db: String,
    /// What to log on stderr: error, warn, info, debug, trace, or a filter
    /// such as `ferry_copy=debug` (as RUST_LOG, which is read when this is
    /// not given). Default: warn; info for `serve`.
    #[arg(long, global = true, value_name = "LEVEL")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API (and its OpenAPI document) for org admins and their scripts.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Create the demo data if absent and print a generated admin sign-in.
        #[arg(long)]
        demo: bool,
    },
    /// Org admins: who may sign in to the server.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Organizations: named sets of sites.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Sites: create, import and export snapshots.
    Site {
        #[command(subcommand)]
        command: SiteCommand,
    },
    /// Customers of a site.
    Customer {
        #[command(subcommand)]
        command: CustomerCommand,
    },
    /// Copy customers, with their projects, requests and organizations, to another site.
    Copy {
        #[command(subcommand)]
        command: CopyCommand,
    },
    /// Groups of a site; review the imported ones.
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// The audit log: who did what, when, before and after; tab-separated, oldest first.
    Audit {
        /// Only this site's entries.
        #[arg(long)]
        site: Option<String>,
        /// Only entries from this time on (RFC 3339, or a date YYYY-MM-DD meaning its start, UTC).
        #[arg(long)]
        since: Option<String>,
    },
    /// Keys of the requests a customer can view on a site, one a line, sorted.
    Access {
        site: String,
        email: String,
        /// Which account to sign in with when the site has both (default: the Atlassian account).
        #[arg(long = "type", value_enum)]
        account_type: Option<TypeArg>,
    },
    /// Create organization `demo` with sites demo-src and demo-dst covering every copy outcome.
    Demo {
        #[arg(long, default_value_t = 1000)]
        customers: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Only write the two snapshot folders into this folder; touch no database.
        #[arg(long, value_name = "DIR")]
        snapshots_only: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Make EMAIL an admin of ORG with a new generated password, printed once.
    Create { org: String, email: String },
}

#[derive(Subcommand)]
enum OrgCommand {
    Create { org: String },
}

#[derive(Subcommand)]
enum SiteCommand {
    Create {
        org: String,
        site: String,
    },
    /// Import a snapshot folder; all of it or, on any bad row, nothing.
    Import {
        site: String,
        dir: PathBuf,
    },
    /// Export a site as a snapshot folder.
    Export {
        site: String,
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum CustomerCommand {
    /// List a site's customers as CSV, sorted by normalized email.
    List {
        site: String,
        #[arg(long = "type", value_enum)]
        account_type: Option<TypeArg>,
        /// Only emails that have both a portal-only and an Atlassian account on the site.
        #[arg(long)]
        duplicates: bool,
    },
    /// Give a customer a new generated help-center password, printed once.
    Password {
        site: String,
        email: String,
        /// Which account when the site has both (default: the Atlassian account).
        #[arg(long = "type", value_enum)]
        account_type: Option<TypeArg>,
    },
    /// Move portal-only accounts to the Atlassian account with the same email (created, unverified, when none).
    Upgrade {
        site: String,
        /// Emails of the portal-only accounts to upgrade.
        #[arg(required_unless_present = "all_duplicates", conflicts_with = "all_duplicates")]
        emails: Vec<String>,
        /// Every portal-only account whose email also has an Atlassian account on the site.
        #[arg(long)]
        all_duplicates: bool,
        /// List exactly what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Each group: state, the run that imported it, projects, requests approval grants, members.
    List {
        site: String,
        /// Only imported groups awaiting review.
        #[arg(long)]
        pending: bool,
    },
    /// Grant an imported group's members the Customer role of the projects its run copied.
    Approve { site: String, group: String },
    /// Leave an imported group's members without the Customer role.
    Decline { site: String, group: String },
}

#[derive(clap::Args)]
struct PlanArgs {
    #[arg(long)]
    from: String,
    #[arg(long)]
    to: String,
    /// Project keys to copy, comma-separated (default: every project).
    #[arg(long, value_delimiter = ',')]
    projects: Option<Vec<String>>,
    #[arg(long, value_enum, default_value = "related")]
    customers: ScopeArg,
    /// Copy project OLD under key NEW (when OLD is taken on the destination). Repeatable.
    #[arg(long = "rename", value_name = "OLD=NEW")]
    renames: Vec<String>,
    /// An organization whose name the destination uses with other members: block the run, or merge into it.
    #[arg(long, value_enum, default_value = "block")]
    organizations: OrganizationArg,
    /// Report folder (default: ferry-reports/check-<from>-to-<to> or ferry-reports/run-<id>).
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScopeArg {
    Related,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum OrganizationArg {
    Block,
    Merge,
}

impl PlanArgs {
    fn options(&self) -> Result<ferry_copy::CopyOptions, Failure> {
        let mut renames = std::collections::BTreeMap::new();
        for rename in &self.renames {
            let Some((old, new)) = rename.split_once('=') else {
                return Err(bad_input(format!("--rename {rename:?} must look like OLD=NEW")));
            };
            renames.insert(old.trim().to_owned(), new.trim().to_owned());
        }
        Ok(ferry_copy::CopyOptions {
            from: self.from.clone(),
            to: self.to.clone(),
            projects: self.projects.clone(),
            customers: match self.customers {
                ScopeArg::Related => ferry_copy::Scope::Related,
                ScopeArg::All => ferry_copy::Scope::All,
            },
            renames,
            organizations: match self.organizations {
                OrganizationArg::Block => ferry_copy::OrganizationMode::Block,
                OrganizationArg::Merge => ferry_copy::OrganizationMode::Merge,
            },
        })
    }
}

#[derive(Subcommand)]
enum CopyCommand {
    /// Predict every outcome and write the report a run would write; changes nothing.
    Check(PlanArgs),
    /// Carry the plan out. Prints `run <id>` first.
    Run(PlanArgs),
    /// Finish an interrupted run.
    Resume {
        run: i64,
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Where a run stands.
    Status { run: i64 },
    /// Remove what a run created and revoke what it granted; refuses, saying why, when later changes depend on it.
    Rollback { run: i64 },
    /// Write a run's report folder.
    Report {
        run: i64,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum TypeArg {
    PortalOnly,
    Atlassian,
}

impl From<TypeArg> for AccountType {
    fn from(t: TypeArg) -> AccountType {
        match t {
            TypeArg::PortalOnly => AccountType::PortalOnly,
            TypeArg::Atlassian => AccountType::Atlassian,
        }
    }
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
        Some(level) => level.to_owned(),
        None => std::env::var("RUST_LOG").unwrap_or_else(|_| default.to_owned()),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .map_err(|e| bad_input(format!("--log {filter:?} is not a log level or filter: {e}")))?;
    // Another subscriber already set (never in `ferry` itself) is kept.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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

/// Standard output that a reader may close early (`ferry copy run … |
/// head -1`): once the pipe is gone, output is dropped, and the work goes
/// on and ends as it would have; a closed stdout never fails or stops a
/// command.
struct Output<W: Write> {
    inner: W,
    closed: bool,
}

impl<W: Write> Output<W> {
    fn new(inner: W) -> Output<W> {
        Output { inner, closed: false }
    }
}

impl<W: Write> Output<W> {
    /// `io` on the inner writer, unless the reader has gone; a broken pipe
    /// marks it gone and counts as `done`.
    fn unless_closed<T>(&mut self, done: T, io: impl FnOnce(&mut W) -> std::io::Result<T>) -> std::io::Result<T> {
        if self.closed {
            return Ok(done);
        }
        match io(&mut self.inner) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(done)
            }
            other => other,
        }
    }
}

impl<W: Write> Write for Output<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.unless_closed(buf.len(), |w| w.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.unless_closed((), Write::flush)
    }
}

/// A line of progress on stderr, which may be closed: then it is dropped.
fn note(line: &str) {
    let mut err = Output::new(std::io::stderr());
    let _ = writeln!(err, "{line}");
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
    if let Command::Serve { listen, demo } = &cli.command {
        return serve(&cli.db, listen, *demo);
    }
    let mut store = if creates_database(&cli.command) { Store::open(&cli.db)? } else { Store::open_existing(&cli.db)? };
    store.set_actor(cli_actor());
    let mut out = Output::new(std::io::stdout().lock());
    match cli.command {
        Command::Serve { .. } => {}
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
            store.read(|tx| {
                let site = sites::site(tx, &site)?;
                accounts::each_customer(tx, site.id, filter, |c| {
                    let active = if c.active { "true" } else { "false" };
                    let cells = [c.email.as_str(), c.account_type.label(), &c.account_id, &c.display_name, active];
                    csv.write_record(cells.iter().map(|cell| guard_cell(cell).into_owned()))
                        .map_err(|e| StoreError::Io(format!("cannot write output: {e}")))
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

fn print_report_summary(
    out: &mut impl Write,
    data: &ferry_copy::ReportData,
    dir: &std::path::Path,
) -> std::io::Result<()> {
    use ferry_core::plan::Outcome;
    for outcome in Outcome::ALL {
        let n = data.customers.iter().filter(|c| c.outcome == outcome).count();
        if n > 0 {
            writeln!(out, "  {n:>9}  {}", outcome.label())?;
        }
    }
    writeln!(out, "  {:>9}  requests", data.requests)?;
    writeln!(out, "  {:>9}  RequiresAttention rows", data.requires_attention().len())?;
    if let Some(group) = &data.group_name {
        writeln!(out, "  imported group {group} awaits review")?;
    }
    writeln!(out, "report: {}", dir.display())
}

fn copy(store: &mut Store, command: CopyCommand, out: &mut impl Write) -> Result<(), Failure> {
    match command {
        CopyCommand::Check(args) => {
            let options = args.options()?;
            let dir = args
                .report
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("ferry-reports/check-{}-to-{}", options.from, options.to)));
            store.read(|tx| ferry_copy::validate_options(tx, &options))?;
            ferry_copy::prepare_report_dir(&dir)?;
            let plan = store.read(|tx| ferry_copy::plan_copy(tx, &options))?;
            let data = ferry_copy::ReportData::from_plan(&plan, ferry_copy::ReportKind::Prediction);
            ferry_copy::write_report(&data, &dir)?;
            writeln!(
                out,
                "check {} -> {}: {} customers (prediction, nothing written)",
                options.from,
                options.to,
                plan.customers.len()
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
            let result = ferry_copy::run(store, &options, &mut progress, |id| {
                run_id = id;
                let _ = writeln!(out, "run {id}");
                let _ = out.flush();
            });
            progress.done();
            let dir = args.report.clone().unwrap_or_else(|| PathBuf::from(format!("ferry-reports/run-{run_id}")));
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
            let data = ferry_copy::resume(store, run, &mut progress)?;
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
fn parse_since(value: &str) -> Result<String, Failure> {
    audit::parse_since(value).map_err(|e| bad_input(format!("--since {e}")))
}

fn group(store: &mut Store, command: GroupCommand, out: &mut impl Write) -> Result<(), Failure> {
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

fn write_group(g: &ferry_remedy::GroupReview, out: &mut impl Write) -> std::io::Result<()> {
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

fn print_upgrade(report: &ferry_remedy::UpgradeReport, out: &mut impl Write) -> std::io::Result<()> {
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

struct UpgradeProgress(TerminalProgress);

impl ferry_remedy::Progress for UpgradeProgress {
    fn step(&mut self, done: u64, total: u64) {
        if let Some(bar) = &self.0.bar {
            bar.set_message(format!("upgraded {done} of {total} accounts"));
        }
    }
}

/// A bar on a terminal; a plain line per phase otherwise.
struct CopyProgress {
    bar: Option<indicatif::ProgressBar>,
    phase: String,
}

impl CopyProgress {
    fn new() -> CopyProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg:28} [{bar:40}] {pos}/{len} {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        CopyProgress { bar, phase: String::new() }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl ferry_copy::Progress for CopyProgress {
    fn step(&mut self, phase: &str, done: u64, total: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(phase.to_owned());
                bar.set_length(total.max(done));
                bar.set_position(done);
            }
            None => {
                if self.phase != phase {
                    note(&format!("copy: {phase}"));
                    self.phase = phase.to_owned();
                }
            }
        }
    }
}

fn csv_failure(e: csv::Error) -> Failure {
    Failure::internal(format!("cannot write output: {e}"))
}

/// A spinner on a terminal; plain lines on stderr otherwise (logs, CI).
struct TerminalProgress {
    bar: Option<indicatif::ProgressBar>,
    label: &'static str,
    since: std::time::Instant,
}

impl TerminalProgress {
    fn new(label: &'static str) -> TerminalProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        TerminalProgress { bar, label, since: std::time::Instant::now() }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for TerminalProgress {
    fn rows(&mut self, file: &str, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} {file}: {rows} rows", self.label));
        }
    }

    fn file_done(&mut self, file: &str, rows: u64) {
        let line = format!("{} {file}: {rows} rows in {:.2} s", self.label, self.since.elapsed().as_secs_f64());
        self.since = std::time::Instant::now();
        match &self.bar {
            Some(bar) => bar.println(line),
            None => note(&line),
        }
    }
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
