//! The fake Jira site: every endpoint, every page, validated against
//! Atlassian's own OpenAPI documents; and its unpleasant behaviours (auth,
//! 412, 429, 409, hidden emails, internal comments).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is the assertion

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ferry_testkit::jira::{FakeJira, FakeOptions, Recorded, validate_against_reference};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client
//
// Not reqwest: since ferry-ops depends on ferry-jira, reqwest is built with
// `rustls-no-provider` in this crate's tests, and a reqwest client panics
// unless a rustls crypto provider is installed, which needs the `rustls`
// crate this crate does not depend on. Plain HTTP to 127.0.0.1 needs none of
// that: one request per connection (`Connection: close`), read to the end.
// ---------------------------------------------------------------------------

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn basic(email: &str, token: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{email}:{token}")))
}

async fn http(base: &str, method: &str, path: &str, headers: &[(&str, String)], body: Option<&Value>) -> Answer {
    let address = base.strip_prefix("http://").expect("http base URL");
    let stream = tokio::net::TcpStream::connect(address).await.expect("connect to the fake");
    let body = body.map(Value::to_string);
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = &body {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body.as_deref().unwrap_or(""));

    let mut unsent = request.as_bytes();
    while !unsent.is_empty() {
        stream.writable().await.unwrap();
        match stream.try_write(unsent) {
            Ok(n) => unsent = &unsent[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("write: {e}"),
        }
    }
    let mut raw = Vec::new();
    let mut buffer = [0_u8; 16 * 1024];
    loop {
        stream.readable().await.unwrap();
        match stream.try_read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
    }

    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of the response head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut payload = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut decoded = Vec::new();
        let mut rest = &payload[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            decoded.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = &rest[line_end + 2 + size + 2..];
        }
        payload = decoded;
    }
    let body = if payload.is_empty() { Value::Null } else { serde_json::from_slice(&payload).expect("JSON body") };
    Answer { status, headers, body }
}

// ---------------------------------------------------------------------------
// A small client that pages the way Atlassian documents it
// ---------------------------------------------------------------------------

struct Client {
    base: String,
    options: FakeOptions,
    page_cap: usize,
}

impl Client {
    fn new(fake: &FakeJira, options: &FakeOptions) -> Client {
        Client { base: fake.url(), options: options.clone(), page_cap: options.page_cap }
    }

    /// Sends until the answer is not a 429 (each 429 must carry Retry-After).
    async fn send(&self, method: &str, path: &str, headers: &[(&str, String)], body: Option<&Value>) -> (u16, Value) {
        for _ in 0..20 {
            let answer = http(&self.base, method, path, headers, body).await;
            if answer.status == 429 {
                let retry = answer.header("retry-after").expect("429 without Retry-After");
                assert_eq!(retry, self.options.retry_after.to_string());
                continue;
            }
            return (answer.status, answer.body);
        }
        panic!("throttled 20 times in a row");
    }

    fn auth(&self) -> (&'static str, String) {
        ("Authorization", basic(&self.options.email, &self.options.token))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, &[self.auth(), ("X-ExperimentalApi", "opt-in".to_owned())], None).await
    }

    async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn admin(&self, org: &str, account: &str, key: &str) -> (u16, Value) {
        let path = format!("/admin/v2/orgs/{org}/directories/-/users/{account}");
        self.send("GET", &path, &[("Authorization", format!("Bearer {key}"))], None).await
    }

    async fn search(&self, body: &Value) -> (u16, Value) {
        self.send("POST", "/rest/api/3/search/jql", &[self.auth()], Some(body)).await
    }

    /// Every value of a service desk API list, following `start`/`isLastPage`.
    async fn jsm_all(&self, path: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut values = Vec::new();
        let mut start = 0;
        loop {
            let page = self.get_ok(&format!("{path}{sep}start={start}&limit=50")).await;
            let items = page["values"].as_array().expect("values").clone();
            assert_eq!(page["start"], start);
            assert_eq!(page["size"], items.len());
            assert!(items.len() <= self.page_cap, "{path}: page longer than the cap");
            values.extend(items.iter().cloned());
            if page["isLastPage"] == true {
                assert!(page["_links"].get("next").is_none());
                return values;
            }
            assert!(page["_links"]["next"].is_string(), "{path}: not last but no next link");
            assert!(!items.is_empty(), "{path}: empty page that is not the last");
            start += items.len();
        }
    }

    /// Every user of `users/search`, until an empty page.
    async fn users_all(&self) -> Vec<Value> {
        let mut users = Vec::new();
        loop {
            let page = self.get_ok(&format!("/rest/api/3/users/search?startAt={}&maxResults=50", users.len())).await;
            let page = page.as_array().expect("array").clone();
            assert!(page.len() <= self.page_cap);
            if page.is_empty() {
                return users;
            }
            users.extend(page);
        }
    }

    /// Every member of a group, following `isLast`.
    async fn members_all(&self, group_id: &str, inactive: bool) -> Vec<Value> {
        let mut members = Vec::new();
        loop {
            let page = self
                .get_ok(&format!(
                    "/rest/api/3/group/member?groupId={group_id}&includeInactiveUsers={inactive}&startAt={}&maxResults=50",
                    members.len()
                ))
                .await;
            let values = page["values"].as_array().expect("values").clone();
            assert!(values.len() <= self.page_cap);
            assert_eq!(page["startAt"], members.len());
            members.extend(values);
            if page["isLast"] == true {
                assert_eq!(page["total"], members.len());
                return members;
            }
            assert!(page["nextPage"].is_string());
        }
    }

    /// Every issue of a project, following `nextPageToken`.
    async fn issues_all(&self, key: &str, fields: &[&str]) -> Vec<Value> {
        let mut issues = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body =
                json!({"jql": format!("project = \"{key}\" ORDER BY key ASC"), "maxResults": 100, "fields": fields});
            if let Some(token) = &token {
                body["nextPageToken"] = json!(token);
            }
            let (status, page) = self.search(&body).await;
            assert_eq!(status, 200, "{page}");
            let values = page["issues"].as_array().expect("issues").clone();
            assert!(values.len() <= self.page_cap);
            issues.extend(values);
            if page["isLast"] == true {
                assert!(page.get("nextPageToken").is_none());
                return issues;
            }
            token = Some(page["nextPageToken"].as_str().expect("nextPageToken").to_owned());
        }
    }
}

/// Everything a site pull would read.
#[derive(Default)]
struct Crawl {
    desks: Vec<Value>,
    customers: BTreeMap<String, Vec<Value>>,
    desk_orgs: BTreeMap<String, Vec<Value>>,
    orgs: Vec<Value>,
    org_users: BTreeMap<String, Vec<Value>>,
    users: Vec<Value>,
    user: BTreeMap<String, Value>,
    roles: BTreeMap<String, Value>,
    customer_role: BTreeMap<String, Value>,
    members: BTreeMap<String, Vec<Value>>,
    fields: Vec<Value>,
    issues: BTreeMap<String, Vec<Value>>,
    comments: BTreeMap<String, Vec<Value>>,
    admin: BTreeMap<String, (u16, Value)>,
}

const ALL_FIELDS: [&str; 6] = ["summary", "status", "created", "reporter", "customfield_10024", "customfield_10002"];

async fn crawl(client: &Client) -> Crawl {
    let mut c = Crawl { desks: client.jsm_all("/rest/servicedeskapi/servicedesk").await, ..Crawl::default() };
    for desk in c.desks.clone() {
        let id = desk["id"].as_str().unwrap().to_owned();
        let key = desk["projectKey"].as_str().unwrap().to_owned();
        c.customers
            .insert(key.clone(), client.jsm_all(&format!("/rest/servicedeskapi/servicedesk/{id}/customer")).await);
        c.desk_orgs
            .insert(key.clone(), client.jsm_all(&format!("/rest/servicedeskapi/servicedesk/{id}/organization")).await);

        let roles = client.get_ok(&format!("/rest/api/3/project/{key}/role")).await;
        for url in roles.as_object().unwrap().values() {
            let path = url.as_str().unwrap().strip_prefix(&client.base).unwrap();
            let role = client.get_ok(path).await;
            if role["name"] == "Service Desk Customers" {
                for actor in role["actors"].as_array().unwrap() {
                    if let Some(group_id) = actor["actorGroup"]["groupId"].as_str() {
                        let name = actor["actorGroup"]["name"].as_str().unwrap().to_owned();
                        c.members.insert(name, client.members_all(group_id, true).await);
                        client.members_all(group_id, false).await;
                    }
                }
                c.customer_role.insert(key.clone(), role);
            }
        }
        c.roles.insert(key.clone(), roles);

        let issues = client.issues_all(&key, &ALL_FIELDS).await;
        for issue in &issues {
            let issue_key = issue["key"].as_str().unwrap().to_owned();
            let comments = client
                .jsm_all(&format!("/rest/servicedeskapi/request/{issue_key}/comment?public=true&internal=false"))
                .await;
            c.comments.insert(issue_key, comments);
        }
        c.issues.insert(key, issues);
    }
    c.orgs = client.jsm_all("/rest/servicedeskapi/organization").await;
    for org in c.orgs.clone() {
        let id = org["id"].as_str().unwrap();
        c.org_users.insert(
            org["name"].as_str().unwrap().to_owned(),
            client.jsm_all(&format!("/rest/servicedeskapi/organization/{id}/user")).await,
        );
    }
    c.users = client.users_all().await;
    for user in c.users.clone() {
        let id = user["accountId"].as_str().unwrap().to_owned();
        c.user.insert(id.clone(), client.get_ok(&format!("/rest/api/3/user?accountId={id}")).await);
        if user["accountType"] == "atlassian" {
            let answer = client.admin(&client.options.org_id, &id, &client.options.admin_key).await;
            c.admin.insert(id, answer);
        }
    }
    c.fields = client.get_ok("/rest/api/3/field").await.as_array().unwrap().clone();
    c
}

fn ids(values: &[Value]) -> Vec<&str> {
    values.iter().map(|v| v["accountId"].as_str().unwrap()).collect()
}

fn assert_valid(fake: &FakeJira) -> usize {
    let responses = fake.responses();
    match validate_against_reference(&responses) {
        Ok(count) => {
            assert!(count > 0);
            count
        }
        Err(failures) => panic!("responses not valid against Atlassian's schemas:\n{}", failures.join("\n")),
    }
}

/// Every template the fake serves; a crawl must have hit them all.
const TEMPLATES: [&str; 14] = [
    "/rest/servicedeskapi/servicedesk",
    "/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer",
    "/rest/servicedeskapi/servicedesk/{serviceDeskId}/organization",
    "/rest/servicedeskapi/organization",
    "/rest/servicedeskapi/organization/{organizationId}/user",
    "/rest/servicedeskapi/request/{issueIdOrKey}/comment",
    "/rest/api/3/users/search",
    "/rest/api/3/user",
    "/rest/api/3/project/{projectIdOrKey}/role",
    "/rest/api/3/project/{projectIdOrKey}/role/{id}",
    "/rest/api/3/group/member",
    "/rest/api/3/field",
    "/rest/api/3/search/jql",
    "/admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}",
];

fn assert_every_endpoint_answered_200(fake: &FakeJira, except: &[&str]) {
    let answered: BTreeSet<String> =
        fake.responses().into_iter().filter(|r| r.status == 200).map(|r| r.template).collect();
    for template in TEMPLATES.into_iter().filter(|t| !except.contains(t)) {
        assert!(answered.contains(template), "no 200 from {template}");
    }
}

// ---------------------------------------------------------------------------
// The story's EU site
// ---------------------------------------------------------------------------

#[tokio::test]
async fn story_eu_every_endpoint_matches_atlassians_schemas() {
    let options = FakeOptions::default();
    let fake = FakeJira::start(&ferry_testkit::story_dir().join("eu"), options.clone());
    let client = Client::new(&fake, &options);
    let c = crawl(&client).await;

    assert_eq!(c.desks.len(), 1);
    assert_eq!(c.desks[0]["projectKey"], "SUP");
    assert_eq!(c.desks[0]["projectTypeKey"], "service_desk");
    assert_eq!(ids(&c.customers["SUP"]), ["aa-dana", "aa-eli", "aa-fay", "po-alice", "po-bruno", "po-chen"]);
    assert_eq!(c.customers["SUP"][5]["emailAddress"], "Chen@Acme.test");
    // Six accounts plus the app.
    assert_eq!(c.users.len(), 7);
    assert!(c.users.iter().any(|u| u["accountType"] == "app"));
    assert_eq!(c.users.iter().filter(|u| u["accountType"] == "customer").count(), 3);
    // No groups hold the customers role; the first atlassian customer does.
    let actors = c.customer_role["SUP"]["actors"].as_array().unwrap();
    assert_eq!(actors.len(), 1);
    assert_eq!(actors[0]["type"], "atlassian-user-role-actor");
    assert_eq!(actors[0]["actorUser"]["accountId"], "aa-dana");
    let keys: Vec<&str> = c.issues["SUP"].iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["SUP-1", "SUP-2", "SUP-3", "SUP-4", "SUP-5", "SUP-6"]);
    assert_eq!(c.issues["SUP"][0]["fields"]["created"], "2026-03-01T19:00:00.000+1000");
    assert_eq!(c.issues["SUP"][1]["fields"]["created"], "2026-03-02T09:00:00.000+0000");
    assert_eq!(c.issues["SUP"][0]["fields"]["customfield_10024"], Value::Null);
    // The app's comment is the only one on the site.
    assert_eq!(c.comments["SUP-1"].len(), 1);
    assert_eq!(c.comments["SUP-1"][0]["author"]["displayName"], "Automation for Jira");
    assert!(c.comments["SUP-2"].is_empty());
    assert_eq!(c.admin["aa-dana"].0, 200);
    assert_eq!(c.admin["aa-dana"].1["data"]["email"], "dana@acme.test");

    // The story has no organizations and no groups: nothing to list their members of.
    assert_every_endpoint_answered_200(
        &fake,
        &["/rest/servicedeskapi/organization/{organizationId}/user", "/rest/api/3/group/member"],
    );
    let stats = fake.stats();
    assert!(stats.throttled > 0, "throttling every 7th request must have happened: {stats:?}");
    assert_eq!(stats.by_template.values().sum::<u64>(), stats.requests);
    assert!(stats.max_in_flight >= 1);
    let validated = assert_valid(&fake);
    assert!(validated >= 25, "validated only {validated}");
}

// ---------------------------------------------------------------------------
// A hand-made site with everything in it
// ---------------------------------------------------------------------------

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// Two desks, groups (one empty, one with an inactive member), the customers
/// role, organizations (one empty), participants, comments out of order,
/// times with offsets and milliseconds, a hidden email, an account without
/// email, an unmanaged account.
fn handmade() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "accounts.csv",
        "account_id,account_type,email,display_name,active,email_verified
aa-agent,atlassian,agent@corp.test,Agent Smith,true,true
aa-hidden,atlassian,hidden@corp.test,Hidden Hal,true,true
aa-inactive,atlassian,gone@corp.test,Gone Gina,false,true
aa-mem4,atlassian,m4@corp.test,Member Four,true,true
aa-mem5,atlassian,m5@corp.test,Member Five,true,false
aa-unmanaged,atlassian,outside@other.test,Outside Olga,true,false
qm-cust1,customer,c1@cust.test,Cust One,true,true
qm-cust2,customer,,No Email,true,false
qm-cust3,customer,c3@cust.test,\"Three, Cust\",false,true
qm-cust4,customer,c4@cust.test,Cust Four,true,true
",
    );
    write(d, "projects.csv", "project_key,name\nITS,IT Support\nHR,Human Resources\n");
    write(
        d,
        "customers.csv",
        "project_key,account_id\nITS,qm-cust4\nITS,qm-cust1\nITS,qm-cust2\nITS,qm-cust3\nITS,aa-hidden\nITS,aa-agent\nHR,qm-cust1\n",
    );
    write(
        d,
        "groups.csv",
        "group_name,account_id,state
its-customers,aa-agent,active
its-customers,aa-hidden,active
its-customers,aa-inactive,active
its-customers,aa-mem4,active
its-customers,aa-mem5,active
empty-group,,
hr-staff,aa-mem4,
",
    );
    write(d, "customer_roles.csv", "project_key,group_name\nITS,its-customers\nITS,empty-group\nHR,hr-staff\n");
    write(
        d,
        "organizations.csv",
        "organization,account_id\nAcme,qm-cust1\nAcme,qm-cust2\nAcme,qm-cust3\nAcme,qm-cust4\nEmpty Org,\nBeta,aa-hidden\n",
    );
    write(d, "organization_projects.csv", "organization,project_key\nAcme,ITS\nBeta,ITS\nBeta,HR\n");
    write(
        d,
        "requests.csv",
        "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization
ITS-2,ITS,Printer,In Progress,2026-03-02T09:00:00.000Z,qm-cust2,qm-cust1;aa-hidden,Acme
ITS-1,ITS,VPN down,Open,2026-03-01T11:00:00+02:00,qm-cust1,,
ITS-10,ITS,Mouse,Resolved,2026-03-10T09:00:00Z,aa-hidden,qm-cust4,Beta
ITS-3,ITS,Screen,Open,2026-03-03T09:00:00Z,qm-cust3,,
ITS-4,ITS,Keyboard,Open,2026-03-04T09:00:00Z,qm-cust4,,Acme
HR-1,HR,Payslip,Open,2026-02-01T09:00:00Z,qm-cust1,,
",
    );
    write(
        d,
        "comments.csv",
        "request_key,author_id,created,body
ITS-1,aa-agent,2026-03-01T12:00:00Z,Have you tried turning it off and on?
ITS-1,qm-cust1,2026-03-01T10:00:00Z,\"It is down, again\"
ITS-2,aa-hidden,2026-03-02T10:00:00Z,On it
",
    );
    dir
}

fn handmade_options() -> FakeOptions {
    FakeOptions {
        hidden_emails: ["aa-hidden".to_owned()].into(),
        unmanaged: ["aa-unmanaged".to_owned()].into(),
        throttle_every: Some(5),
        retry_after: 0,
        ..FakeOptions::default()
    }
}

#[tokio::test]
async fn handmade_site_every_endpoint_matches_atlassians_schemas() {
    let dir = handmade();
    let options = handmade_options();
    let fake = FakeJira::start(dir.path(), options.clone());
    let client = Client::new(&fake, &options);
    let c = crawl(&client).await;

    // Desks by project key: HR is 1, ITS is 2.
    let desks: Vec<(&str, &str, &str)> = c
        .desks
        .iter()
        .map(|d| (d["id"].as_str().unwrap(), d["projectId"].as_str().unwrap(), d["projectKey"].as_str().unwrap()))
        .collect();
    assert_eq!(desks, [("1", "10001", "HR"), ("2", "10002", "ITS")]);

    // Customers, sorted; hidden and empty emails are absent, not null.
    let its = &c.customers["ITS"];
    assert_eq!(ids(its), ["aa-agent", "aa-hidden", "qm-cust1", "qm-cust2", "qm-cust3", "qm-cust4"]);
    assert!(its[1].get("emailAddress").is_none());
    assert!(its[3].get("emailAddress").is_none());
    assert_eq!(its[2]["emailAddress"], "c1@cust.test");
    assert_eq!(its[4]["active"], false);
    assert_eq!(its[4]["displayName"], "Three, Cust");

    // users/search: everyone, both types, plus the app; hidden email absent everywhere.
    assert_eq!(c.users.len(), 11);
    let kinds: BTreeMap<&str, &str> =
        c.users.iter().map(|u| (u["accountId"].as_str().unwrap(), u["accountType"].as_str().unwrap())).collect();
    assert_eq!(kinds["qm-cust1"], "customer");
    assert_eq!(kinds["aa-agent"], "atlassian");
    assert_eq!(kinds.values().filter(|k| **k == "app").count(), 1);
    let sorted: Vec<&str> = ids(&c.users);
    let mut expected = sorted.clone();
    expected.sort();
    assert_eq!(sorted, expected);
    for user in c.users.iter().chain(c.user.values()) {
        if user["accountId"] == "aa-hidden" {
            assert!(user.get("emailAddress").is_none(), "{user}");
        }
    }
    assert_eq!(c.user["aa-agent"]["emailAddress"], "agent@corp.test");

    // Roles: three per project; the customers role holds the groups and the
    // first atlassian customer.
    assert_eq!(c.roles["ITS"].as_object().unwrap().len(), 3);
    assert!(c.roles["ITS"]["Service Desk Customers"].as_str().unwrap().ends_with("/rest/api/3/project/ITS/role/10100"));
    let actors = c.customer_role["ITS"]["actors"].as_array().unwrap();
    let groups: Vec<&str> = actors.iter().filter_map(|a| a["actorGroup"]["name"].as_str()).collect();
    assert_eq!(groups, ["empty-group", "its-customers"]);
    let users: Vec<&str> = actors.iter().filter_map(|a| a["actorUser"]["accountId"].as_str()).collect();
    assert_eq!(users, ["aa-agent"]);
    // HR's only customer is a portal customer: no user actor there.
    let hr_actors = c.customer_role["HR"]["actors"].as_array().unwrap();
    assert_eq!(hr_actors.len(), 1);
    assert_eq!(hr_actors[0]["actorGroup"]["name"], "hr-staff");

    // Group members: all five with inactive users (two pages of three).
    assert_eq!(ids(&c.members["its-customers"]), ["aa-agent", "aa-hidden", "aa-inactive", "aa-mem4", "aa-mem5"]);
    assert!(c.members["empty-group"].is_empty());
    let group_id = actors[1]["actorGroup"]["groupId"].as_str().unwrap();
    assert_eq!(group_id.len(), 36);
    assert_eq!(ids(&client.members_all(group_id, false).await), ["aa-agent", "aa-hidden", "aa-mem4", "aa-mem5"]);

    // Organizations: by name, numbered in that order.
    let orgs: Vec<(&str, &str)> =
        c.orgs.iter().map(|o| (o["id"].as_str().unwrap(), o["name"].as_str().unwrap())).collect();
    assert_eq!(orgs, [("1", "Acme"), ("2", "Beta"), ("3", "Empty Org")]);
    assert_eq!(ids(&c.org_users["Acme"]), ["qm-cust1", "qm-cust2", "qm-cust3", "qm-cust4"]);
    assert!(c.org_users["Empty Org"].is_empty());
    let its_orgs: Vec<&str> = c.desk_orgs["ITS"].iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(its_orgs, ["Acme", "Beta"]);
    let hr_orgs: Vec<&str> = c.desk_orgs["HR"].iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(hr_orgs, ["Beta"]);

    // Issues by number (ITS-10 last), times in Jira's format, odd ones at +1000.
    let its_issues = &c.issues["ITS"];
    let keys: Vec<&str> = its_issues.iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["ITS-1", "ITS-2", "ITS-3", "ITS-4", "ITS-10"]);
    assert_eq!(its_issues[0]["fields"]["created"], "2026-03-01T19:00:00.000+1000");
    assert_eq!(its_issues[1]["fields"]["created"], "2026-03-02T09:00:00.000+0000");
    let printer = &its_issues[1]["fields"];
    assert_eq!(printer["summary"], "Printer");
    assert_eq!(printer["status"]["name"], "In Progress");
    assert_eq!(printer["status"]["statusCategory"]["key"], "indeterminate");
    assert_eq!(printer["reporter"]["accountId"], "qm-cust2");
    assert_eq!(printer["reporter"]["accountType"], "customer");
    assert_eq!(ids(printer["customfield_10024"].as_array().unwrap()), ["qm-cust1", "aa-hidden"]);
    assert!(printer["customfield_10024"][1].get("emailAddress").is_none());
    assert_eq!(printer["customfield_10002"][0]["name"], "Acme");
    assert_eq!(printer["customfield_10002"][0]["id"], "1");
    assert_eq!(its_issues[0]["fields"]["customfield_10024"], Value::Null);
    assert_eq!(its_issues[0]["fields"]["customfield_10002"], Value::Null);
    assert_eq!(its_issues[4]["fields"]["status"]["statusCategory"]["key"], "done");

    // Comments in created order, public only when internal=false; the app
    // comment is on HR-1, the first request by key.
    let bodies =
        |key: &str| -> Vec<String> { c.comments[key].iter().map(|c| c["body"].as_str().unwrap().to_owned()).collect() };
    assert_eq!(bodies("ITS-1"), ["It is down, again", "Have you tried turning it off and on?"]);
    assert!(c.comments["ITS-1"].iter().all(|c| c["public"] == true));
    assert_eq!(c.comments["ITS-1"][0]["created"]["epochMillis"], 1_772_359_200_000_i64);
    assert!(c.comments["ITS-2"][0]["author"].get("emailAddress").is_none());
    assert_eq!(c.comments["HR-1"].len(), 1);
    assert_eq!(c.comments["HR-1"][0]["author"]["displayName"], "Automation for Jira");
    assert!(c.comments["ITS-3"].is_empty());

    // Fields: the two custom fields a pull maps, by their schema.custom.
    let custom: BTreeMap<&str, &str> =
        c.fields.iter().filter_map(|f| Some((f["schema"]["custom"].as_str()?, f["id"].as_str()?))).collect();
    assert_eq!(custom["com.atlassian.servicedesk:sd-request-participants"], "customfield_10024");
    assert_eq!(custom["com.atlassian.servicedesk:sd-customer-organizations"], "customfield_10002");

    // Admin API: managed atlassian accounts only.
    assert_eq!(c.admin["aa-agent"].0, 200);
    assert_eq!(
        c.admin["aa-hidden"].1,
        json!({"data": {"accountId": "aa-hidden", "accountType": "atlassian", "accountStatus": "active",
            "email": "hidden@corp.test", "emailVerified": true, "name": "Hidden Hal"}})
    );
    assert_eq!(c.admin["aa-inactive"].1["data"]["accountStatus"], "inactive");
    assert_eq!(c.admin["aa-mem5"].1["data"]["emailVerified"], false);
    assert_eq!(c.admin["aa-unmanaged"].0, 404);
    assert_eq!(client.admin(&options.org_id, "qm-cust1", &options.admin_key).await.0, 404);
    assert_eq!(client.admin("other-org", "aa-agent", &options.admin_key).await.0, 404);
    assert_eq!(client.admin(&options.org_id, "aa-agent", "wrong-key").await.0, 401);

    assert_every_endpoint_answered_200(&fake, &[]);
    assert!(fake.stats().throttled > 0);
    assert_valid(&fake);
}

#[tokio::test]
async fn internal_comments_only_when_asked() {
    let dir = handmade();
    let options = FakeOptions { throttle_every: None, ..handmade_options() };
    let fake = FakeJira::start(dir.path(), options.clone());
    let client = Client::new(&fake, &options);
    let public_only = client.jsm_all("/rest/servicedeskapi/request/ITS-1/comment?public=true&internal=false").await;
    assert_eq!(public_only.len(), 2);
    // Jira's defaults are public=true and internal=true: a client that only
    // says public=true gets the internal note.
    for query in ["?public=true", ""] {
        let everything = client.jsm_all(&format!("/rest/servicedeskapi/request/ITS-1/comment{query}")).await;
        assert_eq!(everything.len(), 3);
        assert_eq!(everything[2]["public"], false);
    }
    let internal_only = client.jsm_all("/rest/servicedeskapi/request/ITS-1/comment?public=false").await;
    assert_eq!(internal_only.len(), 1);
    // By issue id too (ITS-1 is the second request by key: HR-1 is 10001).
    let by_id = client.jsm_all("/rest/servicedeskapi/request/10002/comment?internal=false").await;
    assert_eq!(by_id, public_only);
    assert_eq!(client.get("/rest/servicedeskapi/request/NOPE-1/comment").await.0, 404);
    assert_valid(&fake);
}

// ---------------------------------------------------------------------------
// Auth, 412, 429, 409, 404, 400
// ---------------------------------------------------------------------------

#[tokio::test]
async fn auth_experimental_header_throttling_and_limits() {
    let options = FakeOptions { throttle_every: None, users_search_limit: Some(10), ..FakeOptions::default() };
    let fake = FakeJira::start(&ferry_testkit::story_dir().join("eu"), options.clone());
    let client = Client::new(&fake, &options);
    let base = fake.url();
    let field = "/rest/api/3/field";
    let desks = "/rest/servicedeskapi/servicedesk";

    // No auth, wrong token, wrong user, bearer instead of basic: 401 with a JSON error.
    for (path, headers) in [
        (field, vec![]),
        (field, vec![("Authorization", basic(&options.email, "wrong"))]),
        (field, vec![("Authorization", basic("someone@else.test", &options.token))]),
        (field, vec![("Authorization", "Basic not-base64!".to_owned())]),
        (desks, vec![("Authorization", format!("Bearer {}", options.admin_key))]),
    ] {
        let answer = http(&base, "GET", path, &headers, None).await;
        assert_eq!(answer.status, 401, "{path} {headers:?}");
        assert!(answer.body.is_object());
    }
    // The admin API takes the bearer key, not the site's basic auth.
    let answer =
        http(&base, "GET", "/admin/v2/orgs/fake-org/directories/-/users/aa-dana", &[client.auth()], None).await;
    assert_eq!(answer.status, 401);

    // The customer list is experimental: 412 without the opt-in header.
    let answer = http(&base, "GET", "/rest/servicedeskapi/servicedesk/1/customer", &[client.auth()], None).await;
    assert_eq!(answer.status, 412);
    assert!(answer.body["errorMessage"].as_str().unwrap().contains("X-ExperimentalApi"));
    assert_eq!(client.get("/rest/servicedeskapi/servicedesk/9/customer").await.0, 404);

    // users/search above the limit: 409 (also with the default maxResults of 50).
    assert_eq!(client.get("/rest/api/3/users/search?maxResults=11").await.0, 409);
    assert_eq!(client.get("/rest/api/3/users/search").await.0, 409);
    assert_eq!(client.get("/rest/api/3/users/search?maxResults=10").await.0, 200);

    // Unknown things.
    assert_eq!(client.get("/rest/api/3/nothing").await.0, 404);
    assert_eq!(client.get("/rest/api/3/user?accountId=nobody").await.0, 404);
    assert_eq!(client.get("/rest/api/3/project/NOPE/role").await.0, 404);
    assert_eq!(client.get("/rest/api/3/project/SUP/role/12345").await.0, 404);
    assert_eq!(client.get("/rest/api/3/group/member?groupId=nope").await.0, 404);
    assert_eq!(client.get("/rest/servicedeskapi/organization/77/user").await.0, 404);
    // The project by id works as by key.
    assert_eq!(
        client.get_ok("/rest/api/3/project/10001/role").await,
        client.get_ok("/rest/api/3/project/SUP/role").await
    );

    // JQL the fake does not understand, or a project it does not have: 400.
    for jql in
        ["project = SUP", "project = SUP ORDER BY created DESC", "text ~ hello", "project = NOPE ORDER BY key ASC"]
    {
        let (status, body) = client.search(&json!({"jql": jql, "fields": ["summary"]})).await;
        assert_eq!(status, 400, "{jql}");
        assert!(body["errorMessages"].is_array());
    }
    let (status, _) = client.search(&json!({"jql": "project = SUP ORDER BY key ASC", "startAt": 3})).await;
    assert_eq!(status, 400, "startAt is not a field of the request bean");
    let (status, _) =
        client.search(&json!({"jql": "project = SUP ORDER BY key ASC", "nextPageToken": "garbage!"})).await;
    assert_eq!(status, 400);
    // Without fields, Jira returns ids only.
    let (status, page) = client.search(&json!({"jql": "project = SUP ORDER BY key ASC"})).await;
    assert_eq!(status, 200);
    assert_eq!(page["issues"][0], json!({"id": "10001"}));
    // Only the requested fields.
    let (_, page) = client.search(&json!({"jql": "project=SUP order by key asc", "fields": ["summary,created"]})).await;
    let fields: Vec<&String> = page["issues"][0]["fields"].as_object().unwrap().keys().collect();
    assert_eq!(fields, ["created", "summary"]);

    // The page cap holds whatever the client asks.
    let page = client.get_ok("/rest/servicedeskapi/servicedesk/1/customer?limit=1000").await;
    assert_eq!(page["size"], 3);
    assert_eq!(page["limit"], 3);
    assert_eq!(page["isLastPage"], false);
    let page = client.get_ok("/rest/servicedeskapi/servicedesk/1/customer?start=100").await;
    assert_eq!(page["size"], 0);
    assert_eq!(page["isLastPage"], true);
    assert_eq!(client.get_ok("/rest/api/3/users/search?startAt=100&maxResults=10").await, json!([]));

    assert_eq!(fake.stats().throttled, 0);
    assert_valid(&fake);
}

#[tokio::test]
async fn every_nth_request_is_throttled_with_retry_after() {
    let options = FakeOptions { throttle_every: Some(3), retry_after: 2, ..FakeOptions::default() };
    let fake = FakeJira::start(&ferry_testkit::story_dir().join("eu"), options.clone());
    let client = Client::new(&fake, &options);
    let mut statuses = Vec::new();
    for _ in 0..9 {
        let answer = http(&fake.url(), "GET", "/rest/api/3/field", &[client.auth()], None).await;
        if answer.status == 429 {
            assert_eq!(answer.header("retry-after"), Some("2"));
        }
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200, 429, 200, 200, 429]);
    // Throttling counts every request, unauthenticated ones too, and comes first.
    assert_eq!(http(&fake.url(), "GET", "/rest/api/3/field", &[], None).await.status, 401);
    let stats = fake.stats();
    assert_eq!((stats.requests, stats.throttled), (10, 3));
    assert_eq!(stats.by_template["/rest/api/3/field"], 10);
    assert_valid(&fake);
}

#[tokio::test]
async fn concurrency_is_measured_and_recording_can_be_turned_off() {
    let options = FakeOptions { throttle_every: None, ..FakeOptions::default() };
    let fake = FakeJira::start(&ferry_testkit::story_dir().join("eu"), options.clone());
    let client = Client::new(&fake, &options);
    fake.set_recording(false);
    let requests = (0..16).map(|_| client.get_ok("/rest/api/3/field"));
    let answers = futures_join_all(requests).await;
    assert_eq!(answers.len(), 16);
    assert!(fake.responses().is_empty());
    let stats = fake.stats();
    assert_eq!(stats.requests, 16);
    assert!(stats.max_in_flight >= 1 && stats.max_in_flight <= 16, "{stats:?}");
    fake.set_recording(true);
    client.get_ok("/rest/api/3/field").await;
    assert_eq!(fake.responses().len(), 1);
}

/// Runs the futures concurrently (tokio tasks would need 'static).
async fn futures_join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().map(|o| o.unwrap()).collect()
}

#[test]
fn works_from_a_plain_test_and_stops_on_drop() {
    use std::io::{Read, Write};
    let fake = FakeJira::start(&ferry_testkit::story_dir().join("eu"), FakeOptions::default());
    let address = fake.url().trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    // admin@example.test:fake-token
    let request = "GET /rest/api/3/field HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW5AZXhhbXBsZS50ZXN0OmZha2UtdG9rZW4=\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(fake);
    assert!(std::net::TcpStream::connect(&address).is_err(), "still listening after drop");
}

// ---------------------------------------------------------------------------
// The validation itself cannot pass vacuously
// ---------------------------------------------------------------------------

fn recorded(method: &str, template: &str, body: Value) -> Recorded {
    Recorded { method: method.to_owned(), template: template.to_owned(), status: 200, body }
}

#[test]
fn validation_catches_wrong_bodies() {
    let desks = "/rest/servicedeskapi/servicedesk";
    let good = json!({"size": 1, "start": 0, "limit": 3, "isLastPage": true, "_links": {"base": "http://x.test/rest/servicedeskapi", "context": ""},
        "values": [{"id": "1", "projectId": "10001", "projectKey": "SUP", "projectName": "Support", "_links": {"self": "http://x.test/rest/servicedeskapi/servicedesk/1"}}]});
    assert_eq!(validate_against_reference(&[recorded("GET", desks, good.clone())]), Ok(1));

    let mut extra = good.clone();
    extra["values"][0]["deskColour"] = json!("blue");
    let mut wrong_type = good.clone();
    wrong_type["size"] = json!("1");
    let mut bad_uri = good.clone();
    bad_uri["_links"]["base"] = json!("not a uri");
    let user = json!({"accountId": "a", "accountType": "robot", "active": true});
    let role =
        json!({"self": "http://x.test/r", "name": "Users", "id": 10001, "colour": "not in the schema", "actors": []});
    let members = json!({"isLast": "yes", "values": []});
    let bad = [
        recorded("GET", desks, extra),
        recorded("GET", desks, wrong_type),
        recorded("GET", desks, bad_uri),
        recorded("GET", desks, json!([])),
        recorded("GET", "/rest/api/3/users/search", json!([user])),
        recorded("GET", "/rest/api/3/project/{projectIdOrKey}/role/{id}", role),
        recorded("GET", "/rest/api/3/group/member", members),
        recorded("POST", "/rest/api/3/search/jql", json!({"issues": [{"id": 10001}], "isLast": true})),
        recorded("GET", "/rest/api/3/made/up", json!({})),
    ];
    for wrong in bad {
        let result = validate_against_reference(std::slice::from_ref(&wrong));
        let failures = result.expect_err(&format!("{} {} passed: {}", wrong.method, wrong.template, wrong.body));
        assert!(failures[0].contains(&wrong.template), "{failures:?}");
    }
    // Non-200 answers and the admin API are not checked.
    let mut error = recorded("GET", desks, json!({"anything": 1}));
    error.status = 404;
    let admin = recorded("GET", "/admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}", json!({"x": 1}));
    assert_eq!(validate_against_reference(&[error, admin]), Ok(0));
}

#[test]
#[should_panic(expected = "accounts.csv is missing")]
fn an_unreadable_snapshot_panics() {
    let dir = tempfile::tempdir().unwrap();
    FakeJira::start(dir.path(), FakeOptions::default());
}

#[test]
#[should_panic(expected = "unknown account \"ghost\"")]
fn an_inconsistent_snapshot_panics() {
    let dir = handmade();
    write(dir.path(), "customers.csv", "project_key,account_id\nITS,ghost\n");
    FakeJira::start(dir.path(), FakeOptions::default());
}
