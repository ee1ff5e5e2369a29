//! `ferry`: thin. Parses the command line, calls the library, prints.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ferry_core::csv_guard::guard_cell;
use ferry_core::email::Email;
use ferry_core::model::AccountType;
use ferry_snapshot::{ImportError, Progress};
use ferry_store::accounts::{self, CustomerFilter};
use ferry_store::{Store, StoreError, sites};

// Import and copy build millions of small strings; glibc's allocator spends
// seconds freeing them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ferry", version, about = "Copy service-desk customers between sites without anyone losing access.")]
struct Cli {
    /// Database: a SQLite file (default ferry.db in the working folder) or postgres://…
    #[arg(long, global = true, env = "FERRY_DB", default_value = "ferry.db", hide_env_values = true)]
    db: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

/// A failure with its exit code: 2 for bad input (nothing written), 1 for
/// anything else.
struct Failure {
    code: u8,
    message: String,
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        let code = match e {
            StoreError::NotFound(_) | StoreError::Conflict(_) => 2,
            _ => 1,
        };
        Failure { code, message: e.to_string() }
    }
}

impl From<ImportError> for Failure {
    fn from(e: ImportError) -> Failure {
        match e {
            ImportError::Store(e) => e.into(),
            ImportError::Io { .. } => Failure { code: 2, message: e.to_string() },
            ImportError::Invalid(_) => Failure { code: 2, message: e.to_string() },
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure { code: 1, message: e.to_string() }
    }
}

fn bad_input(message: String) -> Failure {
    Failure { code: 2, message }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Demo { customers, seed, snapshots_only: Some(dir) } = &cli.command {
        let counts = ferry_snapshot::demo::write_demo(
            &dir.join(ferry_snapshot::demo::SOURCE_SITE),
            &dir.join(ferry_snapshot::demo::DESTINATION_SITE),
            *customers,
            *seed,
        )?;
        println!(
            "wrote {} source customers and {} requests to {}",
            counts.source_customers,
            counts.source_requests,
            dir.display()
        );
        return Ok(());
    }
    let mut store = Store::open(&cli.db)?;
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Org { command: OrgCommand::Create { org } } => {
            store.write(|tx| sites::create_org(tx, &org))?;
            writeln!(out, "created organization {org}")?;
        }
        Command::Site { command: SiteCommand::Create { org, site } } => {
            store.write(|tx| sites::create_site(tx, &org, &site))?;
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
                    let mut err = std::io::stderr().lock();
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
            let mut csv = csv::Writer::from_writer(out);
            let header = ["Customer email", "Account type", "Account id", "Display name", "Active"];
            csv.write_record(header).map_err(csv_failure)?;
            store.read(|tx| {
                let site = sites::site(tx, &site)?;
                accounts::each_customer(tx, site.id, filter, |c| {
                    let active = if c.active { "true" } else { "false" };
                    let cells = [c.email.as_str(), c.account_type.label(), &c.account_id, &c.display_name, active];
                    csv.write_record(cells.iter().map(|cell| guard_cell(cell).into_owned()))
                        .map_err(|e| StoreError::Conflict(format!("cannot write output: {e}")))
                })
            })?;
            csv.flush()?;
        }
        Command::Access { site, email, account_type } => {
            let email = Email::parse(&email).map_err(|e| bad_input(e.to_string()))?;
            let prefer = account_type.map(AccountType::from);
            let keys = store.read(|tx| {
                let found = sites::site(tx, &site)?;
                let account = accounts::find_by_email(tx, found.id, email.key(), prefer)?.ok_or_else(|| {
                    let kind = prefer.map_or("customer", |t| match t {
                        AccountType::PortalOnly => "portal-only account",
                        AccountType::Atlassian => "Atlassian account",
                    });
                    StoreError::NotFound(format!("no {kind} with email {} on site {site}", email.original()))
                })?;
                ferry_store::access::viewable_request_keys(tx, found.id, account)
            })?;
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
            writeln!(out, "next: ferry customer list demo-dst --duplicates")?;
        }
        Command::Demo { snapshots_only: Some(_), .. } => {}
    }
    Ok(())
}

fn csv_failure(e: csv::Error) -> Failure {
    Failure { code: 1, message: format!("cannot write output: {e}") }
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
            None => eprintln!("{line}"),
        }
    }
}
