//! A fake Jira Service Management Cloud site for tests.
//!
//! [`FakeJira::start`] serves a §7 snapshot folder (CSV files, see
//! [`FakeJira::start`]) over HTTP on `127.0.0.1`, through exactly the
//! Atlassian REST endpoints a site pull reads, answering the shapes of
//! Atlassian's own OpenAPI documents (`reference/jira/jsm.v3.json` and
//! `reference/jira/jira-platform.v3.json`), with their real paging styles and
//! with the unpleasant parts of a real site turned on: small page caps
//! whatever the client asks, basic-auth checks, a `429 Too Many Requests`
//! every Nth request, hidden email addresses, a `409` from a user search
//! that "took too long", internal comments a careless client would copy,
//! an app account, and creation times in a non-UTC offset.
//!
//! Endpoints (everything else answers 404):
//!
//! | Method | Path | Answer |
//! |---|---|---|
//! | GET | `/rest/servicedeskapi/servicedesk` | `PagedDTOServiceDeskDTO`, one desk per project |
//! | GET | `/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer` | `PagedDTOUserDTO`; needs `X-ExperimentalApi: opt-in`, else 412 |
//! | GET | `/rest/servicedeskapi/servicedesk/{serviceDeskId}/organization` | `PagedDTOOrganizationDTO` of the desk |
//! | GET | `/rest/servicedeskapi/organization` | `PagedDTOOrganizationDTO` of the site |
//! | GET | `/rest/servicedeskapi/organization/{organizationId}/user` | `PagedDTOUserDTO` of the members |
//! | GET | `/rest/servicedeskapi/request/{issueIdOrKey}/comment` | `PagedDTOCommentDTO` (`public`, `internal` filters) |
//! | GET | `/rest/api/3/users/search` | bare array of `User` (`startAt`/`maxResults`) |
//! | GET | `/rest/api/3/user` | `User` |
//! | GET | `/rest/api/3/project/{projectIdOrKey}/role` | role name → role URL |
//! | GET | `/rest/api/3/project/{projectIdOrKey}/role/{id}` | `ProjectRole` with its actors |
//! | GET | `/rest/api/3/group/member` | `PageBeanUserDetails` |
//! | GET | `/rest/api/3/field` | array of `FieldDetails` |
//! | POST | `/rest/api/3/search/jql` | `SearchAndReconcileResults` (token paging) |
//! | GET | `/admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}` | organization admin API user record (`{"data": {…}}`) |
//!
//! `/rest/...` needs `Authorization: Basic base64(email:token)`; `/admin/...`
//! needs `Authorization: Bearer {admin_key}`; both answer 401 otherwise.
//!
//! Every response can be recorded ([`FakeJira::responses`]) and checked
//! against Atlassian's schemas with [`validate_against_reference`], so the
//! fake cannot drift from the real contract.

// Handlers answer `Result<Response, Response>` (an error is just another
// response), as axum handlers do.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::IntoFuture;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// How the fake site behaves.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// Basic-auth user of `/rest/...` (default `admin@example.test`).
    pub email: String,
    /// Basic-auth password, the API token (default `fake-token`).
    pub token: String,
    /// Bearer key of the organization admin API (default `fake-admin-key`).
    pub admin_key: String,
    /// The organization id the admin API answers for (default `fake-org`).
    pub org_id: String,
    /// The most items any page returns, whatever was asked (default 3).
    pub page_cap: usize,
    /// Every Nth request (counted over all requests) answers 429 with
    /// `Retry-After: {retry_after}` and is not served (default `Some(7)`).
    pub throttle_every: Option<u64>,
    /// Seconds in the `Retry-After` header of a 429 (default 0).
    pub retry_after: u64,
    /// Account ids whose `emailAddress` the site hides (absent from every
    /// user object); the admin directory still knows their email.
    pub hidden_emails: BTreeSet<String>,
    /// Account ids the organization does not manage: the admin directory
    /// answers 404 for them.
    pub unmanaged: BTreeSet<String>,
    /// `Some(n)`: `GET users/search` with `maxResults > n` answers 409
    /// (Atlassian's "the request took longer than 10 seconds").
    pub users_search_limit: Option<usize>,
    /// Adds an app account (`accountType` `app`) to the site's users and one
    /// public comment by it on the first request (by project key, then
    /// number) (default true).
    pub app_comment: bool,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            email: "admin@example.test".to_owned(),
            token: "fake-token".to_owned(),
            admin_key: "fake-admin-key".to_owned(),
            org_id: "fake-org".to_owned(),
            page_cap: 3,
            throttle_every: Some(7),
            retry_after: 0,
            hidden_emails: BTreeSet::new(),
            unmanaged: BTreeSet::new(),
            users_search_limit: None,
            app_comment: true,
        }
    }
}

/// What the fake has served so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeStats {
    /// Requests received (429s included).
    pub requests: u64,
    /// Requests answered 429.
    pub throttled: u64,
    /// The most requests in flight at once.
    pub max_in_flight: usize,
    /// Requests per OpenAPI path template (the raw path for unknown paths).
    pub by_template: BTreeMap<String, u64>,
}

/// One response the fake gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// OpenAPI path template, e.g. `/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer`
    /// (the raw path when no route matched).
    pub template: String,
    pub status: u16,
    /// The JSON body (`Null` when the body was empty or not JSON).
    pub body: Value,
}

/// A running fake site; dropping it shuts the server down.
pub struct FakeJira {
    url: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeJira {
    /// Starts the server on `127.0.0.1`, port 0, on its own thread with its
    /// own tokio runtime (so sync `#[test]`s and tokio tests can both use it).
    ///
    /// The snapshot folder holds CSV files with a header row (only
    /// `accounts.csv` is required; a missing file has no rows):
    /// `accounts.csv` (`account_id,account_type,email,display_name,active,email_verified`),
    /// `projects.csv` (`project_key,name`), `customers.csv` (`project_key,account_id`),
    /// `groups.csv` (`group_name,account_id`; empty id = no members),
    /// `customer_roles.csv` (`project_key,group_name`),
    /// `organizations.csv` (`organization,account_id`; empty id = no members),
    /// `organization_projects.csv` (`organization,project_key`),
    /// `requests.csv` (`request_key,project_key,summary,status,created,reporter_id,participant_ids,organization`),
    /// `comments.csv` (`request_key,author_id,created,body`).
    ///
    /// Panics on an unreadable or inconsistent snapshot (a row naming an
    /// account, project or request that does not exist).
    #[allow(clippy::expect_used, clippy::panic)]
    pub fn start(snapshot: &Path, options: FakeOptions) -> FakeJira {
        let site = Site::load(snapshot, &options)
            .unwrap_or_else(|e| panic!("fake Jira: unreadable snapshot {}: {e}", snapshot.display()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("fake Jira: bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("fake Jira: non-blocking listener");
        let url = format!("http://{}", listener.local_addr().expect("fake Jira: local address"));
        let shared = Arc::new(Shared {
            site,
            options,
            base: url.clone(),
            requests: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            by_template: Mutex::new(BTreeMap::new()),
            recording: AtomicBool::new(true),
            recorded: Mutex::new(Vec::new()),
        });
        let app = router(shared.clone());
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-jira".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(4)
                    .enable_all()
                    .build()
                    .expect("fake Jira: tokio runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("fake Jira: tokio listener");
                    tokio::select! {
                        _ = axum::serve(listener, app).into_future() => {}
                        _ = stop => {}
                    }
                });
                // Dropping the runtime cancels the open connections.
            })
            .expect("fake Jira: server thread");
        FakeJira { url, shared, shutdown: Some(shutdown), thread: Some(thread) }
    }

    /// Base URL of both the Jira site and the admin API, e.g. `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Requests served, 429s sent, the most requests in flight at once, and
    /// requests per path template.
    pub fn stats(&self) -> FakeStats {
        FakeStats {
            requests: self.shared.requests.load(Ordering::SeqCst),
            throttled: self.shared.throttled.load(Ordering::SeqCst),
            max_in_flight: self.shared.max_in_flight.load(Ordering::SeqCst),
            by_template: lock(&self.shared.by_template).clone(),
        }
    }

    /// Every response given so far while recording was on.
    pub fn responses(&self) -> Vec<Recorded> {
        lock(&self.shared.recorded).clone()
    }

    /// Turns recording of responses on (the default) or off (for big
    /// benchmarks: recording keeps every body in memory).
    pub fn set_recording(&self, on: bool) {
        self.shared.recording.store(on, Ordering::SeqCst);
    }
}

impl Drop for FakeJira {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A poisoned lock only means another test thread panicked; the data is
/// still what it was.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// The site's data, read from the snapshot
// ---------------------------------------------------------------------------

/// The app account added when `FakeOptions::app_comment` is on (the account
/// id Atlassian's own "Automation for Jira" app has).
const APP_ACCOUNT_ID: &str = "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077";

/// Roles of every project: (id, name, description).
const ROLES: [(u64, &str, &str); 3] = [
    (10002, "Administrators", "A project role that represents administrators in a project"),
    (10001, "Service Desk Team", "Members of the service desk team"),
    (10100, "Service Desk Customers", "Customers of the service desk"),
];
const CUSTOMERS_ROLE: u64 = 10100;

/// Fields `search/jql` can return.
const ISSUE_FIELDS: [&str; 6] = ["summary", "status", "created", "reporter", "customfield_10024", "customfield_10002"];

struct Account {
    id: String,
    /// `atlassian`, `customer` or `app`.
    kind: &'static str,
    email: Option<String>,
    name: String,
    active: bool,
    email_verified: bool,
}

struct Project {
    key: String,
    name: String,
    /// Service desk id, 1-based, by project key.
    desk: usize,
    /// Account ids of the desk's customers, sorted.
    customers: Vec<String>,
    /// Groups holding the "Service Desk Customers" role, sorted.
    customer_groups: Vec<String>,
    /// Organization indexes linked to the desk, by name.
    organizations: Vec<usize>,
    /// Request indexes, by request number.
    requests: Vec<usize>,
}

struct Group {
    id: String,
    /// Account ids, sorted.
    members: Vec<String>,
    /// The active ones among them.
    active_members: Vec<String>,
}

struct Organization {
    /// 1-based, by name.
    id: usize,
    name: String,
    /// Account ids, sorted.
    members: Vec<String>,
}

struct Issue {
    id: u64,
    key: String,
    number: u64,
    summary: String,
    status: String,
    created: i64,
    reporter: String,
    participants: Vec<String>,
    organization: Option<usize>,
    /// In created order.
    comments: Vec<Comment>,
}

struct Comment {
    id: u64,
    author: String,
    created: i64,
    body: String,
    public: bool,
}

/// The site; the indexes keep every request O(page) on 100k-account sites.
struct Site {
    accounts: BTreeMap<String, Account>,
    /// The keys of `accounts`, sorted (users/search pages by index).
    account_ids: Vec<String>,
    projects: Vec<Project>,
    groups: BTreeMap<String, Group>,
    /// Group id → group name.
    group_names: HashMap<String, String>,
    /// Account id → how many groups it is in.
    group_counts: HashMap<String, usize>,
    organizations: Vec<Organization>,
    /// In project key then number order; issue ids are 10001 + index.
    issues: Vec<Issue>,
    /// Request key → index in `issues`.
    issue_keys: HashMap<String, usize>,
    /// Status name → status id.
    statuses: BTreeMap<String, u64>,
}

/// Rows of one CSV file, with the asked columns in the asked order. A
/// column marked `?` may be missing from the header (read as empty).
fn read_csv(dir: &Path, file: &str, required: bool, columns: &[&str]) -> Result<Vec<Vec<String>>, String> {
    let path = dir.join(file);
    if !path.exists() {
        return if required { Err(format!("{file} is missing")) } else { Ok(Vec::new()) };
    }
    let mut reader = csv::ReaderBuilder::new().from_path(&path).map_err(|e| format!("{file}: {e}"))?;
    let headers = reader.headers().map_err(|e| format!("{file}: {e}"))?.clone();
    let mut indexes = Vec::new();
    for column in columns {
        let (name, optional) = match column.strip_suffix('?') {
            Some(name) => (name, true),
            None => (*column, false),
        };
        let index = headers.iter().position(|h| h.trim() == name);
        if index.is_none() && !optional {
            return Err(format!("{file} has no column {name}"));
        }
        indexes.push(index);
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("{file}: {e}"))?;
        rows.push(indexes.iter().map(|i| i.and_then(|i| record.get(i)).unwrap_or("").trim().to_owned()).collect());
    }
    Ok(rows)
}

fn parse_bool(file: &str, value: &str, default: bool) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "" => Ok(default),
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("{file}: not true/false: {other:?}")),
    }
}

/// The number after the last `-` of a request key (`SUP-12` → 12).
fn request_number(key: &str) -> Result<u64, String> {
    key.rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .ok_or_else(|| format!("requests.csv: bad request key {key:?}"))
}

impl Site {
    fn load(dir: &Path, options: &FakeOptions) -> Result<Site, String> {
        let mut accounts = BTreeMap::new();
        for row in read_csv(
            dir,
            "accounts.csv",
            true,
            &["account_id", "account_type", "email", "display_name", "active?", "email_verified?"],
        )? {
            let kind = match row[1].as_str() {
                "atlassian" => "atlassian",
                "customer" => "customer",
                other => return Err(format!("accounts.csv: unknown account_type {other:?}")),
            };
            let account = Account {
                id: row[0].clone(),
                kind,
                email: Some(row[2].clone()).filter(|e| !e.is_empty()),
                name: row[3].clone(),
                active: parse_bool("accounts.csv", &row[4], true)?,
                email_verified: parse_bool("accounts.csv", &row[5], false)?,
            };
            if account.id.is_empty() {
                return Err("accounts.csv: empty account_id".to_owned());
            }
            accounts.insert(account.id.clone(), account);
        }
        if options.app_comment {
            accounts.insert(
                APP_ACCOUNT_ID.to_owned(),
                Account {
                    id: APP_ACCOUNT_ID.to_owned(),
                    kind: "app",
                    email: None,
                    name: "Automation for Jira".to_owned(),
                    active: true,
                    email_verified: false,
                },
            );
        }
        let known = |file: &str, id: &str| -> Result<String, String> {
            if accounts.contains_key(id) { Ok(id.to_owned()) } else { Err(format!("{file}: unknown account {id:?}")) }
        };

        // Projects, one service desk each, by key.
        let mut names = BTreeMap::new();
        for row in read_csv(dir, "projects.csv", false, &["project_key", "name"])? {
            names.insert(row[0].clone(), row[1].clone());
        }
        let mut projects: Vec<Project> = names
            .into_iter()
            .enumerate()
            .map(|(i, (key, name))| Project {
                key,
                name,
                desk: i + 1,
                customers: Vec::new(),
                customer_groups: Vec::new(),
                organizations: Vec::new(),
                requests: Vec::new(),
            })
            .collect();
        let project_index: HashMap<String, usize> =
            projects.iter().enumerate().map(|(i, p)| (p.key.clone(), i)).collect();
        let project = |file: &str, key: &str| -> Result<usize, String> {
            project_index.get(key).copied().ok_or_else(|| format!("{file}: unknown project {key:?}"))
        };

        let mut customers: Vec<BTreeSet<String>> = vec![BTreeSet::new(); projects.len()];
        for row in read_csv(dir, "customers.csv", false, &["project_key", "account_id"])? {
            customers[project("customers.csv", &row[0])?].insert(known("customers.csv", &row[1])?);
        }

        // Groups (a group may also be named only by customer_roles.csv).
        let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for row in read_csv(dir, "groups.csv", false, &["group_name", "account_id"])? {
            let group = members.entry(row[0].clone()).or_default();
            if !row[1].is_empty() {
                group.insert(known("groups.csv", &row[1])?);
            }
        }
        let mut roles: Vec<BTreeSet<String>> = vec![BTreeSet::new(); projects.len()];
        for row in read_csv(dir, "customer_roles.csv", false, &["project_key", "group_name"])? {
            roles[project("customer_roles.csv", &row[0])?].insert(row[1].clone());
            members.entry(row[1].clone()).or_default();
        }
        let groups: BTreeMap<String, Group> = members
            .into_iter()
            .map(|(name, members)| {
                let members: Vec<String> = members.into_iter().collect();
                let active_members =
                    members.iter().filter(|id| accounts.get(*id).is_some_and(|a| a.active)).cloned().collect();
                (name.clone(), Group { id: fake_uuid(&name), members, active_members })
            })
            .collect();

        // Organizations: every name organizations.csv, organization_projects.csv
        // or requests.csv gives, by name.
        let mut org_members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for row in read_csv(dir, "organizations.csv", false, &["organization", "account_id"])? {
            let org = org_members.entry(row[0].clone()).or_default();
            if !row[1].is_empty() {
                org.insert(known("organizations.csv", &row[1])?);
            }
        }
        let links = read_csv(dir, "organization_projects.csv", false, &["organization", "project_key"])?;
        let requests = read_csv(
            dir,
            "requests.csv",
            false,
            &[
                "request_key",
                "project_key",
                "summary",
                "status",
                "created",
                "reporter_id",
                "participant_ids?",
                "organization?",
            ],
        )?;
        for name in links.iter().map(|r| &r[0]).chain(requests.iter().map(|r| &r[7])) {
            if !name.is_empty() {
                org_members.entry(name.clone()).or_default();
            }
        }
        let organizations: Vec<Organization> = org_members
            .into_iter()
            .enumerate()
            .map(|(i, (name, members))| Organization { id: i + 1, name, members: members.into_iter().collect() })
            .collect();
        let org_index: HashMap<String, usize> =
            organizations.iter().enumerate().map(|(i, o)| (o.name.clone(), i)).collect();
        let mut desk_orgs: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); projects.len()];
        for row in &links {
            if let Some(&org) = org_index.get(&row[0]) {
                desk_orgs[project("organization_projects.csv", &row[1])?].insert(org);
            }
        }

        // Requests, by project key then number; ids 10001, 10002, … in that order.
        let mut issues = Vec::new();
        let mut statuses = BTreeMap::new();
        let mut by_project: Vec<(usize, u64, Vec<String>)> = Vec::new();
        for row in requests {
            by_project.push((project("requests.csv", &row[1])?, request_number(&row[0])?, row));
        }
        by_project.sort_by(|a, b| (&projects[a.0].key, a.1).cmp(&(&projects[b.0].key, b.1)));
        for (n, (p, number, row)) in by_project.into_iter().enumerate() {
            let participants = row[6]
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|id| known("requests.csv", id))
                .collect::<Result<Vec<_>, _>>()?;
            statuses.insert(row[3].clone(), 0);
            projects[p].requests.push(issues.len());
            issues.push(Issue {
                id: 10001 + n as u64,
                key: row[0].clone(),
                number,
                summary: row[2].clone(),
                status: row[3].clone(),
                created: parse_time(&row[4]).ok_or_else(|| format!("requests.csv: bad created {:?}", row[4]))?,
                reporter: known("requests.csv", &row[5])?,
                participants,
                organization: Some(&row[7]).filter(|o| !o.is_empty()).and_then(|o| org_index.get(o).copied()),
                comments: Vec::new(),
            });
        }
        for (i, id) in statuses.values_mut().enumerate() {
            *id = 10000 + i as u64;
        }
        let issue_index: HashMap<String, usize> = issues.iter().enumerate().map(|(i, r)| (r.key.clone(), i)).collect();

        // Comments: the snapshot's (public), one internal note on each
        // request that has any, and the app's comment on the first request.
        for row in read_csv(dir, "comments.csv", false, &["request_key", "author_id", "created", "body"])? {
            let issue =
                *issue_index.get(&row[0]).ok_or_else(|| format!("comments.csv: unknown request {:?}", row[0]))?;
            issues[issue].comments.push(Comment {
                id: 0,
                author: known("comments.csv", &row[1])?,
                created: parse_time(&row[2]).ok_or_else(|| format!("comments.csv: bad created {:?}", row[2]))?,
                body: row[3].clone(),
                public: true,
            });
        }
        let agent = accounts.values().find(|a| a.kind == "atlassian").map(|a| a.id.clone());
        for issue in &mut issues {
            issue.comments.sort_by_key(|c| c.created);
            if let Some(last) = issue.comments.last() {
                let author = agent.clone().unwrap_or_else(|| last.author.clone());
                let created = last.created + 60_000;
                issue.comments.push(Comment {
                    id: 0,
                    author,
                    created,
                    body: "Internal note: agents only, never shown to customers.".to_owned(),
                    public: false,
                });
            }
        }
        if options.app_comment
            && let Some(first) = issues.first_mut()
        {
            first.comments.push(Comment {
                id: 0,
                author: APP_ACCOUNT_ID.to_owned(),
                created: first.created + 30_000,
                body: "Thanks, your request has been received (automated message).".to_owned(),
                public: true,
            });
            first.comments.sort_by_key(|c| c.created);
        }
        for (id, comment) in (20001..).zip(issues.iter_mut().flat_map(|i| i.comments.iter_mut())) {
            comment.id = id;
        }

        for (i, project) in projects.iter_mut().enumerate() {
            project.customers = std::mem::take(&mut customers[i]).into_iter().collect();
            project.customer_groups = std::mem::take(&mut roles[i]).into_iter().collect();
            project.organizations = std::mem::take(&mut desk_orgs[i]).into_iter().collect();
        }
        let group_names = groups.iter().map(|(name, g)| (g.id.clone(), name.clone())).collect();
        let mut group_counts = HashMap::new();
        for member in groups.values().flat_map(|g| &g.members) {
            *group_counts.entry(member.clone()).or_insert(0) += 1;
        }
        let account_ids = accounts.keys().cloned().collect();
        Ok(Site {
            accounts,
            account_ids,
            projects,
            groups,
            group_names,
            group_counts,
            organizations,
            issues,
            issue_keys: issue_index,
            statuses,
        })
    }

    fn desk(&self, id: &str) -> Option<&Project> {
        let n: usize = id.parse().ok()?;
        self.projects.get(n.checked_sub(1)?)
    }

    /// A project by key (case-insensitive, like Jira) or numeric project id.
    fn project(&self, id_or_key: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.key.eq_ignore_ascii_case(id_or_key) || project_id(p) == id_or_key)
    }

    /// A request by key or numeric issue id.
    fn issue(&self, id_or_key: &str) -> Option<&Issue> {
        let index = match self.issue_keys.get(id_or_key) {
            Some(&index) => index,
            None => usize::try_from(id_or_key.parse::<u64>().ok()?.checked_sub(10001)?).ok()?,
        };
        self.issues.get(index)
    }

    fn group_by_id(&self, id: &str) -> Option<&Group> {
        self.groups.get(self.group_names.get(id)?)
    }
}

fn project_id(project: &Project) -> String {
    (10000 + project.desk).to_string()
}

/// A stable UUID-looking id for a name (FNV-1a).
fn fake_uuid(name: &str) -> String {
    fn fnv(bytes: &[u8], seed: u64) -> u64 {
        bytes.iter().fold(seed, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
    }
    let a = fnv(name.as_bytes(), 0xcbf2_9ce4_8422_2325);
    let b = fnv(name.as_bytes(), a ^ 0x9e37_79b9_7f4a_7c15);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

// ---------------------------------------------------------------------------
// Times
// ---------------------------------------------------------------------------

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let yoe = year - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (if month <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, month, day)
}

/// Milliseconds since the epoch of `2026-03-01T09:00:00Z`,
/// `2026-03-01T09:00:00.000Z`, `2026-03-01T09:00:00+02:00` or `…+0200`.
fn parse_time(text: &str) -> Option<i64> {
    let s = text.trim();
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if part.bytes().all(|c| c.is_ascii_digit()) { part.parse().ok() } else { None }
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" | "" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            sign * (digits[..2].parse::<i64>().ok()? * 60 + digits[2..].parse::<i64>().ok()?)
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Local civil time parts of an instant at an offset.
struct Local {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
    offset: String,
}

fn local(epoch_millis: i64, offset_minutes: i64) -> Local {
    let shifted = epoch_millis + offset_minutes * 60_000;
    let (days, in_day) = (shifted.div_euclid(86_400_000), shifted.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    Local {
        year,
        month,
        day,
        hour: in_day / 3_600_000,
        minute: in_day / 60_000 % 60,
        second: in_day / 1000 % 60,
        millis: in_day % 1000,
        offset: format!("{sign}{:02}{:02}", offset_minutes.abs() / 60, offset_minutes.abs() % 60),
    }
}

/// Jira's format, `2026-03-01T19:00:00.000+1000` (no colon in the offset).
fn jira_time(epoch_millis: i64, offset_minutes: i64) -> String {
    let t = local(epoch_millis, offset_minutes);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis, t.offset
    )
}

/// The service desk API's `DateDTO`.
fn date_dto(epoch_millis: i64, offset_minutes: i64) -> Value {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let t = local(epoch_millis, offset_minutes);
    let iso =
        format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}", t.year, t.month, t.day, t.hour, t.minute, t.second, t.offset);
    let month = MONTHS.get((t.month - 1) as usize).copied().unwrap_or("Jan");
    let (hour12, meridian) = match t.hour {
        0 => (12, "AM"),
        h if h < 12 => (h, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    json!({
        "epochMillis": epoch_millis,
        "friendly": format!("{:02}/{month}/{:02} {hour12}:{:02} {meridian}", t.day, t.year % 100, t.minute),
        "iso8601": iso,
        "jira": jira_time(epoch_millis, offset_minutes),
    })
}

/// Odd numbers are shown at +10:00, even ones at UTC: clients must convert.
fn offset_for(n: u64) -> i64 {
    if n % 2 == 1 { 600 } else { 0 }
}

// ---------------------------------------------------------------------------
// Server state, middleware and routes
// ---------------------------------------------------------------------------

struct Shared {
    site: Site,
    options: FakeOptions,
    base: String,
    requests: AtomicU64,
    throttled: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    by_template: Mutex<BTreeMap<String, u64>>,
    recording: AtomicBool,
    recorded: Mutex<Vec<Recorded>>,
}

type Ctx = State<Arc<Shared>>;
type Params = Query<Vec<(String, String)>>;
type Reply = Result<Response, Response>;

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/rest/servicedeskapi/servicedesk", get(servicedesks))
        .route("/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer", get(desk_customers))
        .route("/rest/servicedeskapi/servicedesk/{serviceDeskId}/organization", get(desk_organizations))
        .route("/rest/servicedeskapi/organization", get(organizations))
        .route("/rest/servicedeskapi/organization/{organizationId}/user", get(organization_users))
        .route("/rest/servicedeskapi/request/{issueIdOrKey}/comment", get(request_comments))
        .route("/rest/api/3/users/search", get(users_search))
        .route("/rest/api/3/user", get(user))
        .route("/rest/api/3/project/{projectIdOrKey}/role", get(project_roles))
        .route("/rest/api/3/project/{projectIdOrKey}/role/{id}", get(project_role))
        .route("/rest/api/3/group/member", get(group_members))
        .route("/rest/api/3/field", get(fields))
        .route("/rest/api/3/search/jql", post(search_jql))
        .route("/admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}", get(admin_user))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

/// Counts a request in flight while alive.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> InFlight<'a> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(&shared.in_flight)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Every request passes here: counting, throttling, authentication, and
/// recording of the response.
async fn gate(State(shared): Ctx, request: Request, next: Next) -> Response {
    let _in_flight = InFlight::enter(&shared);
    // Give concurrent requests a chance to overlap, as on a real server.
    tokio::task::yield_now().await;
    let method = request.method().to_string();
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| request.uri().path().to_owned(), |m| m.as_str().to_owned());
    let n = shared.requests.fetch_add(1, Ordering::SeqCst) + 1;
    *lock(&shared.by_template).entry(template.clone()).or_insert(0) += 1;

    let throttle = shared.options.throttle_every.is_some_and(|every| every > 0 && n % every == 0);
    let response = if throttle {
        shared.throttled.fetch_add(1, Ordering::SeqCst);
        let mut response = platform_error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded.");
        if let Ok(value) = HeaderValue::from_str(&shared.options.retry_after.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    } else if let Err(denied) = authenticate(&shared, request.uri().path(), request.headers()) {
        denied
    } else {
        next.run(request).await
    };

    if !shared.recording.load(Ordering::SeqCst) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    lock(&shared.recorded).push(Recorded { method, template, status: parts.status.as_u16(), body: json });
    Response::from_parts(parts, Body::from(bytes))
}

/// `/rest/...` needs the site's basic auth, `/admin/...` the admin bearer key.
fn authenticate(shared: &Shared, path: &str, headers: &HeaderMap) -> Result<(), Response> {
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (scheme, credentials) = given.split_once(' ').unwrap_or((given, ""));
    let credentials = credentials.trim();
    if path.starts_with("/rest/") {
        let expected = format!("{}:{}", shared.options.email, shared.options.token);
        let ok = scheme.eq_ignore_ascii_case("basic")
            && BASE64.decode(credentials).is_ok_and(|decoded| decoded == expected.as_bytes());
        if ok {
            return Ok(());
        }
        let message = "Client must be authenticated to access this resource.";
        return Err(if path.starts_with("/rest/servicedeskapi/") {
            jsm_error(StatusCode::UNAUTHORIZED, "sd.api.unauthorized", message)
        } else {
            platform_error(StatusCode::UNAUTHORIZED, message)
        });
    }
    if path.starts_with("/admin/") {
        if scheme.eq_ignore_ascii_case("bearer") && credentials == shared.options.admin_key {
            return Ok(());
        }
        return Err(admin_error(StatusCode::UNAUTHORIZED, "Unauthorized: missing or invalid API key"));
    }
    Ok(())
}

async fn not_found() -> Response {
    platform_error(StatusCode::NOT_FOUND, "Not found.")
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// The platform API's `ErrorCollection`.
fn platform_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"errorMessages": [message], "errors": {}}))).into_response()
}

/// The service desk API's `ErrorResponse`.
fn jsm_error(status: StatusCode, key: &str, message: &str) -> Response {
    let body = json!({"errorMessage": message, "i18nErrorMessage": {"i18nKey": key, "parameters": []}});
    (status, axum::Json(body)).into_response()
}

/// The organization admin API's error body.
fn admin_error(status: StatusCode, message: &str) -> Response {
    let body = json!({"errors": [{"status": status.as_u16().to_string(), "title": message}]});
    (status, axum::Json(body)).into_response()
}

// --- query parameters ---

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn int_param(params: &[(String, String)], name: &str, default: i64) -> Result<i64, String> {
    match param(params, name) {
        None | Some("") => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| format!("The value '{v}' is not valid for parameter '{name}'.")),
    }
}

fn bool_param(params: &[(String, String)], name: &str, default: bool) -> Result<bool, String> {
    match param(params, name).map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(format!("The value '{v}' is not valid for parameter '{name}'.")),
    }
}

/// Percent-encodes a query or path value (keeps unreserved characters and `:`).
fn enc(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// --- paging ---

/// The service desk API's paging: `start`, `limit` (default 50), page length
/// `min(limit, page_cap)`.
fn jsm_window(shared: &Shared, params: &[(String, String)]) -> Result<(usize, usize), Response> {
    let bad = |m: String| jsm_error(StatusCode::BAD_REQUEST, "sd.api.pagination.invalid", &m);
    let start = int_param(params, "start", 0).map_err(bad)?;
    let limit = int_param(params, "limit", 50).map_err(bad)?;
    if start < 0 {
        return Err(bad("The start parameter must be zero or positive.".to_owned()));
    }
    if limit < 1 {
        return Err(bad("The limit parameter must be positive.".to_owned()));
    }
    Ok((usize::try_from(start).unwrap_or(usize::MAX), usize::try_from(limit).unwrap_or(usize::MAX).min(cap(shared))))
}

fn cap(shared: &Shared) -> usize {
    shared.options.page_cap.max(1)
}

/// A `PagedDTO…` page of `total` items from `start`, `limit` at most.
/// `query` holds the other query parameters for the page links (`a=b&`).
fn jsm_page(
    shared: &Shared,
    path: &str,
    query: &str,
    (start, limit): (usize, usize),
    total: usize,
    render: impl Fn(usize) -> Value,
) -> Response {
    let end = start.saturating_add(limit).min(total);
    let values: Vec<Value> = (start.min(end)..end).map(render).collect();
    let last = end >= total;
    let base = &shared.base;
    let link = |start: usize| format!("{base}{path}?{query}start={start}&limit={limit}");
    let mut links = Map::new();
    links.insert("base".to_owned(), json!(format!("{base}/rest/servicedeskapi")));
    links.insert("context".to_owned(), json!(""));
    links.insert("self".to_owned(), json!(link(start)));
    if !last {
        links.insert("next".to_owned(), json!(link(end)));
    }
    if start > 0 {
        links.insert("prev".to_owned(), json!(link(start.saturating_sub(limit))));
    }
    ok(json!({
        "_expands": [],
        "size": values.len(),
        "start": start,
        "limit": limit,
        "isLastPage": last,
        "_links": links,
        "values": values,
    }))
}

// --- object renderings ---

impl Shared {
    fn account(&self, id: &str) -> Option<&Account> {
        self.site.accounts.get(id)
    }

    fn email<'a>(&self, account: &'a Account) -> Option<&'a str> {
        if self.options.hidden_emails.contains(&account.id) { None } else { account.email.as_deref() }
    }

    fn avatars(&self, account: &Account) -> Value {
        let url = |size: u32| format!("{}/secure/useravatar?size={size}&accountId={}", self.base, enc(&account.id));
        json!({"16x16": url(16), "24x24": url(24), "32x32": url(32), "48x48": url(48)})
    }

    fn user_url(&self, account: &Account) -> String {
        format!("{}/rest/api/3/user?accountId={}", self.base, enc(&account.id))
    }

    /// The service desk API's `UserDTO`.
    fn user_dto(&self, id: &str) -> Value {
        let Some(account) = self.account(id) else { return json!({"accountId": id}) };
        let mut user = Map::new();
        user.insert("accountId".to_owned(), json!(account.id));
        if let Some(email) = self.email(account) {
            user.insert("emailAddress".to_owned(), json!(email));
        }
        user.insert("displayName".to_owned(), json!(account.name));
        user.insert("active".to_owned(), json!(account.active));
        user.insert("timeZone".to_owned(), json!("UTC"));
        let rest = format!("{}/rest/api/2/user?accountId={}", self.base, enc(&account.id));
        user.insert("_links".to_owned(), json!({"jiraRest": rest, "avatarUrls": self.avatars(account), "self": rest}));
        Value::Object(user)
    }

    /// The platform API's `UserDetails` (group members, issue users); with
    /// `full` the `User` of `users/search` (adds `locale`).
    fn user_details(&self, id: &str, full: bool) -> Value {
        let Some(account) = self.account(id) else { return json!({"accountId": id}) };
        let mut user = Map::new();
        user.insert("self".to_owned(), json!(self.user_url(account)));
        user.insert("accountId".to_owned(), json!(account.id));
        user.insert("accountType".to_owned(), json!(account.kind));
        if let Some(email) = self.email(account) {
            user.insert("emailAddress".to_owned(), json!(email));
        }
        user.insert("avatarUrls".to_owned(), self.avatars(account));
        user.insert("displayName".to_owned(), json!(account.name));
        user.insert("active".to_owned(), json!(account.active));
        user.insert("timeZone".to_owned(), json!("UTC"));
        if full {
            user.insert("locale".to_owned(), json!("en_US"));
        }
        Value::Object(user)
    }

    /// `OrganizationDTO`.
    fn organization(&self, index: usize) -> Value {
        let org = &self.site.organizations[index];
        json!({
            "id": org.id.to_string(),
            "name": org.name,
            "scimManaged": false,
            "_links": {"self": format!("{}/rest/servicedeskapi/organization/{}", self.base, org.id)},
        })
    }

    fn role_url(&self, project: &Project, role: u64) -> String {
        format!("{}/rest/api/3/project/{}/role/{role}", self.base, enc(&project.key))
    }
}

// --- handlers: service desk API ---

async fn servicedesks(State(shared): Ctx, Query(params): Params) -> Reply {
    let window = jsm_window(&shared, &params)?;
    let site = &shared.site;
    Ok(jsm_page(&shared, "/rest/servicedeskapi/servicedesk", "", window, site.projects.len(), |i| {
        let project = &site.projects[i];
        json!({
            "id": project.desk.to_string(),
            "projectId": project_id(project),
            "projectKey": project.key,
            "projectName": project.name,
            "projectTypeKey": "service_desk",
            "_links": {"self": format!("{}/rest/servicedeskapi/servicedesk/{}", shared.base, project.desk)},
        })
    }))
}

fn unknown_desk(id: &str) -> Response {
    jsm_error(StatusCode::NOT_FOUND, "sd.api.servicedesk.not.found", &format!("Service desk {id} does not exist."))
}

async fn desk_customers(
    State(shared): Ctx,
    UrlPath(desk): UrlPath<String>,
    headers: HeaderMap,
    Query(params): Params,
) -> Reply {
    let opted_in = headers
        .get("X-ExperimentalApi")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case("opt-in")));
    if !opted_in {
        return Err(jsm_error(
            StatusCode::PRECONDITION_FAILED,
            "sd.api.experimental.required",
            "This API is experimental. Experimental APIs are not guaranteed to be stable within the preview period. \
             You must set the header 'X-ExperimentalApi: opt-in' to opt into using this API.",
        ));
    }
    let project = shared.site.desk(&desk).ok_or_else(|| unknown_desk(&desk))?;
    let window = jsm_window(&shared, &params)?;
    let path = format!("/rest/servicedeskapi/servicedesk/{}/customer", project.desk);
    Ok(jsm_page(&shared, &path, "", window, project.customers.len(), |i| shared.user_dto(&project.customers[i])))
}

async fn desk_organizations(State(shared): Ctx, UrlPath(desk): UrlPath<String>, Query(params): Params) -> Reply {
    let project = shared.site.desk(&desk).ok_or_else(|| unknown_desk(&desk))?;
    let window = jsm_window(&shared, &params)?;
    let path = format!("/rest/servicedeskapi/servicedesk/{}/organization", project.desk);
    Ok(jsm_page(&shared, &path, "", window, project.organizations.len(), |i| {
        shared.organization(project.organizations[i])
    }))
}

async fn organizations(State(shared): Ctx, Query(params): Params) -> Reply {
    let window = jsm_window(&shared, &params)?;
    // `accountId` narrows the list to that account's organizations.
    let account = param(&params, "accountId");
    let matching: Vec<usize> = (0..shared.site.organizations.len())
        .filter(|&i| {
            account.is_none_or(|a| shared.site.organizations[i].members.binary_search_by(|m| m.as_str().cmp(a)).is_ok())
        })
        .collect();
    let query = account.map(|a| format!("accountId={}&", enc(a))).unwrap_or_default();
    Ok(jsm_page(&shared, "/rest/servicedeskapi/organization", &query, window, matching.len(), |i| {
        shared.organization(matching[i])
    }))
}

async fn organization_users(State(shared): Ctx, UrlPath(id): UrlPath<String>, Query(params): Params) -> Reply {
    let org =
        id.parse::<usize>().ok().and_then(|n| shared.site.organizations.get(n.checked_sub(1)?)).ok_or_else(|| {
            jsm_error(
                StatusCode::NOT_FOUND,
                "sd.api.organization.not.found",
                &format!("Organization {id} does not exist."),
            )
        })?;
    let window = jsm_window(&shared, &params)?;
    let path = format!("/rest/servicedeskapi/organization/{}/user", org.id);
    Ok(jsm_page(&shared, &path, "", window, org.members.len(), |i| shared.user_dto(&org.members[i])))
}

async fn request_comments(State(shared): Ctx, UrlPath(id): UrlPath<String>, Query(params): Params) -> Reply {
    let issue = shared.site.issue(&id).ok_or_else(|| {
        jsm_error(StatusCode::NOT_FOUND, "sd.api.request.not.found", &format!("Request {id} does not exist."))
    })?;
    let bad = |m: String| jsm_error(StatusCode::BAD_REQUEST, "sd.api.parameter.invalid", &m);
    // Both default to true, as in Jira: a client that does not ask for
    // internal=false gets the agents' internal notes too.
    let public = bool_param(&params, "public", true).map_err(bad)?;
    let internal = bool_param(&params, "internal", true).map_err(bad)?;
    let window = jsm_window(&shared, &params)?;
    let comments: Vec<&Comment> = issue.comments.iter().filter(|c| if c.public { public } else { internal }).collect();
    let path = format!("/rest/servicedeskapi/request/{}/comment", enc(&id));
    let query = format!("public={public}&internal={internal}&");
    Ok(jsm_page(&shared, &path, &query, window, comments.len(), |i| {
        let comment = comments[i];
        json!({
            "_expands": ["attachment", "renderedBody"],
            "id": comment.id.to_string(),
            "body": comment.body,
            "public": comment.public,
            "author": shared.user_dto(&comment.author),
            "created": date_dto(comment.created, offset_for(comment.id)),
            "_links": {"self": format!("{}/rest/servicedeskapi/request/{}/comment/{}", shared.base, issue.id, comment.id)},
        })
    }))
}

// --- handlers: platform API ---

async fn users_search(State(shared): Ctx, Query(params): Params) -> Reply {
    let bad = |m: String| platform_error(StatusCode::BAD_REQUEST, &m);
    let start = int_param(&params, "startAt", 0).map_err(bad)?;
    let max = int_param(&params, "maxResults", 50).map_err(bad)?;
    if start < 0 || max < 0 {
        return Err(bad("startAt and maxResults must not be negative.".to_owned()));
    }
    if let Some(limit) = shared.options.users_search_limit
        && usize::try_from(max).unwrap_or(usize::MAX) > limit
    {
        return Err(platform_error(
            StatusCode::CONFLICT,
            "The request took longer than 10 seconds to complete. Try again with a smaller maxResults.",
        ));
    }
    let start = usize::try_from(start).unwrap_or(usize::MAX);
    let len = usize::try_from(max).unwrap_or(usize::MAX).min(1000).min(cap(&shared));
    let users: Vec<Value> = shared
        .site
        .account_ids
        .get(start..)
        .unwrap_or_default()
        .iter()
        .take(len)
        .map(|id| shared.user_details(id, true))
        .collect();
    Ok(ok(Value::Array(users)))
}

async fn user(State(shared): Ctx, Query(params): Params) -> Reply {
    let Some(id) = param(&params, "accountId").filter(|id| !id.is_empty()) else {
        return Err(platform_error(StatusCode::BAD_REQUEST, "The query parameter 'accountId' is required."));
    };
    if shared.account(id).is_none() {
        return Err(platform_error(
            StatusCode::NOT_FOUND,
            "Specified user does not exist or you do not have required permissions",
        ));
    }
    let mut user = shared.user_details(id, true);
    let groups = shared.site.group_counts.get(id).copied().unwrap_or(0);
    if let Value::Object(map) = &mut user {
        map.insert("groups".to_owned(), json!({"size": groups, "items": []}));
        map.insert("applicationRoles".to_owned(), json!({"size": 1, "items": []}));
        map.insert("expand".to_owned(), json!("groups,applicationRoles"));
    }
    Ok(ok(user))
}

fn unknown_project(id: &str) -> Response {
    platform_error(StatusCode::NOT_FOUND, &format!("No project could be found with key '{id}'."))
}

async fn project_roles(State(shared): Ctx, UrlPath(id): UrlPath<String>) -> Reply {
    let project = shared.site.project(&id).ok_or_else(|| unknown_project(&id))?;
    let roles: Map<String, Value> =
        ROLES.iter().map(|(role, name, _)| ((*name).to_owned(), json!(shared.role_url(project, *role)))).collect();
    Ok(ok(Value::Object(roles)))
}

async fn project_role(
    State(shared): Ctx,
    UrlPath((id, role)): UrlPath<(String, String)>,
    Query(params): Params,
) -> Reply {
    let project = shared.site.project(&id).ok_or_else(|| unknown_project(&id))?;
    let exclude_inactive =
        bool_param(&params, "excludeInactiveUsers", false).map_err(|m| platform_error(StatusCode::BAD_REQUEST, &m))?;
    let Some(&(role, name, description)) = ROLES.iter().find(|(r, _, _)| r.to_string() == role) else {
        return Err(platform_error(StatusCode::NOT_FOUND, "Can not retrieve a role actor for a null project role."));
    };
    let mut actors = Vec::new();
    if role == CUSTOMERS_ROLE {
        let first_actor_id = 10_200 + 100 * project.desk as u64;
        for (k, group) in project.customer_groups.iter().enumerate() {
            let group_id = shared.site.groups.get(group).map_or_else(|| fake_uuid(group), |g| g.id.clone());
            actors.push(json!({
                "id": first_actor_id + k as u64,
                "displayName": group,
                "type": "atlassian-group-role-actor",
                "name": group,
                "actorGroup": {"name": group, "displayName": group, "groupId": group_id},
            }));
        }
        // The other actor kind: the desk's first atlassian customer.
        let user = project
            .customers
            .iter()
            .filter_map(|id| shared.account(id))
            .find(|a| a.kind == "atlassian")
            .filter(|a| a.active || !exclude_inactive);
        if let Some(account) = user {
            actors.push(json!({
                "id": first_actor_id + 99,
                "displayName": account.name,
                "type": "atlassian-user-role-actor",
                "actorUser": {"accountId": account.id},
            }));
        }
    }
    Ok(ok(json!({
        "self": shared.role_url(project, role),
        "name": name,
        "id": role,
        "description": description,
        "actors": actors,
    })))
}

async fn group_members(State(shared): Ctx, Query(params): Params) -> Reply {
    let bad = |m: String| platform_error(StatusCode::BAD_REQUEST, &m);
    let group = match (param(&params, "groupId"), param(&params, "groupname")) {
        (Some(id), None) => shared.site.group_by_id(id),
        (None, Some(name)) => shared.site.groups.get(name),
        (Some(_), Some(_)) => return Err(bad("Only one of groupId and groupname may be given.".to_owned())),
        (None, None) => return Err(bad("You must specify a group name or ID.".to_owned())),
    }
    .ok_or_else(|| platform_error(StatusCode::NOT_FOUND, "Group does not exist."))?;
    let include_inactive = bool_param(&params, "includeInactiveUsers", false).map_err(bad)?;
    let start = int_param(&params, "startAt", 0).map_err(bad)?;
    let max = int_param(&params, "maxResults", 50).map_err(bad)?;
    if start < 0 || max < 1 {
        return Err(bad("startAt must not be negative and maxResults must be positive.".to_owned()));
    }
    let members = if include_inactive { &group.members } else { &group.active_members };
    let start = usize::try_from(start).unwrap_or(usize::MAX);
    let len = usize::try_from(max).unwrap_or(usize::MAX).min(50).min(cap(&shared));
    let end = start.saturating_add(len).min(members.len());
    let values: Vec<Value> = members[start.min(end)..end].iter().map(|id| shared.user_details(id, false)).collect();
    let link = |at: usize| {
        format!(
            "{}/rest/api/3/group/member?groupId={}&includeInactiveUsers={include_inactive}&startAt={at}&maxResults={len}",
            shared.base, group.id
        )
    };
    let last = end >= members.len();
    let mut page = Map::new();
    page.insert("self".to_owned(), json!(link(start)));
    if !last {
        page.insert("nextPage".to_owned(), json!(link(end)));
    }
    page.insert("maxResults".to_owned(), json!(len));
    page.insert("startAt".to_owned(), json!(start));
    page.insert("total".to_owned(), json!(members.len()));
    page.insert("isLast".to_owned(), json!(last));
    page.insert("values".to_owned(), json!(values));
    Ok(ok(Value::Object(page)))
}

async fn fields() -> Response {
    let system = |id: &str, name: &str, kind: Value| {
        json!({
            "id": id, "key": id, "name": name, "custom": false, "orderable": true, "navigable": true,
            "searchable": true, "clauseNames": [id], "schema": kind,
        })
    };
    let custom = |n: u64, name: &str, kind: Value| {
        let id = format!("customfield_{n}");
        json!({
            "id": id, "key": id, "name": name, "custom": true, "orderable": true, "navigable": true,
            "searchable": true, "clauseNames": [format!("cf[{n}]"), name], "schema": kind,
        })
    };
    ok(json!([
        system("summary", "Summary", json!({"type": "string", "system": "summary"})),
        system("status", "Status", json!({"type": "status", "system": "status"})),
        system("created", "Created", json!({"type": "datetime", "system": "created"})),
        system("reporter", "Reporter", json!({"type": "user", "system": "reporter"})),
        custom(
            10024,
            "Request participants",
            json!({
                "type": "array", "items": "user",
                "custom": "com.atlassian.servicedesk:sd-request-participants", "customId": 10024,
            })
        ),
        custom(
            10002,
            "Organizations",
            json!({
                "type": "array", "items": "sd-customerorganization",
                "custom": "com.atlassian.servicedesk:sd-customer-organizations", "customId": 10002,
            })
        ),
        custom(
            10010,
            "Request Type",
            json!({
                "type": "sd-customerrequesttype",
                "custom": "com.atlassian.servicedesk:vp-origin", "customId": 10010,
            })
        ),
    ]))
}

/// The project key of `project = "KEY" ORDER BY key ASC` (quotes optional,
/// keywords in any case), the only JQL the fake understands.
fn jql_project(jql: &str) -> Option<String> {
    let (field, rest) = jql.split_once('=')?;
    if !field.trim().eq_ignore_ascii_case("project") {
        return None;
    }
    let rest = rest.trim_start();
    let (key, tail) = match rest.chars().next()? {
        quote @ ('"' | '\'') => {
            let inner = &rest[1..];
            let close = inner.find(quote)?;
            (&inner[..close], &inner[close + 1..])
        }
        _ => rest.split_at(rest.find(char::is_whitespace)?),
    };
    let order: Vec<String> = tail.split_whitespace().map(str::to_ascii_lowercase).collect();
    (!key.is_empty() && order == ["order", "by", "key", "asc"]).then(|| key.to_owned())
}

async fn search_jql(State(shared): Ctx, headers: HeaderMap, body: Bytes) -> Reply {
    let bad = |m: &str| platform_error(StatusCode::BAD_REQUEST, m);
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"));
    if !json_body {
        return Err(platform_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type: use application/json.",
        ));
    }
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&body) else {
        return Err(bad("The request body is not a JSON object."));
    };
    const KNOWN: [&str; 8] =
        ["expand", "fields", "fieldsByKeys", "jql", "maxResults", "nextPageToken", "properties", "reconcileIssues"];
    if let Some(unknown) = request.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad(&format!("Unrecognized field \"{unknown}\".")));
    }
    let jql = request.get("jql").and_then(Value::as_str).unwrap_or("");
    let Some(key) = jql_project(jql) else {
        return Err(bad(&format!("The fake Jira only understands `project = \"KEY\" ORDER BY key ASC`, not: {jql}")));
    };
    let project = shared
        .site
        .projects
        .iter()
        .find(|p| p.key.eq_ignore_ascii_case(&key))
        .ok_or_else(|| bad(&format!("The value '{key}' does not exist for the field 'project'.")))?;
    let max = match request.get("maxResults") {
        None | Some(Value::Null) => 50,
        Some(v) => v.as_u64().filter(|n| *n > 0).ok_or_else(|| bad("maxResults must be a positive integer."))?,
    };
    let start = match request.get("nextPageToken") {
        None | Some(Value::Null) => 0,
        Some(Value::String(token)) => decode_token(token).ok_or_else(|| bad("The nextPageToken is not valid."))?,
        Some(_) => return Err(bad("nextPageToken must be a string.")),
    };
    let mut wanted = BTreeSet::new();
    let mut unwanted = BTreeSet::new();
    for entry in request.get("fields").and_then(Value::as_array).into_iter().flatten() {
        for name in entry.as_str().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some(name) = name.strip_prefix('-') {
                unwanted.insert(name.to_owned());
            } else if name == "*all" || name == "*navigable" {
                wanted.extend(ISSUE_FIELDS.iter().map(|f| (*f).to_owned()));
            } else {
                wanted.insert(name.to_owned());
            }
        }
    }
    wanted.retain(|f| !unwanted.contains(f));
    let ids_only = wanted.iter().all(|f| f == "id");

    let len = usize::try_from(max).unwrap_or(usize::MAX).min(5000).min(cap(&shared));
    let end = start.saturating_add(len).min(project.requests.len());
    let issues: Vec<Value> = project.requests[start.min(end)..end]
        .iter()
        .map(|&i| {
            let issue = &shared.site.issues[i];
            if ids_only {
                return json!({"id": issue.id.to_string()});
            }
            let fields: Map<String, Value> = ISSUE_FIELDS
                .iter()
                .filter(|f| wanted.contains(**f))
                .map(|f| ((*f).to_owned(), issue_field(&shared, issue, f)))
                .collect();
            json!({
                "expand": "",
                "id": issue.id.to_string(),
                "key": issue.key,
                "self": format!("{}/rest/api/3/issue/{}", shared.base, issue.id),
                "fields": fields,
            })
        })
        .collect();
    let last = end >= project.requests.len();
    let mut page = Map::new();
    page.insert("issues".to_owned(), json!(issues));
    if !last {
        page.insert("nextPageToken".to_owned(), json!(BASE64.encode(format!("offset:{end}"))));
    }
    page.insert("isLast".to_owned(), json!(last));
    Ok(ok(Value::Object(page)))
}

fn decode_token(token: &str) -> Option<usize> {
    let decoded = String::from_utf8(BASE64.decode(token).ok()?).ok()?;
    decoded.strip_prefix("offset:")?.parse().ok()
}

fn issue_field(shared: &Shared, issue: &Issue, field: &str) -> Value {
    match field {
        "summary" => json!(issue.summary),
        "created" => json!(jira_time(issue.created, offset_for(issue.number))),
        "reporter" => shared.user_details(&issue.reporter, false),
        "status" => {
            let id = shared.site.statuses.get(&issue.status).copied().unwrap_or(10000);
            let lower = issue.status.to_ascii_lowercase();
            let (category, key, color, category_name) =
                if ["done", "resolved", "closed", "canceled", "cancelled", "completed"].contains(&lower.as_str()) {
                    (3, "done", "green", "Done")
                } else if ["open", "new", "to do", "waiting for support", "backlog"].contains(&lower.as_str()) {
                    (2, "new", "blue-gray", "To Do")
                } else {
                    (4, "indeterminate", "yellow", "In Progress")
                };
            json!({
                "self": format!("{}/rest/api/3/status/{id}", shared.base),
                "description": "",
                "iconUrl": format!("{}/images/icons/statuses/generic.png", shared.base),
                "name": issue.status,
                "id": id.to_string(),
                "statusCategory": {
                    "self": format!("{}/rest/api/3/statuscategory/{category}", shared.base),
                    "id": category, "key": key, "colorName": color, "name": category_name,
                },
            })
        }
        "customfield_10024" if issue.participants.is_empty() => Value::Null,
        "customfield_10024" => issue.participants.iter().map(|id| shared.user_details(id, false)).collect(),
        "customfield_10002" => issue.organization.map_or(Value::Null, |org| json!([shared.organization(org)])),
        _ => Value::Null,
    }
}

// --- handler: organization admin API ---

async fn admin_user(State(shared): Ctx, UrlPath((org, _directory, id)): UrlPath<(String, String, String)>) -> Reply {
    let not_found = || admin_error(StatusCode::NOT_FOUND, "Not Found");
    if org != shared.options.org_id || shared.options.unmanaged.contains(&id) {
        return Err(not_found());
    }
    let account = shared.account(&id).filter(|a| a.kind == "atlassian").ok_or_else(not_found)?;
    let mut data = Map::new();
    data.insert("accountId".to_owned(), json!(account.id));
    data.insert("accountType".to_owned(), json!("atlassian"));
    data.insert("accountStatus".to_owned(), json!(if account.active { "active" } else { "inactive" }));
    if let Some(email) = &account.email {
        data.insert("email".to_owned(), json!(email));
    }
    data.insert("emailVerified".to_owned(), json!(account.email_verified));
    data.insert("name".to_owned(), json!(account.name));
    Ok(ok(json!({"data": data})))
}

// ---------------------------------------------------------------------------
// Validation against Atlassian's documents
// ---------------------------------------------------------------------------

/// Atlassian's OpenAPI documents, parsed once.
struct Reference {
    jsm: Value,
    platform: Value,
}

fn reference() -> Result<&'static Reference, String> {
    static REFERENCE: OnceLock<Result<Reference, String>> = OnceLock::new();
    let load = |file: &str| -> Result<Value, String> {
        let path = format!("{}/reference/jira/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
    };
    REFERENCE
        .get_or_init(|| Ok(Reference { jsm: load("jsm.v3.json")?, platform: load("jira-platform.v3.json")? }))
        .as_ref()
        .map_err(Clone::clone)
}

/// Validates each recorded 200 response body against the schema Atlassian's
/// OpenAPI document gives for its path template and method
/// (`responses."200".content."application/json".schema`), resolving the
/// document's `$ref`s; returns how many responses were validated, or one
/// message per failure naming method, template and the validation error.
///
/// `/rest/servicedeskapi/...` is checked against `reference/jira/jsm.v3.json`,
/// every other `/rest/...` against `reference/jira/jira-platform.v3.json`.
/// The organization admin API (`/admin/...`) is not in these documents and
/// is skipped (not counted); a 200 on any other template the documents do
/// not list is a failure. OpenAPI 3.0's `nullable: true` is translated to
/// JSON Schema (`"type": [T, "null"]`), OpenAPI-only annotations are
/// dropped, and validation is JSON Schema draft 4 with formats (`uri`)
/// checked, so missing required fields, wrong types, bad enum values and
/// properties an `additionalProperties: false` schema does not list fail.
pub fn validate_against_reference(responses: &[Recorded]) -> Result<usize, Vec<String>> {
    let reference = reference().map_err(|e| vec![e])?;
    let mut validators: HashMap<(String, String), Result<jsonschema::Validator, String>> = HashMap::new();
    let mut failures = Vec::new();
    let mut validated = 0;
    for response in responses.iter().filter(|r| r.status == 200 && !r.template.starts_with("/admin/")) {
        let method = response.method.to_ascii_lowercase();
        let validator = validators
            .entry((method.clone(), response.template.clone()))
            .or_insert_with(|| response_validator(reference, &method, &response.template));
        match validator {
            Err(e) => failures.push(format!("{} {}: {e}", response.method, response.template)),
            Ok(validator) => {
                validated += 1;
                for error in validator.iter_errors(&response.body).take(5) {
                    failures.push(format!(
                        "{} {}: {} (at {:?})",
                        response.method,
                        response.template,
                        error,
                        error.instance_path().to_string()
                    ));
                }
            }
        }
    }
    if failures.is_empty() { Ok(validated) } else { Err(failures) }
}

/// A validator for the 200 response of `method template`.
fn response_validator(reference: &Reference, method: &str, template: &str) -> Result<jsonschema::Validator, String> {
    let doc = if template.starts_with("/rest/servicedeskapi/") { &reference.jsm } else { &reference.platform };
    let schema = doc
        .get("paths")
        .and_then(|p| p.get(template))
        .and_then(|p| p.get(method))
        .and_then(|op| op.pointer("/responses/200/content/application~1json/schema"))
        .ok_or_else(|| "the reference documents give no 200 application/json schema for this".to_owned())?;
    let components = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .ok_or_else(|| "the reference document has no components.schemas".to_owned())?;
    // Only the components the schema reaches, translated to JSON Schema.
    let mut needed = BTreeSet::new();
    let mut pending = Vec::new();
    schema_refs(schema, &mut pending);
    while let Some(name) = pending.pop() {
        if needed.insert(name.clone()) {
            let component = components.get(&name).ok_or_else(|| format!("unresolvable $ref to {name}"))?;
            schema_refs(component, &mut pending);
        }
    }
    let subset: Map<String, Value> =
        needed.into_iter().filter_map(|n| components.get(&n).map(|s| (n, to_json_schema(s)))).collect();
    let root = json!({"allOf": [to_json_schema(schema)], "components": {"schemas": subset}});
    jsonschema::draft4::options()
        .should_validate_formats(true)
        .build(&root)
        .map_err(|e| format!("cannot build a validator from the reference schema: {e}"))
}

/// Names of the `#/components/schemas/…` a schema refers to.
fn schema_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref"
                    && let Some(name) = v.as_str().and_then(|r| r.strip_prefix("#/components/schemas/"))
                {
                    out.push(name.to_owned());
                } else {
                    schema_refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| schema_refs(v, out)),
        _ => {}
    }
}

/// An OpenAPI 3.0 schema object as JSON Schema (draft 4): keeps validation
/// keywords, drops annotations (`description`, `example`, `readOnly`, `xml`,
/// …), and turns `nullable: true` into a type that admits `null`.
fn to_json_schema(schema: &Value) -> Value {
    let Value::Object(map) = schema else { return schema.clone() };
    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "properties" | "patternProperties" => {
                let converted = value
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), to_json_schema(v))).collect::<Map<_, _>>())
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Object(converted));
            }
            "items" | "additionalProperties" | "additionalItems" | "not" => {
                out.insert(key.clone(), to_json_schema(value));
            }
            "allOf" | "anyOf" | "oneOf" => {
                let converted = value.as_array().map(|a| a.iter().map(to_json_schema).collect()).unwrap_or_default();
                out.insert(key.clone(), Value::Array(converted));
            }
            "$ref" | "type" | "enum" | "required" | "format" | "minimum" | "maximum" | "exclusiveMinimum"
            | "exclusiveMaximum" | "minLength" | "maxLength" | "pattern" | "minItems" | "maxItems" | "uniqueItems"
            | "minProperties" | "maxProperties" | "multipleOf" => {
                out.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    if map.get("nullable") == Some(&Value::Bool(true)) {
        if let Some(Value::Array(values)) = out.get_mut("enum") {
            values.push(Value::Null);
        }
        match out.get("type").cloned() {
            Some(Value::String(kind)) => {
                out.insert("type".to_owned(), json!([kind, "null"]));
            }
            _ => return json!({"anyOf": [Value::Object(out), {"type": "null"}]}),
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = parse_time("2026-03-01T09:00:00Z").unwrap();
        assert_eq!(t, 1_772_355_600_000);
        assert_eq!(parse_time("2026-03-01T09:00:00.000Z"), Some(t));
        assert_eq!(parse_time("2026-03-01T11:00:00+02:00"), Some(t));
        assert_eq!(parse_time("2026-03-01T04:00:00-0500"), Some(t));
        assert_eq!(parse_time("2026-03-01T09:00:00.250Z"), Some(t + 250));
        assert_eq!(jira_time(t, 600), "2026-03-01T19:00:00.000+1000");
        assert_eq!(jira_time(t, 0), "2026-03-01T09:00:00.000+0000");
        assert_eq!(jira_time(t, -330), "2026-03-01T03:30:00.000-0530");
        assert_eq!(parse_time(&jira_time(t + 7, 600)), Some(t + 7));
        assert_eq!(date_dto(t, 600)["friendly"], "01/Mar/26 7:00 PM");
        assert_eq!(parse_time("2026-02-30"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn jql_forms() {
        assert_eq!(jql_project("project = \"SUP\" ORDER BY key ASC").as_deref(), Some("SUP"));
        assert_eq!(jql_project("project=SUP order by key asc").as_deref(), Some("SUP"));
        assert_eq!(jql_project("project = 'SUP'  ORDER  BY key ASC").as_deref(), Some("SUP"));
        assert_eq!(jql_project("project = SUP ORDER BY created ASC"), None);
        assert_eq!(jql_project("project = SUP"), None);
        assert_eq!(jql_project("assignee = SUP ORDER BY key ASC"), None);
    }

    #[test]
    fn nullable_translates() {
        let converted = to_json_schema(&json!({"type": "string", "nullable": true, "description": "x"}));
        assert_eq!(converted, json!({"type": ["string", "null"]}));
        let converted = to_json_schema(&json!({"allOf": [{"$ref": "#/a"}], "nullable": true}));
        assert_eq!(converted, json!({"anyOf": [{"allOf": [{"$ref": "#/a"}]}, {"type": "null"}]}));
    }
}
