//! The command line, as clap parses it.

#[allow(unused_imports)]
use crate::*;

#[derive(Parser)]
#[command(name = "ferry", version, about = "Copy service-desk customers between sites without anyone losing access.")]
pub(crate) struct Cli {
    /// Database: a SQLite file (default ferry.db in the working folder) or postgres://…
    #[arg(long, global = true, env = "FERRY_DB", default_value = "ferry.db", hide_env_values = true)]
    pub(crate) db: String,
    /// What to log on stderr: error, warn, info, debug, trace, or a filter
    /// such as `ferry_copy=debug` (as RUST_LOG, which is read when this is
    /// not given). Default: warn; info for `serve`.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub(crate) log: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
pub(crate) enum AdminCommand {
    /// Make EMAIL an admin of ORG with a new generated password, printed once.
    Create { org: String, email: String },
}

#[derive(Subcommand)]
pub(crate) enum OrgCommand {
    Create { org: String },
}

#[derive(Subcommand)]
pub(crate) enum SiteCommand {
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
    /// Pull a real Jira Service Management Cloud site into a site (all or
    /// nothing, as import), or with --out into a snapshot folder. Credentials
    /// from the environment only: JIRA_EMAIL and JIRA_API_TOKEN; optionally
    /// ATLASSIAN_ADMIN_API_KEY with --org-id.
    Pull {
        site: String,
        /// The site's address, https://<name>.atlassian.net.
        #[arg(long)]
        jira: String,
        /// Only these service desks' projects (comma-separated keys).
        #[arg(long, value_delimiter = ',')]
        projects: Vec<String>,
        /// Write a snapshot folder instead; touches no database.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The Atlassian organization's id, for the admin API (email
        /// verification, hidden emails).
        #[arg(long = "org-id")]
        org_id: Option<String>,
        /// The organization admin API's address.
        #[arg(long = "admin-api", default_value = ferry_ops::pull::DEFAULT_ADMIN_API)]
        admin_api: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum CustomerCommand {
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
pub(crate) enum GroupCommand {
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
pub(crate) struct PlanArgs {
    #[arg(long)]
    pub(crate) from: String,
    #[arg(long)]
    pub(crate) to: String,
    /// Project keys to copy, comma-separated (default: every project).
    #[arg(long, value_delimiter = ',')]
    pub(crate) projects: Option<Vec<String>>,
    #[arg(long, value_enum, default_value = "related")]
    pub(crate) customers: ScopeArg,
    /// Copy project OLD under key NEW (when OLD is taken on the destination). Repeatable.
    #[arg(long = "rename", value_name = "OLD=NEW")]
    pub(crate) renames: Vec<String>,
    /// An organization whose name the destination uses with other members: block the run, or merge into it.
    #[arg(long, value_enum, default_value = "block")]
    pub(crate) organizations: OrganizationArg,
    /// Report folder (default: ferry-reports/check-<from>-to-<to> or ferry-reports/run-<id>).
    #[arg(long)]
    pub(crate) report: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ScopeArg {
    Related,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum OrganizationArg {
    Block,
    Merge,
}

impl PlanArgs {
    pub(crate) fn options(&self) -> Result<ferry_copy::CopyOptions, Failure> {
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
pub(crate) enum CopyCommand {
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
pub(crate) enum TypeArg {
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
