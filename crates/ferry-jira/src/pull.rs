//! Which endpoint each part of a site snapshot comes from (SPEC §8), and
//! the snapshot a pull writes.

use std::collections::BTreeSet;
use std::path::Path;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use reqwest::{Method, StatusCode};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Deserialize;
use serde_json::Value;

use crate::client::{Client, Service, ok_json, unexpected};
use crate::{PullConfig, PullError, PullProgress};

/// The role whose actors are a desk's customers.
const CUSTOMER_ROLE: &str = "Service Desk Customers";
const PARTICIPANTS_FIELD: &str = "com.atlassian.servicedesk:sd-request-participants";
const ORGANIZATIONS_FIELD: &str = "com.atlassian.servicedesk:sd-customer-organizations";

/// What a pull met besides the snapshot's rows.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PullReport {
    /// Rows written per snapshot file.
    pub counts: Vec<(&'static str, u64)>,
    /// Accounts whose email the site hides and nothing else told: kept
    /// with an empty email, never matched by email.
    pub hidden_emails: Vec<HiddenEmail>,
    /// Whether email verification of Atlassian accounts was read from the
    /// organization admin API (else every one counts as verified).
    pub verification_checked: bool,
    /// Atlassian accounts the organization does not manage (the admin API
    /// answered 404): counted as verified.
    pub unmanaged: Vec<String>,
    /// Accounts met of a type ferry does not copy (an app): left out.
    pub skipped_accounts: Vec<String>,
    /// Public comments by a skipped account, left out.
    pub skipped_comments: u64,
    /// Requests whose reporter is a skipped account (or none), left out.
    pub skipped_requests: u64,
    /// HTTP requests sent, and how many of them were retries.
    pub requests: u64,
    pub retries: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct HiddenEmail {
    pub account_id: String,
    pub account_type: &'static str,
    pub display_name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    account_id: String,
    #[serde(default)]
    account_type: Option<String>,
    #[serde(default)]
    email_address: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    active: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Desk {
    id: Value,
    project_key: String,
    #[serde(default)]
    project_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Organization {
    id: Value,
    name: String,
}

#[derive(Debug, Deserialize)]
struct Field {
    id: String,
    #[serde(default)]
    schema: Option<FieldSchema>,
}

#[derive(Debug, Deserialize)]
struct FieldSchema {
    #[serde(default)]
    custom: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Comment {
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    author: Option<User>,
    #[serde(default)]
    created: Option<Value>,
}

#[derive(Debug, Clone)]
struct Account {
    kind: &'static str,
    email: String,
    display_name: String,
    active: bool,
    verified: bool,
}

/// Everything read, before it is written.
#[derive(Default)]
struct Pulled {
    projects: Vec<(String, String)>,
    customers: BTreeSet<(String, String)>,
    groups: BTreeSet<(String, String)>,
    customer_roles: BTreeSet<(String, String)>,
    organizations: BTreeSet<(String, String)>,
    organization_projects: BTreeSet<(String, String)>,
    /// request key, project, summary, status, created, reporter, participants, organization
    requests: Vec<[String; 8]>,
    /// request key, author, created, body
    comments: Vec<[String; 4]>,
}

/// A site read over the network, not yet written: [`PulledSite::write`]
/// writes its snapshot. Nothing touches the disk before that, so a pull
/// stopped while it reads (an error, a kill) leaves nothing behind.
pub struct PulledSite {
    pulled: Pulled,
    accounts: FxHashMap<String, Account>,
    report: PullReport,
}

impl PulledSite {
    /// What the pull met (its `counts` are filled by [`PulledSite::write`]).
    pub fn report(&self) -> &PullReport {
        &self.report
    }

    /// Writes the snapshot into `dir` (created if missing; files are
    /// written beside their final names and renamed when all are complete,
    /// so a failed write leaves no snapshot behind).
    pub fn write(self, dir: &Path) -> Result<PullReport, PullError> {
        let mut report = self.report;
        report.counts = write_snapshot(dir, &self.pulled, &self.accounts)?;
        Ok(report)
    }
}

/// Pulls the site of `config` and writes its snapshot into `dir`
/// ([`pull_site`], then [`PulledSite::write`]).
pub async fn pull_snapshot(
    config: &PullConfig,
    dir: &Path,
    progress: &dyn PullProgress,
) -> Result<PullReport, PullError> {
    pull_site(config, progress).await?.write(dir)
}

/// Reads the site of `config` over its REST APIs (SPEC §8).
pub async fn pull_site(config: &PullConfig, progress: &dyn PullProgress) -> Result<PulledSite, PullError> {
    let client = Client::new(config)?;
    let in_flight = client.limits().in_flight.max(1) * 2;
    let mut report = PullReport { verification_checked: client.has_admin(), ..PullReport::default() };
    let mut pulled = Pulled::default();

    // Service desks, filtered by --projects.
    let desks: Vec<Desk> = client
        .service_desk_pages("/rest/servicedeskapi/servicedesk", &[], |n| progress.step("service desks", n as u64))
        .await?;
    let desks = select_desks(desks, config.projects.as_deref())?;
    let desk_ids: Vec<(String, String)> = desks.iter().map(|d| (id_text(&d.id), d.project_key.clone())).collect();
    pulled.projects =
        desks.iter().map(|d| (d.project_key.clone(), d.project_name.clone().unwrap_or_default())).collect();

    // The request fields that hold participants and organizations.
    let fields: Vec<Field> = client.get(Service::Site, "/rest/api/3/field", &[]).await?;
    let custom = |kind: &str| {
        fields.iter().find(|f| f.schema.as_ref().and_then(|s| s.custom.as_deref()) == Some(kind)).map(|f| f.id.clone())
    };
    let participants_field = custom(PARTICIPANTS_FIELD);
    let organizations_field = custom(ORGANIZATIONS_FIELD);

    // The site's users: its Atlassian accounts are site users.
    let mut known: FxHashMap<String, User> = FxHashMap::default();
    let users: Vec<User> = client.user_search(|n| progress.step("site users", n as u64)).await?;
    let mut site_users: FxHashSet<String> = FxHashSet::default();
    for user in users {
        if user.account_type.as_deref() == Some("atlassian") {
            site_users.insert(user.account_id.clone());
        }
        known.insert(user.account_id.clone(), user);
    }
    let mut met: FxHashSet<String> = FxHashSet::default();

    // Per desk: the customer list, the Customer role, the organizations linked.
    let per_desk: Vec<DeskParts> = stream::iter(desk_ids.clone())
        .map(|(id, key)| {
            let client = client.clone();
            async move { desk_parts(&client, id, key).await }
        })
        .buffered(in_flight)
        .try_collect()
        .await?;
    let mut groups: Vec<((bool, String), String)> = Vec::new();
    let mut seen_groups: FxHashSet<(bool, String)> = FxHashSet::default();
    for parts in per_desk {
        for user in parts.customers {
            pulled.customers.insert((parts.key.clone(), user.account_id.clone()));
            meet(&mut met, &user.account_id);
            known.entry(user.account_id.clone()).or_insert(user);
        }
        for account in parts.role_users {
            pulled.customers.insert((parts.key.clone(), account.clone()));
            meet(&mut met, &account);
        }
        for (group_id, name) in parts.role_groups {
            pulled.customer_roles.insert((parts.key.clone(), name.clone()));
            if seen_groups.insert(group_id.clone()) {
                groups.push((group_id, name));
            }
        }
        for organization in parts.organizations {
            pulled.organization_projects.insert((organization, parts.key.clone()));
        }
    }
    progress.step("customers", pulled.customers.len() as u64);

    // Members of the groups holding the role.
    let members: Vec<(String, Vec<User>)> = stream::iter(groups)
        .map(|((by_id, group), name)| {
            let client = client.clone();
            async move {
                let by = if by_id { "groupId" } else { "groupname" };
                let query = [(by, group), ("includeInactiveUsers", "true".to_owned())];
                let users: Vec<User> = client.start_at_pages("/rest/api/3/group/member", &query).await?;
                Ok::<_, PullError>((name, users))
            }
        })
        .buffered(in_flight)
        .try_collect()
        .await?;
    for (name, users) in members {
        if users.is_empty() {
            pulled.groups.insert((name.clone(), String::new()));
        }
        for user in users {
            pulled.groups.insert((name.clone(), user.account_id.clone()));
            meet(&mut met, &user.account_id);
            known.entry(user.account_id.clone()).or_insert(user);
        }
    }

    // Every organization of the site, whatever --projects says.
    let organizations: Vec<Organization> = client
        .service_desk_pages("/rest/servicedeskapi/organization", &[], |n| progress.step("organizations", n as u64))
        .await?;
    let organization_members: Vec<(String, Vec<User>)> = stream::iter(organizations)
        .map(|organization| {
            let client = client.clone();
            async move {
                let path = format!("/rest/servicedeskapi/organization/{}/user", segment(&id_text(&organization.id)));
                let users: Vec<User> = client.service_desk_pages(&path, &[], |_| {}).await?;
                Ok::<_, PullError>((organization.name, users))
            }
        })
        .buffered(in_flight)
        .try_collect()
        .await?;
    for (name, users) in organization_members {
        if users.is_empty() {
            pulled.organizations.insert((name.clone(), String::new()));
        }
        for user in users {
            pulled.organizations.insert((name.clone(), user.account_id.clone()));
            meet(&mut met, &user.account_id);
            known.entry(user.account_id.clone()).or_insert(user);
        }
    }

    // Requests, one JQL search per project.
    let mut fields_asked = vec!["summary".to_owned(), "status".to_owned(), "created".to_owned(), "reporter".to_owned()];
    fields_asked.extend(participants_field.iter().cloned());
    fields_asked.extend(organizations_field.iter().cloned());
    let project_keys: Vec<String> = desk_ids.iter().map(|(_, key)| key.clone()).collect();
    let participants_id = participants_field.clone();
    let organizations_id = organizations_field.clone();
    // Each page of issues becomes rows as it arrives.
    let searches: Vec<Vec<[String; 8]>> = stream::iter(project_keys)
        .map(|key| {
            let client = client.clone();
            let fields_asked = fields_asked.clone();
            let (participants_id, organizations_id) = (participants_id.clone(), organizations_id.clone());
            async move {
                let jql = format!("project = \"{}\" ORDER BY key ASC", key.replace('\\', "\\\\").replace('"', "\\\""));
                let mut rows = Vec::new();
                client
                    .search_issues(&jql, &fields_asked, |issue| {
                        rows.push(request_row(&key, &issue, participants_id.as_deref(), organizations_id.as_deref())?);
                        Ok(())
                    })
                    .await?;
                Ok::<_, PullError>(rows)
            }
        })
        .buffered(in_flight)
        .try_collect()
        .await?;
    let mut request_keys = Vec::new();
    let mut seen_requests: FxHashSet<String> = FxHashSet::default();
    for rows in searches {
        for row in rows {
            // A key a later page repeats is the same request.
            if !seen_requests.insert(row[0].clone()) {
                continue;
            }
            meet(&mut met, &row[5]);
            for participant in row[6].split(';') {
                meet(&mut met, participant);
            }
            request_keys.push(row[0].clone());
            pulled.requests.push(row);
        }
        progress.step("requests", pulled.requests.len() as u64);
    }
    drop(seen_requests);

    // Public comments of every request.
    let mut comments_stream = stream::iter(request_keys)
        .map(|key| {
            let client = client.clone();
            async move {
                let path = format!("/rest/servicedeskapi/request/{}/comment", segment(&key));
                let query = [("public", "true".to_owned()), ("internal", "false".to_owned())];
                let comments: Vec<Comment> = client.service_desk_pages(&path, &query, |_| {}).await?;
                Ok::<_, PullError>((key, path, comments))
            }
        })
        .buffered(in_flight);
    let mut done = 0u64;
    while let Some(next) = comments_stream.next().await {
        let (key, path, comments) = next?;
        for comment in comments {
            let author =
                comment.author.map(|a| a.account_id).ok_or_else(|| unexpected(&path, "a comment without an author"))?;
            let created = comment
                .created
                .as_ref()
                .and_then(|c| c.get("epochMillis"))
                .and_then(Value::as_i64)
                .and_then(chrono::DateTime::from_timestamp_millis)
                .ok_or_else(|| unexpected(&path, "a comment without created.epochMillis"))?;
            meet(&mut met, &author);
            pulled.comments.push([key.clone(), author, utc(created), comment.body.unwrap_or_default()]);
        }
        done += 1;
        if done.is_multiple_of(100) {
            progress.step("comments of requests", done);
        }
    }
    drop(comments_stream);

    // Every account met that the user search did not describe.
    // (A user object from a list, such as a customer list, has no type.)
    let unknown: Vec<String> =
        met.iter().filter(|id| known.get(*id).is_none_or(|u| u.account_type.is_none())).cloned().collect();
    let mut looked_up = 0u64;
    let mut lookups = stream::iter(unknown)
        .map(|id| {
            let client = client.clone();
            async move {
                const PATH: &str = "/rest/api/3/user";
                let answer = client.send(Service::Site, Method::GET, PATH, &[("accountId", id.clone())], None).await?;
                // An account deleted since it was listed: left out, counted.
                if answer.status == StatusCode::NOT_FOUND {
                    return Ok::<_, PullError>((id, None));
                }
                Ok((id, Some(ok_json::<User>(PATH, "GET", answer)?)))
            }
        })
        .buffer_unordered(in_flight);
    while let Some(found) = lookups.next().await {
        let (id, user) = found?;
        let Some(mut user) = user else {
            known.remove(&id);
            continue;
        };
        // A list may have shown the email the lookup leaves out.
        if user.email_address.as_deref().is_none_or(|e| e.trim().is_empty())
            && let Some(listed) = known.get(&user.account_id).and_then(|u| u.email_address.clone())
        {
            user.email_address = Some(listed);
        }
        known.insert(user.account_id.clone(), user);
        looked_up += 1;
        if looked_up.is_multiple_of(100) {
            progress.step("accounts looked up", looked_up);
        }
    }
    drop(lookups);

    // The accounts of the snapshot: site users and every account met, of
    // a type ferry copies.
    let mut accounts: FxHashMap<String, Account> = FxHashMap::default();
    let mut wanted: Vec<&String> = site_users.iter().chain(met.iter()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    for id in wanted {
        let Some(user) = known.get(id) else {
            report.skipped_accounts.push(id.clone());
            continue;
        };
        let kind = match user.account_type.as_deref() {
            Some("atlassian") => "atlassian",
            Some("customer") => "customer",
            _ => {
                report.skipped_accounts.push(id.clone());
                continue;
            }
        };
        accounts.insert(
            id.clone(),
            Account {
                kind,
                email: user.email_address.clone().unwrap_or_default().trim().to_owned(),
                display_name: user.display_name.clone().unwrap_or_default(),
                active: user.active.unwrap_or(true),
                verified: true,
            },
        );
    }
    progress.step("accounts", accounts.len() as u64);

    // Email verification, and hidden emails, from the organization directory.
    if client.has_admin() {
        let org_id = config.admin.as_ref().map(|a| a.org_id.clone()).unwrap_or_default();
        let atlassian: Vec<String> =
            accounts.iter().filter(|(_, a)| a.kind == "atlassian").map(|(id, _)| id.clone()).collect();
        let mut records = stream::iter(atlassian)
            .map(|id| {
                let client = client.clone();
                let path = format!("/admin/v2/orgs/{}/directories/-/users/{}", segment(&org_id), segment(&id));
                async move {
                    let answer = client.send(Service::Admin, Method::GET, &path, &[], None).await?;
                    if answer.status == StatusCode::NOT_FOUND {
                        return Ok::<_, PullError>((id, None));
                    }
                    let body: Value = ok_json("/admin/v2/orgs/{orgId}/directories/-/users/{accountId}", "GET", answer)?;
                    Ok((id, Some(body)))
                }
            })
            .buffer_unordered(in_flight);
        let mut checked = 0u64;
        while let Some(record) = records.next().await {
            let (id, body) = record?;
            let Some(account) = accounts.get_mut(&id) else { continue };
            match body {
                None => report.unmanaged.push(id),
                Some(body) => {
                    let data = body.get("data").unwrap_or(&body);
                    if let Some(verified) = data.get("emailVerified").and_then(Value::as_bool) {
                        account.verified = verified;
                    }
                    if account.email.is_empty()
                        && let Some(email) = data.get("email").and_then(Value::as_str)
                    {
                        account.email = email.trim().to_owned();
                    }
                }
            }
            checked += 1;
            if checked.is_multiple_of(100) {
                progress.step("email verification", checked);
            }
        }
        report.unmanaged.sort_unstable();
    }

    let mut hidden: Vec<HiddenEmail> = accounts
        .iter()
        .filter(|(_, a)| a.email.is_empty())
        .map(|(id, a)| HiddenEmail {
            account_id: id.clone(),
            account_type: a.kind,
            display_name: a.display_name.clone(),
        })
        .collect();
    hidden.sort_unstable_by(|a, b| a.account_id.cmp(&b.account_id));
    report.hidden_emails = hidden;
    report.skipped_accounts.sort_unstable();

    // Leave out what refers to an account ferry does not copy.
    let kept = |id: &String| accounts.contains_key(id);
    pulled.customers.retain(|(_, id)| kept(id));
    // A group or organization whose members were all left out stays, empty:
    // roles, links and requests still name it.
    for set in [&mut pulled.groups, &mut pulled.organizations] {
        let names: BTreeSet<String> = set.iter().map(|(name, _)| name.clone()).collect();
        set.retain(|(_, id)| id.is_empty() || kept(id));
        let left: BTreeSet<&String> = set.iter().map(|(name, _)| name).collect();
        let emptied: Vec<String> = names.into_iter().filter(|name| !left.contains(name)).collect();
        set.extend(emptied.into_iter().map(|name| (name, String::new())));
    }
    let before = pulled.requests.len();
    pulled.requests.retain(|r| kept(&r[5]));
    report.skipped_requests = (before - pulled.requests.len()) as u64;
    let left: FxHashSet<&str> = pulled.requests.iter().map(|r| r[0].as_str()).collect();
    let before = pulled.comments.len();
    let mut comments = std::mem::take(&mut pulled.comments);
    comments.retain(|c| left.contains(c[0].as_str()) && kept(&c[1]));
    report.skipped_comments = (before - comments.len()) as u64;
    pulled.comments = comments;
    for request in &mut pulled.requests {
        let participants: Vec<&str> =
            request[6].split(';').filter(|p| !p.is_empty() && accounts.contains_key(*p)).collect();
        request[6] = participants.join(";");
    }

    report.requests = client.counters().requests.load(std::sync::atomic::Ordering::Relaxed);
    report.retries = client.counters().retries.load(std::sync::atomic::Ordering::Relaxed);
    Ok(PulledSite { pulled, accounts, report })
}

fn select_desks(desks: Vec<Desk>, projects: Option<&[String]>) -> Result<Vec<Desk>, PullError> {
    let Some(projects) = projects else { return Ok(desks) };
    for key in projects {
        if !desks.iter().any(|d| &d.project_key == key) {
            let known: Vec<&str> = desks.iter().map(|d| d.project_key.as_str()).collect();
            return Err(PullError::Config(format!(
                "--projects: {key} is not a service desk of the site (it has: {})",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )));
        }
    }
    Ok(desks.into_iter().filter(|d| projects.contains(&d.project_key)).collect())
}

struct DeskParts {
    key: String,
    customers: Vec<User>,
    role_users: Vec<String>,
    /// how to ask the group's members (by `groupId` when true, else by
    /// `groupname`), and its name
    role_groups: Vec<((bool, String), String)>,
    organizations: Vec<String>,
}

async fn desk_parts(client: &Client, id: String, key: String) -> Result<DeskParts, PullError> {
    let desk = segment(&id);
    let customers: Vec<User> =
        client.service_desk_pages(&format!("/rest/servicedeskapi/servicedesk/{desk}/customer"), &[], |_| {}).await?;
    let organizations: Vec<Organization> = client
        .service_desk_pages(&format!("/rest/servicedeskapi/servicedesk/{desk}/organization"), &[], |_| {})
        .await?;
    let roles_path = format!("/rest/api/3/project/{}/role", segment(&key));
    let roles: FxHashMap<String, String> = client.get(Service::Site, &roles_path, &[]).await?;
    let mut role_users = Vec::new();
    let mut role_groups = Vec::new();
    if let Some(url) = roles.get(CUSTOMER_ROLE) {
        let path = client.site_path_of(url).ok_or_else(|| unexpected(&roles_path, format!("role URL {url:?}")))?;
        let role: Value = client.get(Service::Site, &path, &[]).await?;
        for actor in role.get("actors").and_then(Value::as_array).into_iter().flatten() {
            if let Some(user) = actor.get("actorUser") {
                if let Some(account) = user.get("accountId").and_then(Value::as_str) {
                    role_users.push(account.to_owned());
                }
            } else if let Some(group) = actor.get("actorGroup") {
                let name = group
                    .get("name")
                    .or_else(|| group.get("displayName"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| unexpected(&path, "a group actor without a name"))?;
                // Members are asked by id; a group without one (older sites) by name.
                let member_query = match group.get("groupId").and_then(Value::as_str) {
                    Some(id) => (true, id.to_owned()),
                    None => (false, name.to_owned()),
                };
                role_groups.push((member_query, name.to_owned()));
            }
        }
    }
    Ok(DeskParts {
        key,
        customers,
        role_users,
        role_groups,
        organizations: organizations.into_iter().map(|o| o.name).collect(),
    })
}

/// One `requests.csv` row from an issue of the search.
fn request_row(
    project: &str,
    issue: &Value,
    participants_field: Option<&str>,
    organizations_field: Option<&str>,
) -> Result<[String; 8], PullError> {
    const PATH: &str = "/rest/api/3/search/jql";
    let key = issue.get("key").and_then(Value::as_str).ok_or_else(|| unexpected(PATH, "an issue without a key"))?;
    let fields = issue.get("fields").ok_or_else(|| unexpected(PATH, format!("issue {key} without fields")))?;
    let text = |name: &str| fields.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let status = fields.get("status").and_then(|s| s.get("name")).and_then(Value::as_str).unwrap_or_default();
    let created = jira_time(&text("created"))
        .ok_or_else(|| unexpected(PATH, format!("issue {key}: created {:?} is not a Jira time", text("created"))))?;
    let reporter =
        fields.get("reporter").and_then(|r| r.get("accountId")).and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut participants: Vec<String> = participants_field
        .and_then(|f| fields.get(f))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|u| u.get("accountId").and_then(Value::as_str).map(str::to_owned))
        .collect();
    participants.sort_unstable();
    participants.dedup();
    let organization = organizations_field
        .and_then(|f| fields.get(f))
        .and_then(Value::as_array)
        .and_then(|orgs| orgs.first())
        .and_then(|o| o.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok([
        key.to_owned(),
        project.to_owned(),
        text("summary"),
        status.to_owned(),
        created,
        reporter,
        participants.join(";"),
        organization,
    ])
}

/// Notes an account id met in the site's data; an empty id (a request with
/// no reporter) or `unknown` (a deleted, corrupted record) names no account.
fn meet(met: &mut FxHashSet<String>, id: &str) {
    let id = id.trim();
    if !id.is_empty() && id != "unknown" {
        met.insert(id.to_owned());
    }
}

/// A Jira time (`2023-06-24T19:24:50.000+0000`, offsets without a colon,
/// or RFC 3339) in UTC, as `site import` stores it.
pub(crate) fn jira_time(value: &str) -> Option<String> {
    let value = value.trim();
    chrono::DateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(value))
        .ok()
        .map(|t| utc(t.with_timezone(&chrono::Utc)))
}

fn utc(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// An id as text (desks and organizations have string ids; some answers
/// give numbers).
fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A path segment, percent-encoded.
fn segment(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn write_snapshot(
    dir: &Path,
    pulled: &Pulled,
    accounts: &FxHashMap<String, Account>,
) -> Result<Vec<(&'static str, u64)>, PullError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| PullError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let bool_text = |v: bool| if v { "true" } else { "false" };
    let mut account_ids: Vec<&String> = accounts.keys().collect();
    account_ids.sort_unstable();
    let mut counts = Vec::new();
    for (name, header) in ferry_snapshot::FILES {
        let temp = dir.join(format!(".{name}.partial"));
        let written = std::fs::File::create(&temp).map_err(|e| e.to_string()).and_then(|file| {
            let mut out = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, file));
            out.write_record(header).map_err(|e| e.to_string())?;
            let mut rows = 0u64;
            let mut row = |cells: &[&str]| -> Result<(), csv::Error> {
                rows += 1;
                out.write_record(cells)
            };
            let pairs = |set: &BTreeSet<(String, String)>, row: &mut dyn FnMut(&[&str]) -> Result<(), csv::Error>| {
                set.iter().try_for_each(|(a, b)| row(&[a, b]))
            };
            let result = match name {
                "accounts.csv" => account_ids.iter().try_for_each(|id| {
                    let a = &accounts[*id];
                    row(&[id, a.kind, &a.email, &a.display_name, bool_text(a.active), bool_text(a.verified)])
                }),
                "projects.csv" => pulled.projects.iter().try_for_each(|(k, n)| row(&[k, n])),
                // A real site has no review state: an empty state keeps the
                // state a group already has in ferry, and makes a new one active.
                "groups.csv" => pulled.groups.iter().try_for_each(|(g, a)| row(&[g, a, ""])),
                "customer_roles.csv" => pairs(&pulled.customer_roles, &mut row),
                "organizations.csv" => pairs(&pulled.organizations, &mut row),
                "organization_projects.csv" => pairs(&pulled.organization_projects, &mut row),
                "customers.csv" => pairs(&pulled.customers, &mut row),
                "requests.csv" => pulled.requests.iter().try_for_each(|r| row(&r.each_ref().map(String::as_str))),
                "comments.csv" => pulled.comments.iter().try_for_each(|c| row(&c.each_ref().map(String::as_str))),
                _ => Ok(()),
            };
            result.map_err(|e| e.to_string())?;
            out.flush().map_err(|e| e.to_string())?;
            Ok(rows)
        });
        match written {
            Ok(rows) => counts.push((name, rows)),
            Err(reason) => {
                for (name, _) in ferry_snapshot::FILES {
                    let _ = std::fs::remove_file(dir.join(format!(".{name}.partial")));
                }
                return Err(PullError::Io { path: temp.display().to_string(), source: std::io::Error::other(reason) });
            }
        }
    }
    for (name, _) in ferry_snapshot::FILES {
        let temp = dir.join(format!(".{name}.partial"));
        std::fs::rename(&temp, dir.join(name)).map_err(io(&temp))?;
    }
    Ok(counts)
}

/// The pull's future can run on a spawned task (the server's): it is
/// `Send` and holds no borrowed lifetimes. A compile-time check.
#[allow(dead_code)]
fn spawnable(config: &'static PullConfig, dir: &'static Path, progress: &'static dyn PullProgress) {
    fn send<T: Send + 'static>(_: T) {}
    send(pull_snapshot(config, dir, progress));
    send(pull_site(config, progress));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_unknown_ids_name_no_account() {
        let mut met = FxHashSet::default();
        for id in ["", " ", "unknown", "aa-1", " aa-2 "] {
            meet(&mut met, id);
        }
        let mut met: Vec<String> = met.into_iter().collect();
        met.sort();
        assert_eq!(met, ["aa-1", "aa-2"]);
    }

    #[test]
    fn jira_times_become_utc() {
        assert_eq!(jira_time("2023-06-24T19:24:50.000+0000").as_deref(), Some("2023-06-24T19:24:50Z"));
        assert_eq!(jira_time("2023-06-24T19:24:50.000+1000").as_deref(), Some("2023-06-24T09:24:50Z"));
        assert_eq!(jira_time("2023-06-24T19:24:50.250-0300").as_deref(), Some("2023-06-24T22:24:50.250Z"));
        assert_eq!(jira_time("2023-06-24T19:24:50+02:00").as_deref(), Some("2023-06-24T17:24:50Z"));
        assert_eq!(jira_time("yesterday"), None);
    }
}
