//! The REST API over real HTTP against a real server on a fresh database,
//! on both backends: the seed's story end to end, the OpenAPI document
//! against the routes, authorization of every route per role, CSRF,
//! security headers, rate limits, hashed secrets and paging.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_server::AppState;
use ferry_store::Store;
use ferry_testkit::{Backend, TestDb, on_both_backends, story_dir};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

#[path = "browser/story.rs"]
mod browser;
use browser::the_story_in_a_browser;

on_both_backends!(
    the_story_in_a_browser,
    the_story_through_the_api,
    every_route_is_documented_and_refuses_anonymous_callers,
    authorization_of_every_route_per_role,
    cross_site_requests_are_refused_and_headers_set,
    secrets_are_stored_hashed_and_tokens_revocable,
    customer_pages_walk_every_customer_once,
    every_route_as_every_role,
    two_servers_share_sessions_and_one_applies_a_run,
    a_rollback_ends_the_sessions_of_the_accounts_it_removes,
    a_search_too_common_lists_email_starts_and_says_so,
    console_and_help_center_sessions_stay_apart,
    idle_connections_are_closed,
    large_snapshots_round_trip_through_the_api,
    group_names_never_leave_their_links,
    a_jira_cloud_site_pulls_through_the_api_and_the_console,
);

struct Server {
    base: String,
    db: TestDb,
    runtime: tokio::runtime::Runtime,
}

/// A server on port 0 with a fresh database holding organization `acme`
/// with admin `root@acme.test`, and organization `other` with admin
/// `else@other.test`. Returns the server and both passwords.
fn start(backend: Backend) -> (Server, String, String) {
    let db = TestDb::new(backend);
    let mut store = db.store();
    store.write(|tx| ferry_store::sites::create_org(tx, "acme")).unwrap();
    store.write(|tx| ferry_store::sites::create_org(tx, "other")).unwrap();
    let root = ferry_ops::admin::create_admin(&mut store, "acme", "root@acme.test").unwrap();
    let other = ferry_ops::admin::create_admin(&mut store, "other", "else@other.test").unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // Pulls may read from the fake Jira sites the tests start on this machine.
    let state = AppState::open(&db.url).unwrap().with_pull_hosts(&["127.0.0.1", "atlassian.net"]);
    let base = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(ferry_server::serve(listener, state));
        format!("http://{addr}")
    });
    (Server { base, db, runtime }, root, other)
}

impl Server {
    fn store(&self) -> Store {
        self.db.store()
    }

    /// A client with a cookie jar, signed in as `email`.
    fn sign_in(&self, email: &str, password: &str) -> Client {
        let client = Client::builder().cookie_store(true).build().unwrap();
        let (status, body) =
            self.call(&client, Method::POST, "/api/v1/session", Some(json!({"email": email, "password": password})));
        assert_eq!(status, StatusCode::OK, "{body}");
        client
    }

    fn token_client(&self, session: &Client, name: &str) -> (Client, String, i64) {
        let (status, body) = self.call(session, Method::POST, "/api/v1/tokens", Some(json!({"name": name})));
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let token = body["token"].as_str().unwrap().to_owned();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        (Client::builder().default_headers(headers).build().unwrap(), token, body["id"].as_i64().unwrap())
    }

    fn call(&self, client: &Client, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, _, text) = self.raw(client, method, path, body, &[]);
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn raw(
        &self,
        client: &Client,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        self.runtime.block_on(async {
            let mut request = client.request(method, format!("{}{path}", self.base));
            if let Some(body) = body {
                request = request.json(&body);
            }
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            (status, headers, response.text().await.unwrap())
        })
    }
}

fn snapshot(site: &str) -> Value {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(story_dir().join(site)).unwrap() {
        let path = entry.unwrap().path();
        files.insert(path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&path).unwrap());
    }
    json!({ "files": files })
}

/// Sites eu and us of the story, imported through the API by `client`.
fn story_sites(server: &Server, client: &Client) {
    for site in ["eu", "us"] {
        let (status, body) = server.call(client, Method::POST, "/api/v1/orgs/acme/sites", Some(json!({"site": site})));
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) =
            server.call(client, Method::POST, &format!("/api/v1/sites/{site}/import"), Some(snapshot(site)));
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

fn wait_done(server: &Server, client: &Client, run: i64) -> Value {
    for _ in 0..300 {
        let (status, body) = server.call(client, Method::GET, &format!("/api/v1/copies/{run}"), None);
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["state"] == "done" || body["state"] == "failed" {
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("run {run} did not finish");
}

fn access(server: &Server, client: &Client, email: &str, kind: Option<&str>) -> Vec<String> {
    let kind = kind.map(|k| format!("&type={k}")).unwrap_or_default();
    let (status, body) =
        server.call(client, Method::GET, &format!("/api/v1/sites/us/access?email={email}{kind}"), None);
    assert_eq!(status, StatusCode::OK, "{body}");
    body["requests"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

fn the_story_through_the_api(backend: Backend) {
    let (server, root, _) = start(backend);
    let session = server.sign_in("root@acme.test", &root);
    let (api, _, _) = server.token_client(&session, "story");
    story_sites(&server, &api);

    // A bad snapshot is refused whole, naming the file and line.
    let mut bad = snapshot("eu");
    bad["files"]["accounts.csv"] = json!(
        "account_id,account_type,email,display_name,active,email_verified\nx,customer,not-an-email,X,true,true\n"
    );
    let (status, body) = server.call(&api, Method::POST, "/api/v1/sites/us/import", Some(bad));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid");
    assert!(body["error"]["details"][0].as_str().unwrap().contains("accounts.csv:2"), "{body}");

    let expected = std::fs::read_to_string(story_dir().join("RequiresAttention.csv")).unwrap();
    let expected_rows: Vec<Vec<&str>> = expected.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let plan = json!({"from": "eu", "to": "us"});
    let (status, check) = server.call(&api, Method::POST, "/api/v1/copies/check", Some(plan.clone()));
    assert_eq!(status, StatusCode::OK, "{check}");
    let predicted: Vec<Vec<String>> = check["requires_attention"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            [
                "customer_email",
                "account_type_on_source",
                "account_type_on_destination",
                "account_type_after_copying",
                "problem",
                "next_step",
            ]
            .iter()
            .map(|k| r[*k].as_str().unwrap().to_owned())
            .collect()
        })
        .collect();
    assert_eq!(predicted, expected_rows);

    // A blocking conflict is refused before any run exists.
    let clash = json!({"from": "eu", "to": "us", "renames": {"SUP": "HR"}});
    let (status, refused) = server.call(&api, Method::POST, "/api/v1/copies", Some(clash));
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "blocking_conflicts");
    assert!(refused.to_string().contains("--rename SUP="), "{refused}");
    let (_, runs) = server.call(&api, Method::GET, "/api/v1/copies", None);
    assert_eq!(runs, json!([]), "no run was started");
    // Options that cannot work are refused before any run exists too.
    let nope = json!({"from": "eu", "to": "us", "projects": ["NOPE"]});
    let (status, refused) = server.call(&api, Method::POST, "/api/v1/copies", Some(nope));
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("NOPE"), "{refused}");
    let (_, runs) = server.call(&api, Method::GET, "/api/v1/copies", None);
    assert_eq!(runs, json!([]), "no run was started");
    let (status, unknown) = server.call(&api, Method::POST, "/api/v1/copies/99/resume", None);
    assert_eq!((status, unknown["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{unknown}");
    // Unknown API routes answer the same JSON error shape; a body that is
    // not JSON is 415; both are in the document.
    let (status, unknown) = server.call(&api, Method::GET, "/api/v1/no-such-route", None);
    assert_eq!((status, unknown["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{unknown}");
    let (status, _, text) =
        server.raw(&api, Method::POST, "/api/v1/copies/check", None, &[("content-type", "text/plain")]);
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{text}");
    assert!(text.contains("unsupported_media_type"), "{text}");

    let (status, started) = server.call(&api, Method::POST, "/api/v1/copies", Some(plan));
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run = started["run"].as_i64().unwrap();
    let done = wait_done(&server, &api, run);
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["group_state"], "awaiting_review");
    assert_eq!(done["error"], Value::Null);
    // Organization-level entries (no site) show to that organization's
    // admins only.
    let (_, log) = server.call(&api, Method::GET, "/api/v1/audit", None);
    let text = log.to_string();
    assert!(text.contains("\"admin.create\"") && text.contains("root@acme.test"), "{text}");
    assert!(!text.contains("else@other.test"), "another organization's admin leaked: {text}");
    // Resuming a finished run changes nothing and says so.
    // The run page's progress, once done, brings the review banner along
    // (an out-of-band swap), so it shows without a reload.
    let (status, _, partial) =
        server.raw(&session, Method::GET, &format!("/console/copies/{run}/progress"), None, &[("hx-request", "true")]);
    assert_eq!(status, StatusCode::OK);
    assert!(partial.contains("id=\"review-banner\" hx-swap-oob=\"true\""), "{partial}");
    assert!(partial.contains("1 imported group needs review"), "{partial}");
    let (_, audit_before) = server.call(&api, Method::GET, "/api/v1/audit", None);
    let (status, again) = server.call(&api, Method::POST, &format!("/api/v1/copies/{run}/resume"), None);
    assert_eq!((status, again["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("run_done")), "{again}");
    let (_, audit_after) = server.call(&api, Method::GET, "/api/v1/audit", None);
    assert_eq!(audit_before, audit_after, "a refused resume was logged");
    let (status, headers, csv) =
        server.raw(&api, Method::GET, &format!("/api/v1/copies/{run}/report/RequiresAttention.csv"), None, &[]);
    assert_eq!(status, StatusCode::OK);
    assert!(headers[reqwest::header::CONTENT_DISPOSITION].to_str().unwrap().contains("attachment"));
    assert_eq!(csv, expected);

    let (status, groups) = server.call(&api, Method::GET, "/api/v1/sites/us/groups?pending=true", None);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(groups[0]["name"], "customers-from-eu");
    assert_eq!(groups[0]["state"], "awaiting_review");
    assert!(
        groups[0]["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().eq_ignore_ascii_case("chen@acme.test"))
    );
    assert!(access(&server, &api, "chen@acme.test", None).is_empty());
    let approve = "/api/v1/sites/us/groups/customers-from-eu/approve";
    let (status, decided) = server.call(&api, Method::POST, approve, None);
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["changed"], true);
    let (_, again) = server.call(&api, Method::POST, approve, None);
    assert_eq!(again["changed"], false);
    assert_eq!(access(&server, &api, "chen@acme.test", None), ["SUP-3"]);

    assert_eq!(access(&server, &api, "fay@acme.test", Some("portal-only")), ["HR-1"]);
    let (status, dry) = server.call(
        &api,
        Method::POST,
        "/api/v1/sites/us/upgrade",
        Some(json!({"emails": ["fay@acme.test"], "dry_run": true})),
    );
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["upgraded"], 1);
    assert_eq!(dry["lines"][0]["requests_reported"], 1);
    assert_eq!(access(&server, &api, "fay@acme.test", None), ["SUP-6"]);
    let (status, up) =
        server.call(&api, Method::POST, "/api/v1/sites/us/upgrade", Some(json!({"emails": ["fay@acme.test"]})));
    assert_eq!(status, StatusCode::OK, "{up}");
    assert_eq!(up["lines"][0]["status"], "upgraded");
    assert_eq!(access(&server, &api, "fay@acme.test", None), ["HR-1", "SUP-6"]);

    let (status, refused) = server.call(&api, Method::POST, &format!("/api/v1/copies/{run}/rollback"), None);
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "rollback_refused");
    assert!(!refused["error"]["details"].as_array().unwrap().is_empty());

    let (status, audit) = server.call(&api, Method::GET, "/api/v1/audit?site=us", None);
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    for action in ["site.create", "site.import", "copy.run", "group.approve", "customer.upgrade"] {
        assert!(actions.contains(&(action, "api:root@acme.test")), "{action} missing from {actions:?}");
    }
}

/// Every operation the OpenAPI document lists, with its path parameters
/// filled in.
/// A pull of a Jira site on a port nothing listens on: valid, and it fails.
fn unreachable_pull() -> Value {
    json!({"jira": "http://127.0.0.1:9", "email": "admin@acme.test", "api_token": "not-a-token"})
}

fn documented_operations(server: &Server) -> Vec<(Method, String, String)> {
    let (status, doc) = server.call(&Client::new(), Method::GET, "/api/v1/openapi.json", None);
    assert_eq!(status, StatusCode::OK);
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{site}", "us")
                .replace("{org}", "acme")
                .replace("{run}", "1")
                .replace("{pull}", "1")
                .replace("{id}", "1")
                .replace("{group}", "customers-from-eu")
                .replace("{decision}", "approve")
                .replace("{file}", "RequiresAttention.csv");
            operations.push((method.to_uppercase().parse().unwrap(), path.clone(), concrete));
        }
    }
    operations
}

fn every_route_is_documented_and_refuses_anonymous_callers(backend: Backend) {
    let (server, _, _) = start(backend);
    let operations = documented_operations(&server);
    let documented: Vec<(String, String)> = operations.iter().map(|(m, p, _)| (m.to_string(), p.clone())).collect();
    // What the CLI does, as the API must offer it (SPEC §6).
    let required = [
        ("POST", "/api/v1/session"),
        ("DELETE", "/api/v1/session"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("DELETE", "/api/v1/tokens/{id}"),
        ("POST", "/api/v1/orgs"),
        ("POST", "/api/v1/orgs/{org}/sites"),
        ("GET", "/api/v1/sites"),
        ("POST", "/api/v1/sites/{site}/import"),
        ("POST", "/api/v1/sites/{site}/pull"),
        ("GET", "/api/v1/pulls/{pull}"),
        ("GET", "/api/v1/sites/{site}/export"),
        ("GET", "/api/v1/sites/{site}/customers"),
        ("GET", "/api/v1/sites/{site}/access"),
        ("POST", "/api/v1/copies/check"),
        ("POST", "/api/v1/copies"),
        ("GET", "/api/v1/copies"),
        ("GET", "/api/v1/copies/{run}"),
        ("POST", "/api/v1/copies/{run}/resume"),
        ("POST", "/api/v1/copies/{run}/rollback"),
        ("GET", "/api/v1/copies/{run}/report"),
        ("GET", "/api/v1/copies/{run}/report/{file}"),
        ("GET", "/api/v1/sites/{site}/groups"),
        ("POST", "/api/v1/sites/{site}/groups/{group}/{decision}"),
        ("POST", "/api/v1/sites/{site}/upgrade"),
        ("GET", "/api/v1/audit"),
    ];
    for (method, path) in required {
        assert!(documented.contains(&(method.to_owned(), path.to_owned())), "{method} {path} is not in openapi.json");
    }
    // Every documented route is served, and only sign-in and sign-out are
    // open to anonymous callers.
    for (method, path, concrete) in operations {
        let (status, body) = server.call(&Client::new(), method.clone(), &concrete, Some(json!({})));
        match (method.as_str(), path.as_str()) {
            ("POST", "/api/v1/session") => assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}"),
            ("DELETE", "/api/v1/session") => assert_eq!(status, StatusCode::NO_CONTENT),
            _ => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
                assert_eq!(body["error"]["code"], "unauthorized");
            }
        }
    }
}

fn authorization_of_every_route_per_role(backend: Backend) {
    let (server, root, other) = start(backend);
    let admin = server.sign_in("root@acme.test", &root);
    let (token, _, _) = server.token_client(&admin, "matrix");
    let stranger = server.sign_in("else@other.test", &other);
    story_sites(&server, &admin);
    let (status, _) = server.call(&admin, Method::POST, "/api/v1/copies", Some(json!({"from": "eu", "to": "us"})));
    assert_eq!(status, StatusCode::ACCEPTED);
    wait_done(&server, &admin, 1);
    // Pull 1: a site nobody answers for (it fails at once, and exists).
    let (status, body) = server.call(&admin, Method::POST, "/api/v1/sites/us/pull", Some(unreachable_pull()));
    assert_eq!((status, body["pull"].as_u64()), (StatusCode::ACCEPTED, Some(1)), "{body}");

    // Route -> what an admin of another organization gets. Lists are
    // filtered to the caller's organizations instead of refused.
    let expect_stranger = |method: &str, path: &str| -> StatusCode {
        match (method, path) {
            ("POST", "/api/v1/session") => StatusCode::UNPROCESSABLE_ENTITY,
            ("DELETE", "/api/v1/session") => StatusCode::NO_CONTENT,
            (
                "GET",
                "/api/v1/me" | "/api/v1/sites" | "/api/v1/copies" | "/api/v1/orgs" | "/api/v1/audit" | "/api/v1/tokens",
            ) => StatusCode::OK,
            ("POST", "/api/v1/tokens" | "/api/v1/orgs") => StatusCode::CREATED,
            ("DELETE", "/api/v1/tokens/{id}") => StatusCode::NOT_FOUND,
            // Another organization's pull is not found: pull ids are
            // sequential, a refusal would name the organization.
            ("GET", "/api/v1/pulls/{pull}") => StatusCode::NOT_FOUND,
            _ => StatusCode::FORBIDDEN,
        }
    };
    for (method, path, concrete) in documented_operations(&server) {
        if path == "/api/v1/session" {
            continue; // would sign the clients out
        }
        let body = match path.as_str() {
            "/api/v1/copies/check" | "/api/v1/copies" => json!({"from": "eu", "to": "us"}),
            "/api/v1/sites/{site}/upgrade" => json!({"emails": ["fay@acme.test"], "dry_run": true}),
            "/api/v1/sites/{site}/import" => json!({"files": {}}),
            "/api/v1/sites/{site}/pull" => unreachable_pull(),
            "/api/v1/orgs/{org}/sites" => json!({"site": "intruder"}),
            "/api/v1/orgs" => json!({"org": "elsewhere"}),
            "/api/v1/tokens" => json!({"name": "own"}),
            _ => json!({}),
        };
        let concrete = if path.ends_with("/access") { format!("{concrete}?email=fay@acme.test") } else { concrete };
        let (status, reply) = server.call(&stranger, method.clone(), &concrete, Some(body.clone()));
        assert_eq!(status, expect_stranger(method.as_str(), &path), "other org's admin: {method} {path}: {reply}");
        if status == StatusCode::OK {
            let text = reply.to_string();
            assert!(
                !text.contains("\"us\"") && !text.contains("fay@acme.test"),
                "{method} {path} leaked acme's data: {text}"
            );
        }
        // The token may do what its admin may, except manage tokens.
        if matches!(method, Method::GET) {
            let (status, reply) = server.call(&token, method.clone(), &concrete, None);
            assert!(status.is_success(), "token: {method} {path}: {status} {reply}");
            let (status, reply) = server.call(&admin, method.clone(), &concrete, None);
            assert!(status.is_success(), "admin: {method} {path}: {status} {reply}");
        }
    }
    let (status, body) = server.call(&token, Method::POST, "/api/v1/tokens", Some(json!({"name": "second"})));
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "session_required");
    // Organizations: a signed-in admin creates one (and administers it);
    // a token cannot; a name taken elsewhere says so without naming whose.
    let (status, body) = server.call(&token, Method::POST, "/api/v1/orgs", Some(json!({"org": "by-token"})));
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("session_required")), "{body}");
    let (status, body) = server.call(&admin, Method::POST, "/api/v1/orgs", Some(json!({"org": "acme-labs"})));
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) =
        server.call(&stranger, Method::POST, "/api/v1/orgs/elsewhere/sites", Some(json!({"site": "us"})));
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(!body.to_string().contains("acme"), "another organization's name leaked: {body}");
    let (status, _) = server.call(
        &admin,
        Method::POST,
        "/api/v1/sites/us/upgrade",
        Some(json!({"emails": ["fay@acme.test"], "dry_run": true})),
    );
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server.call(&admin, Method::GET, "/api/v1/sites/nowhere/customers", None);
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, body) = server.call(&admin, Method::GET, "/api/v1/sites/us/customers?type=robot", None);
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")));
}

fn cross_site_requests_are_refused_and_headers_set(backend: Backend) {
    let (server, root, _) = start(backend);
    let client = Client::builder().cookie_store(true).build().unwrap();
    let (status, headers, _) = server.raw(
        &client,
        Method::POST,
        "/api/v1/session",
        Some(json!({"email": "root@acme.test", "password": root})),
        &[],
    );
    assert_eq!(status, StatusCode::OK);
    let cookie = headers[reqwest::header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    for name in ["content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy"] {
        assert!(headers.contains_key(name), "{name} missing");
    }
    let body = Some(json!({"org": "evil"}));
    let from_elsewhere = [("origin", "http://evil.example"), ("sec-fetch-site", "cross-site")];
    let (status, _, text) = server.raw(&client, Method::POST, "/api/v1/orgs", body.clone(), &from_elsewhere);
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(text.contains("\"csrf\""), "{text}");
    // The console answers the same refusal with a page, never raw JSON.
    let (status, headers, text) = server.raw(&client, Method::POST, "/console/tokens", None, &from_elsewhere);
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers[reqwest::header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"), "{text}");
    assert!(text.contains("sent from another site") && !text.contains("x-ferry"), "{text}");
    assert!(!headers.contains_key("x-ferry-csrf-refused"));
    let (status, _, text) =
        server.raw(&client, Method::POST, "/api/v1/orgs", body.clone(), &[("origin", "http://evil.example")]);
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    let (status, _, text) =
        server.raw(&client, Method::POST, "/api/v1/orgs", body, &[("sec-fetch-site", "same-origin")]);
    assert_eq!(status, StatusCode::CREATED, "{text}");

    // Sign-in attempts are limited per email.
    let anonymous = Client::new();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let wrong = Some(json!({"email": "root@acme.test", "password": "wrong"}));
        statuses.push(server.call(&anonymous, Method::POST, "/api/v1/session", wrong).0);
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    let wrong = Some(json!({"email": "root@acme.test", "password": "wrong"}));
    let (status, headers, _) = server.raw(&anonymous, Method::POST, "/api/v1/session", wrong, &[]);
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[reqwest::header::RETRY_AFTER], "60", "a refused sign-in says when to try again");
}

fn secrets_are_stored_hashed_and_tokens_revocable(backend: Backend) {
    let (server, root, _) = start(backend);
    let session = server.sign_in("root@acme.test", &root);
    let (api, token, id) = server.token_client(&session, "revocable");
    assert_eq!(server.call(&api, Method::GET, "/api/v1/me", None).0, StatusCode::OK);
    let mut store = server.store();
    let (hash, token_hash) = store
        .read(|tx| {
            let hash =
                tx.query_opt("SELECT password_hash FROM admins WHERE email_key = 'root@acme.test'", &[], |r| {
                    Ok(r.text(0)?.to_owned())
                })?;
            let token_hash =
                tx.query_opt("SELECT token_hash FROM api_tokens WHERE id = $1", &[ferry_store::Val::I(id)], |r| {
                    Ok(r.text(0)?.to_owned())
                })?;
            Ok::<_, ferry_store::StoreError>((hash.unwrap(), token_hash.unwrap()))
        })
        .unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains(&root), "{hash}");
    assert_ne!(token_hash, token);
    assert!(!token_hash.contains(&token[6..]));
    let (status, tokens) = server.call(&session, Method::GET, "/api/v1/tokens", None);
    assert_eq!(status, StatusCode::OK);
    assert!(!tokens.to_string().contains(&token), "a token is shown only when created");
    assert_eq!(server.call(&session, Method::DELETE, &format!("/api/v1/tokens/{id}"), None).0, StatusCode::NO_CONTENT);
    let (status, body) = server.call(&api, Method::GET, "/api/v1/me", None);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Signing out ends the session for good.
    assert_eq!(server.call(&session, Method::DELETE, "/api/v1/session", None).0, StatusCode::NO_CONTENT);
    assert_eq!(server.call(&session, Method::GET, "/api/v1/me", None).0, StatusCode::UNAUTHORIZED);
}

fn customer_pages_walk_every_customer_once(backend: Backend) {
    let (server, root, _) = start(backend);
    let mut store = server.store();
    ferry_snapshot::demo::load_demo(&mut store, 300, 7, &mut ferry_snapshot::Quiet).unwrap();
    let password = ferry_ops::admin::create_admin(&mut store, "demo", "root@acme.test").unwrap();
    assert_ne!(password, root);
    let admin = server.sign_in("root@acme.test", &password);
    // A duplicate is upgraded first: its merged portal-only account is on
    // no page and in no total, and it is a duplicate no more.
    let duplicates = store
        .read(|tx| {
            let site = ferry_store::sites::site(tx, "demo-dst")?;
            let only = ferry_store::accounts::CustomerFilter {
                account_type: Some(ferry_core::model::AccountType::PortalOnly),
                duplicates_only: true,
            };
            let mut emails = Vec::new();
            ferry_store::accounts::each_customer(tx, site.id, only, |c| {
                emails.push(c.email);
                Ok(())
            })?;
            Ok::<_, ferry_store::StoreError>(emails)
        })
        .unwrap();
    let merged = duplicates
        .iter()
        .find(|email| {
            let body = json!({"emails": [email]});
            let (status, done) = server.call(&admin, Method::POST, "/api/v1/sites/demo-dst/upgrade", Some(body));
            assert_eq!(status, StatusCode::OK, "{done}");
            done["upgraded"] == 1
        })
        .expect("a duplicate that upgrades")
        .clone();
    for (filter, duplicates) in [("", false), ("&type=portal-only", false), ("&type=atlassian", false), ("", true)] {
        let mut expected = Vec::new();
        let account_type = match filter {
            "&type=portal-only" => Some(ferry_core::model::AccountType::PortalOnly),
            "&type=atlassian" => Some(ferry_core::model::AccountType::Atlassian),
            _ => None,
        };
        let cfilter = ferry_store::accounts::CustomerFilter { account_type, duplicates_only: duplicates };
        store
            .read(|tx| {
                let site = ferry_store::sites::site(tx, "demo-dst")?;
                ferry_store::accounts::each_customer(tx, site.id, cfilter, |c| {
                    // (The list the CLI prints keeps merged accounts.)
                    if !(c.email == merged && c.account_type == ferry_core::model::AccountType::PortalOnly) {
                        expected.push((c.email, c.account_type.cli_value().to_owned()));
                    }
                    Ok(())
                })
            })
            .unwrap();
        let query = format!("limit=7&duplicates={duplicates}{filter}");
        let (seen, total) = walk_pages(&server, &admin, "demo-dst", &query);
        assert!(!expected.is_empty());
        assert_eq!(seen, expected, "filter {filter} duplicates {duplicates}");
        assert_eq!(total, Some(expected.len() as u64), "filter {filter} duplicates {duplicates}");
    }
    // Search: exactly the customers ferry_core::search::matches finds (a
    // word of the name or email starts the search, accents and case
    // aside), paged three at a time forwards and back, with their total.
    let mut everyone = Vec::new();
    store
        .read(|tx| {
            let site = ferry_store::sites::site(tx, "demo-dst")?;
            ferry_store::accounts::each_customer(tx, site.id, Default::default(), |c| {
                if !(c.email == merged && c.account_type == ferry_core::model::AccountType::PortalOnly) {
                    everyone.push(c);
                }
                Ok(())
            })
        })
        .unwrap();
    let (ascii_name, accented) = {
        let accented = everyone
            .iter()
            .find(|c| c.display_name != ferry_core::search::fold(&c.display_name) && !c.display_name.is_ascii())
            .expect("a customer with an accented name");
        let last_word = accented.display_name.split(' ').next_back().unwrap().to_owned();
        (ferry_core::search::fold(&last_word), accented.email.clone())
    };
    let domain = everyone[0].email.rsplit_once('@').unwrap().1.to_owned();
    for q in ["ALICE", "a", "%C3%B8yvind", "oyvind", &urlencode(&ascii_name), &urlencode(&domain), "zzzz-nobody"] {
        let search = ferry_core::search::Query::parse(&percent_encoding::percent_decode_str(q).decode_utf8_lossy());
        let oracle: Vec<(String, String)> = everyone
            .iter()
            .filter(|c| search.as_ref().is_some_and(|s| ferry_core::search::matches(s, &c.email_key, &c.display_name)))
            .map(|c| (c.email.clone(), c.account_type.cli_value().to_owned()))
            .collect();
        let (status, page) =
            server.call(&admin, Method::GET, &format!("/api/v1/sites/demo-dst/customers?q={q}&limit=1"), None);
        assert_eq!(status, StatusCode::OK, "{page}");
        // A site this small is searched whole: never too common.
        assert_eq!(page["search_too_common"], false, "search {q}");
        let (paged, total) = walk_pages(&server, &admin, "demo-dst", &format!("q={q}&limit=3"));
        assert_eq!(paged, oracle, "search {q}");
        assert_eq!(total, Some(oracle.len() as u64), "search {q}");
    }
    // A customer with an accented name is found by the name without accents.
    let (status, page) = server.call(
        &admin,
        Method::GET,
        &format!("/api/v1/sites/demo-dst/customers?q={}&limit=500", urlencode(&ascii_name.to_uppercase())),
        None,
    );
    assert_eq!(status, StatusCode::OK);
    assert!(
        page["customers"].as_array().unwrap().iter().any(|c| c["email"] == accented.as_str()),
        "{ascii_name}: {page}"
    );
    // Given `after` and `before` together, `after` decides the page.
    let page =
        |q: &str| server.call(&admin, Method::GET, &format!("/api/v1/sites/demo-dst/customers?limit=5&{q}"), None);
    let (status, both) = page("after=b&before=c");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(both, page("after=b").1);
}

/// Walks a site's customer pages forwards (by `next`) to the end and back
/// (by `previous`) to the start: every customer once each way, in list
/// order; the first page has no `previous`. Returns the customers and the
/// total every page gave (one value, or the walk fails).
fn walk_pages(server: &Server, admin: &Client, site: &str, query: &str) -> (Vec<(String, String)>, Option<u64>) {
    let customer = |c: &Value| (c["email"].as_str().unwrap().to_owned(), c["type"].as_str().unwrap().to_owned());
    let get = |cursor: &str| {
        let (status, page) =
            server.call(admin, Method::GET, &format!("/api/v1/sites/{site}/customers?{query}{cursor}"), None);
        assert_eq!(status, StatusCode::OK, "{page}");
        page
    };
    let first = get("");
    assert!(first["previous"].is_null(), "the first page has no previous: {first}");
    let total = first["total"].as_u64();
    let (mut pages, mut page) = (Vec::new(), first);
    loop {
        assert_eq!(page["total"].as_u64(), total);
        pages.push(page["customers"].as_array().unwrap().iter().map(customer).collect::<Vec<_>>());
        match page["next"].as_str().map(str::to_owned) {
            Some(next) => page = get(&format!("&after={}", urlencode(&next))),
            None => break,
        }
    }
    // Back from the last page: each previous page is the one before.
    let mut back = pages.len() - 1;
    while let Some(previous) = page["previous"].as_str().map(str::to_owned) {
        page = get(&format!("&before={}", urlencode(&previous)));
        back -= 1;
        let rows: Vec<(String, String)> = page["customers"].as_array().unwrap().iter().map(customer).collect();
        assert_eq!(rows, pages[back], "page {back} going back");
    }
    assert_eq!(back, 0, "going back stopped before the first page");
    (pages.concat(), total)
}

fn urlencode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A client that keeps cookies and does not follow redirects.
fn browser_like() -> Client {
    Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn form_post(server: &Server, client: &Client, path: &str, form: &str) -> StatusCode {
    server.runtime.block_on(async {
        client
            .post(format!("{}{path}", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned())
            .send()
            .await
            .unwrap()
            .status()
    })
}

fn every_route_as_every_role(backend: Backend) {
    let (server, root, other) = start(backend);
    let api_admin = server.sign_in("root@acme.test", &root);
    story_sites(&server, &api_admin);
    let (status, _) = server.call(&api_admin, Method::POST, "/api/v1/copies", Some(json!({"from": "eu", "to": "us"})));
    assert_eq!(status, StatusCode::ACCEPTED);
    wait_done(&server, &api_admin, 1);
    let mut store = server.store();
    let chen = ferry_ops::admin::set_customer_password(&mut store, "us", "chen@acme.test", None).unwrap();
    let alice = ferry_ops::admin::set_customer_password(&mut store, "eu", "alice@acme.test", None).unwrap();

    let anonymous = browser_like();
    let customer_a = browser_like();
    let customer_b = browser_like();
    let stranger = browser_like();
    let admin = browser_like();
    let sign_in = |client: &Client, path: &str, email: &str, password: &str| {
        let status = form_post(&server, client, path, &format!("email={}&password={password}", urlencode(email)));
        assert_eq!(status, StatusCode::SEE_OTHER, "{email} signs in at {path}");
    };
    sign_in(&customer_a, "/help/us/sign-in", "chen@acme.test", &chen);
    sign_in(&customer_b, "/help/eu/sign-in", "alice@acme.test", &alice);
    sign_in(&stranger, "/sign-in", "else@other.test", &other);
    sign_in(&admin, "/sign-in", "root@acme.test", &root);
    let roles = [
        ("anonymous", &anonymous),
        ("customer of us", &customer_a),
        ("customer of eu", &customer_b),
        ("admin of other", &stranger),
        ("admin", &admin),
    ];

    use StatusCode as S;
    const OK: S = S::OK;
    const TO_SIGN_IN: S = S::SEE_OTHER;
    const FORBIDDEN: S = S::FORBIDDEN;
    // Pages: (method, path, form, outcome per role in the order above).
    // Customers' help-center cookie is never sent to the console (its path
    // is /help), so there they are anonymous; one forced into the admins'
    // cookie is refused below.
    let pages: [(&str, &str, &str, [S; 5]); 33] = [
        ("GET", "/console", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, OK, OK]),
        ("GET", "/console/users", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, OK, OK]),
        ("GET", "/console/copies", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, OK, OK]),
        ("GET", "/console/audit", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, OK, OK]),
        ("GET", "/console/tokens", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, OK, OK]),
        ("GET", "/console/sites/us/customers", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, OK]),
        ("GET", "/console/sites/us/groups/customers-from-eu", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, OK]),
        ("GET", "/console/copies/1", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, OK]),
        ("GET", "/console/copies/1/progress", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, OK]),
        ("GET", "/console/copies/1/details", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, OK]),
        (
            "GET",
            "/console/copies/1/files/RequiresAttention.csv",
            "",
            [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, OK],
        ),
        ("GET", "/console/copies/1/report.zip", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, OK]),
        // Saving a plan sends the browser to the saved plan, checked.
        ("POST", "/console/plans", "from=eu&to=us", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, S::SEE_OTHER]),
        ("GET", "/console/plans/1", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, OK]),
        // A check and an upgrade's dry run change nothing: pages.
        ("GET", "/console/copies/check?from=eu&to=us", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, OK]),
        (
            "GET",
            "/console/sites/us/upgrade?email=fay%40acme.test",
            "",
            [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, OK],
        ),
        ("GET", "/console/sites/us/upgrade/done?upgraded=1", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, OK]),
        // Approve asks first, then redirects to the group's page.
        (
            "GET",
            "/console/sites/us/groups/customers-from-eu/approve",
            "",
            [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, OK],
        ),
        (
            "POST",
            "/console/sites/us/groups/customers-from-eu/approve",
            "",
            [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, S::SEE_OTHER],
        ),
        // A run's rollback asks first; resuming a done run is refused.
        ("GET", "/console/copies/1/rollback", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, OK]),
        ("POST", "/console/copies/1/resume", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, S::CONFLICT]),
        // Creating a site answers with a redirect to the console.
        (
            "POST",
            "/console/sites",
            "org=acme&site=extra",
            [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, S::SEE_OTHER],
        ),
        ("GET", "/help/us", "", [TO_SIGN_IN, OK, TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN]),
        ("GET", "/help/us/requests/SUP-3", "", [TO_SIGN_IN, OK, TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN]),
        ("GET", "/help/us/requests/SUP-1", "", [TO_SIGN_IN, S::NOT_FOUND, TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN]),
        ("GET", "/help/eu", "", [TO_SIGN_IN, TO_SIGN_IN, OK, TO_SIGN_IN, TO_SIGN_IN]),
        ("GET", "/help/us/sign-in", "", [OK, OK, OK, OK, OK]),
        // A run from the console answers with a redirect to its page.
        ("POST", "/console/copies/run", "from=eu&to=us", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, FORBIDDEN, S::SEE_OTHER]),
        // Any admin may make its own token (then sent to the page that
        // shows it once); nobody else.
        ("POST", "/console/tokens", "name=own", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, S::SEE_OTHER, S::SEE_OTHER]),
        ("GET", "/console/tokens/created/nothing", "", [TO_SIGN_IN, TO_SIGN_IN, TO_SIGN_IN, OK, OK]),
        ("GET", "/static/ferry.css", "", [OK, OK, OK, OK, OK]),
        // The root sends everyone to the console (which decides from there).
        ("GET", "/", "", [S::SEE_OTHER, S::SEE_OTHER, S::SEE_OTHER, S::SEE_OTHER, S::SEE_OTHER]),
        ("GET", "/sign-in", "", [OK, OK, OK, OK, OK]),
    ];
    // Chen sees SUP-3 once the group is approved.
    let (status, _) = server.call(&api_admin, Method::POST, "/api/v1/sites/us/groups/customers-from-eu/approve", None);
    assert_eq!(status, OK);
    for (method, path, form, expected) in pages {
        for ((role, client), want) in roles.iter().zip(expected) {
            if method == "GET" {
                let (got, headers, _) = server.raw(client, Method::GET, path, None, &[]);
                assert_eq!(got, want, "{role}: {method} {path}");
                if got == TO_SIGN_IN && path != "/" {
                    let location = headers[reqwest::header::LOCATION].to_str().unwrap();
                    assert!(location.ends_with("/sign-in"), "{role}: {method} {path} goes to {location}");
                }
            } else {
                assert_eq!(form_post(&server, client, path, form), want, "{role}: {method} {path}");
            }
        }
    }
    // An API token gets nothing from the console (it could mint tokens there).
    let (token, _, _) = server.token_client(&api_admin, "not for the console");
    for path in ["/console", "/console/tokens", "/console/sites/us/customers"] {
        assert_eq!(server.raw(&token, Method::GET, path, None, &[]).0, FORBIDDEN, "token: GET {path}");
    }
    let minted = server.runtime.block_on(async {
        token
            .post(format!("{}/console/tokens", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("name=minted")
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(minted, FORBIDDEN, "a token mints no token through the console");
    // The API: customers get nothing from it. Their browsers send it no
    // session (401); a customer's session forced into the admins' cookie
    // is a customer still (403), on the API and on the console.
    let forced_id = "forced-customer-session";
    store
        .write(|tx| {
            let site = ferry_store::sites::site(tx, "us")?;
            let chen = ferry_store::accounts::find_by_email(tx, site.id, "chen@acme.test", None)?.unwrap();
            let owner = ferry_store::web::SessionOwner::Customer { account_id: chen.id, site_id: site.id };
            ferry_store::web::create_session(
                tx,
                &ferry_server::auth::secret_hash(forced_id),
                owner,
                "2999-01-01T00:00:00Z",
            )
        })
        .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::COOKIE, format!("ferry_session={forced_id}").parse().unwrap());
    let forced =
        Client::builder().default_headers(headers).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for path in ["/console", "/console/sites/us/customers"] {
        assert_eq!(server.raw(&forced, Method::GET, path, None, &[]).0, FORBIDDEN, "forced: GET {path}");
    }
    for (method, path, concrete) in documented_operations(&server) {
        if path == "/api/v1/session" {
            continue;
        }
        for (role, client, want) in [
            ("customer of us", &customer_a, S::UNAUTHORIZED),
            ("customer of eu", &customer_b, S::UNAUTHORIZED),
            ("customer session as admin cookie", &forced, FORBIDDEN),
        ] {
            let (status, body) = server.call(client, method.clone(), &concrete, Some(json!({})));
            assert_eq!(status, want, "{role}: {method} {path}: {body}");
        }
    }
}

/// A second server on the first one's database.
fn second_server(server: &Server) -> String {
    let state = AppState::open(&server.db.url).unwrap();
    server.runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(ferry_server::serve(listener, state));
        format!("http://{addr}")
    })
}

fn two_servers_share_sessions_and_one_applies_a_run(backend: Backend) {
    let (server, root, _) = start(backend);
    let other_base = second_server(&server);
    let session = server.sign_in("root@acme.test", &root);
    // The cookie the first server set signs in on the second (cookies are
    // per host, not per port): sessions live in the database.
    let on_second = |client: &Client, method: Method, path: &str, body: Option<Value>| {
        server.runtime.block_on(async {
            let mut request = client.request(method, format!("{other_base}{path}"));
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        })
    };
    let (status, me) = on_second(&session, Method::GET, "/api/v1/me", None);
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], "root@acme.test");
    story_sites(&server, &session);
    if backend != Backend::Postgres {
        return; // the run claim is PostgreSQL's (SQLite is one process's file)
    }
    // Another process holds run 1's claim: neither server applies it.
    let mut holder = ::postgres::Client::connect(&server.db.url, ::postgres::NoTls).unwrap();
    let claim: i64 = 0x6672_7279_0000_0000 + 1;
    holder.execute("SELECT pg_advisory_lock($1)", &[&claim]).unwrap();
    let (status, started) =
        on_second(&session, Method::POST, "/api/v1/copies", Some(json!({"from": "eu", "to": "us"})));
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["run"], 1);
    // The second server's run waits for the claim (PostgreSQL shows the
    // waiter): from here on, a run applied would be one applied under
    // another's claim.
    let waiting = (0..600).any(|_| {
        let waiting: i64 = holder
            .query_one(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                 AND (classid::bigint << 32) + objid::bigint = $1",
                &[&claim],
            )
            .unwrap()
            .get(0);
        waiting > 0 || {
            std::thread::sleep(Duration::from_millis(50));
            false
        }
    });
    assert!(waiting, "the second server's run never waited for its claim");
    let (status, body) = server.call(&session, Method::POST, "/api/v1/copies/1/resume", None);
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "run_claimed");
    let (_, run) = server.call(&session, Method::GET, "/api/v1/copies/1", None);
    assert_eq!(run["state"], "planning", "a claimed run was applied: {run}");
    // Released: the second server's run, which waited for the claim,
    // applies it, once.
    holder.execute("SELECT pg_advisory_unlock($1)", &[&claim]).unwrap();
    let done = wait_done(&server, &session, 1);
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["requests_copied"], 6);
    assert_eq!(access(&server, &session, "alice@acme.test", None), ["SUP-1"]);
}

fn a_rollback_ends_the_sessions_of_the_accounts_it_removes(backend: Backend) {
    let (server, root, _) = start(backend);
    let admin = server.sign_in("root@acme.test", &root);
    story_sites(&server, &admin);
    let (status, _) = server.call(&admin, Method::POST, "/api/v1/copies", Some(json!({"from": "eu", "to": "us"})));
    assert_eq!(status, StatusCode::ACCEPTED);
    wait_done(&server, &admin, 1);
    // alice is a new portal-only account on us (case 1): she signs in.
    let mut store = server.store();
    let password = ferry_ops::admin::set_customer_password(&mut store, "us", "alice@acme.test", None).unwrap();
    let alice = browser_like();
    let status =
        form_post(&server, &alice, "/help/us/sign-in", &format!("email=alice%40acme.test&password={password}"));
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(server.raw(&alice, Method::GET, "/help/us", None, &[]).0, StatusCode::OK);
    let (status, body) = server.call(&admin, Method::POST, "/api/v1/copies/1/rollback", None);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["accounts"].as_u64().unwrap() >= 1);
    // Her account is gone, and so is her session.
    let (status, headers, _) = server.raw(&alice, Method::GET, "/help/us", None, &[]);
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers[reqwest::header::LOCATION].to_str().unwrap().ends_with("/help/us/sign-in"));
}

fn a_search_too_common_lists_email_starts_and_says_so(backend: Backend) {
    let (server, root, _) = start(backend);
    let admin = server.sign_in("root@acme.test", &root);
    let import = |site: &str, rows: &str| {
        let (status, _) = server.call(&admin, Method::POST, "/api/v1/orgs/acme/sites", Some(json!({"site": site})));
        assert_eq!(status, StatusCode::CREATED);
        let accounts = format!("account_id,account_type,email,display_name,active,email_verified\n{rows}");
        let snapshot = json!({"files": {"accounts.csv": accounts}});
        let (status, body) = server.call(&admin, Method::POST, &format!("/api/v1/sites/{site}/import"), Some(snapshot));
        assert_eq!(status, StatusCode::OK, "{body}");
    };
    // A site too large to search whole (SEARCH_TERMS + 1 customers named
    // "Zed …") and one named "Other Person" whose email starts with "zed":
    // more match "zed" than a search reads.
    let mut rows: String = (0..=ferry_store::accounts::SEARCH_TERMS)
        .map(|i| format!("p{i},customer,p{i}@names.test,Zed {i},true,true\n"))
        .collect();
    rows.push_str("o1,customer,zed.other@names.test,Other Person,true,true\n");
    import("names", &rows);
    // A small site beside it: two more Zeds, and a Unicode domain given
    // in its xn-- form.
    import(
        "few",
        "f1,customer,f1@few.test,Zed Few,true,true\nf2,customer,f2@few.test,Zed Two,true,true\n\
         f3,customer,ana@xn--mnchen-3ya.de,Ana,true,true\n",
    );
    let search = |site: &str, q: &str| {
        let (status, page) =
            server.call(&admin, Method::GET, &format!("/api/v1/sites/{site}/customers?q={q}&limit=500"), None);
        assert_eq!(status, StatusCode::OK, "{page}");
        let emails: Vec<String> =
            page["customers"].as_array().unwrap().iter().map(|c| c["email"].as_str().unwrap().to_owned()).collect();
        (page["search_too_common"].as_bool().unwrap(), page["total"].as_u64(), emails)
    };
    // Too common: the customers whose email starts with it, and the page
    // says so (and gives no total it does not know).
    assert_eq!(search("names", "zed"), (true, None, vec!["zed.other@names.test".to_owned()]));
    assert_eq!(search("names", "names.test"), (true, None, vec![]));
    // Another site's customers make no search of a small site too common.
    let few = |emails: &[&str]| emails.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>();
    assert_eq!(search("few", "zed"), (false, Some(2), few(&["f1@few.test", "f2@few.test"])));
    // The domain is found in its Unicode form, with or without accents.
    for q in ["m%C3%BCnchen", "MUNCHEN.de", "ana%40m"] {
        assert_eq!(search("few", q), (false, Some(1), few(&["ana@xn--mnchen-3ya.de"])), "{q}");
    }
    // More of the name is rare enough: every match (Zed 10, Zed 100-109,
    // Zed 1000-1099), counted and sorted by email.
    let mut expected: Vec<String> = (0..=ferry_store::accounts::SEARCH_TERMS)
        .filter(|i| i.to_string().starts_with("10"))
        .map(|i| format!("p{i}@names.test"))
        .collect();
    expected.sort();
    assert_eq!(search("names", "zed%2010"), (false, Some(expected.len() as u64), expected));
    assert_eq!(search("names", "other"), (false, Some(1), few(&["zed.other@names.test"])));
    assert_eq!(search("names", "p999%40"), (false, Some(1), few(&["p999@names.test"])));
    // Nothing in the search can start a word: no one, and no error.
    assert_eq!(search("names", "%40%40"), (false, Some(0), vec![]));
}

/// Issue 14, 13: signing in to a help center in the browser an admin uses
/// for the console signs neither out: the two keep separate cookies.
fn console_and_help_center_sessions_stay_apart(backend: Backend) {
    let (server, root, _) = start(backend);
    let admin = server.sign_in("root@acme.test", &root);
    story_sites(&server, &admin);
    let mut store = server.store();
    let fay = ferry_ops::admin::set_customer_password(&mut store, "us", "fay@acme.test", None).unwrap();
    let browser = browser_like();
    let form = |email: &str, password: &str| format!("email={}&password={}", urlencode(email), urlencode(password));
    assert_eq!(form_post(&server, &browser, "/sign-in", &form("root@acme.test", &root)), StatusCode::SEE_OTHER);
    assert_eq!(form_post(&server, &browser, "/help/us/sign-in", &form("fay@acme.test", &fay)), StatusCode::SEE_OTHER);
    let get = |path: &str| {
        server.runtime.block_on(async {
            let response = browser.get(format!("{}{path}", server.base)).send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        })
    };
    let (status, page) = get("/console");
    assert_eq!(status, StatusCode::OK, "the admin was signed out of the console: {page}");
    let (status, page) = get("/help/us");
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("HR-1"), "the customer was signed out of the help center: {page}");
    // Signing out of one leaves the other signed in.
    let status = server
        .runtime
        .block_on(async { browser.post(format!("{}/help/us/sign-out", server.base)).send().await.unwrap().status() });
    assert!(status.is_redirection(), "{status}");
    assert_eq!(get("/console").0, StatusCode::OK);
    assert!(get("/help/us").0.is_redirection(), "signed out of the help center");
}

/// Issue 14, 13: a connection that sends no request is closed once the
/// header-read timeout passes, instead of being kept forever; requests on
/// other connections go on.
fn idle_connections_are_closed(backend: Backend) {
    use std::io::Read;
    let (server, _, _) = start(backend);
    let state = AppState::open(&server.db.url).unwrap();
    let address = server.runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(ferry_server::serve_with(listener, state, Duration::from_millis(500)));
        address
    });
    let mut idle: Vec<std::net::TcpStream> = (0..50).map(|_| std::net::TcpStream::connect(address).unwrap()).collect();
    let started = std::time::Instant::now();
    for connection in &mut idle {
        connection.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buffer = [0u8; 64];
        // Closed by the server: end of stream (or a reset), not a time-out.
        match connection.read(&mut buffer) {
            Ok(n) => assert_eq!(n, 0, "the server sent {:?}", String::from_utf8_lossy(&buffer[..n])),
            Err(e) => assert!(
                !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
                "an idle connection was kept open: {e}"
            ),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let status = server
        .runtime
        .block_on(async { reqwest::get(format!("http://{address}/api/v1/openapi.json")).await.unwrap().status() });
    assert_eq!(status, StatusCode::OK);
}

/// Issue 14, 3: export then import through the API works at the demo's
/// 8,000 customers (a 3 MB body, over axum's default 2 MB); a body over
/// the server's limit answers 413 naming the limit.
fn large_snapshots_round_trip_through_the_api(backend: Backend) {
    let (server, root, _) = start(backend);
    let admin = server.sign_in("root@acme.test", &root);
    let snapshots = tempfile::tempdir().unwrap();
    ferry_snapshot::demo::write_demo(&snapshots.path().join("src"), &snapshots.path().join("dst"), 8000, 5).unwrap();
    let mut store = server.store();
    for site in ["big", "again"] {
        store.write(|tx| ferry_store::sites::create_site(tx, "acme", site)).unwrap();
    }
    ferry_snapshot::import_site(&mut store, "big", &snapshots.path().join("src"), &mut ferry_snapshot::Quiet).unwrap();
    let (status, exported) = server.call(&admin, Method::GET, "/api/v1/sites/big/export", None);
    assert_eq!(status, StatusCode::OK);
    let size = exported.to_string().len();
    assert!(size > 2 << 20, "the snapshot is {size} bytes");
    let (status, imported) = server.call(&admin, Method::POST, "/api/v1/sites/again/import", Some(exported.clone()));
    assert_eq!(status, StatusCode::OK, "{imported}");
    let (_, again) = server.call(&admin, Method::GET, "/api/v1/sites/again/export", None);
    assert_eq!(again, exported, "export, import, export gives the same files");

    let small = AppState::open(&server.db.url).unwrap().with_max_import_bytes(100_000);
    let base = server.runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(ferry_server::serve(listener, small));
        format!("http://{address}")
    });
    // Just over the limit, so the server's answer never races a reset
    // over a large unread rest.
    let over = json!({"files": {"accounts.csv": "x".repeat(100_100)}});
    let (status, body) = server.runtime.block_on(async {
        let response = admin.post(format!("{base}/api/v1/sites/again/import")).json(&over).send().await.unwrap();
        (response.status(), response.json::<Value>().await.unwrap())
    });
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "too_large");
    assert!(body["error"]["message"].as_str().unwrap().contains("100000 bytes"), "{body}");
}

/// A group's name (a snapshot may give it any text) is percent-encoded in
/// every link and form: a name like `x/../../copies/1/rollback?` never
/// turns Approve into another action.
fn group_names_never_leave_their_links(backend: Backend) {
    let (server, root, _) = start(backend);
    let admin = server.sign_in("root@acme.test", &root);
    story_sites(&server, &admin);
    let evil = "x/../../../../copies/1/rollback?";
    let groups = format!("group_name,account_id,state\n\"{evil}\",aa-chen,awaiting_review\n");
    let (status, body) = server.call(
        &admin,
        Method::POST,
        "/api/v1/sites/us/import",
        Some(json!({"files": {"accounts.csv": "account_id,account_type,email,display_name,active,email_verified\n", "groups.csv": groups}})),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let encoded = "x%2F..%2F..%2F..%2F..%2Fcopies%2F1%2Frollback%3F";
    for page in ["/console/users", "/console", &format!("/console/sites/us/groups/{encoded}")] {
        let (status, _, html) = server.raw(&admin, Method::GET, page, None, &[]);
        assert_eq!(status, StatusCode::OK, "{page}: {html}");
        assert!(!html.contains("href=\"/console/sites/us/groups/x/"), "{page} links the raw name: {html}");
    }
    let (_, _, html) =
        server.raw(&admin, Method::GET, &format!("/console/sites/us/groups/{encoded}/approve"), None, &[]);
    assert!(html.contains(&format!("action=\"/console/sites/us/groups/{encoded}/approve\"")), "{html}");
}

/// Counts on the console's pages are grouped by commas.
#[test]
fn thousands_are_grouped_by_commas() {
    for (n, text) in [(0, "0"), (7, "7"), (999, "999"), (1000, "1,000"), (1_234_567, "1,234,567"), (100_000, "100,000")]
    {
        assert_eq!(ferry_server::ui::thousands(n), text);
    }
}

/// The vendored htmx is the version its name says and has the integrity
/// hash the pages give; a page loads it with that hash, and it is served.
#[test]
fn vendored_htmx_matches_its_name_and_the_pages_integrity_hash() {
    use base64::Engine;
    use ferry_server::ui::{HTMX, HTMX_FILE, HTMX_SRI};
    use sha2::{Digest, Sha384};

    let sri = format!("sha384-{}", base64::engine::general_purpose::STANDARD.encode(Sha384::digest(HTMX)));
    assert_eq!(sri, HTMX_SRI, "the pages' integrity attribute must match the vendored file");
    let version = HTMX_FILE.trim_start_matches("htmx-").trim_end_matches(".min.js");
    assert!(
        String::from_utf8_lossy(HTMX).contains(&format!("version:\"{version}\"")),
        "the file is not htmx {version}"
    );

    let (server, _, _) = start(Backend::Sqlite);
    let (status, _, html) = server.raw(&Client::new(), Method::GET, "/sign-in", None, &[]);
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains(&format!("src=\"/static/{HTMX_FILE}\" integrity=\"{HTMX_SRI}\"")), "{html}");
    let (status, _, served) = server.raw(&Client::new(), Method::GET, &format!("/static/{HTMX_FILE}"), None, &[]);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served.as_bytes(), HTMX);
}

/// SPEC §8 over the API and the console: a pull from a fake JSM Cloud site
/// runs in the background and imports the site all or nothing; its status
/// says the step, then the rows, hidden emails and notes; a refused token
/// fails the pull naming path and status, never the token, with nothing
/// written; another organization's admin gets neither the site nor the
/// pull; the console's form starts one and its page follows it.
fn a_jira_cloud_site_pulls_through_the_api_and_the_console(backend: Backend) {
    use ferry_testkit::jira::{FakeJira, FakeOptions};
    let (server, root, other) = start(backend);
    let admin = server.sign_in("root@acme.test", &root);
    let stranger = server.sign_in("else@other.test", &other);
    let (status, body) = server.call(&admin, Method::POST, "/api/v1/orgs/acme/sites", Some(json!({"site": "eu"})));
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let options = FakeOptions {
        hidden_emails: std::collections::BTreeSet::from(["po-chen".to_owned()]),
        ..FakeOptions::default()
    };
    let fake = FakeJira::start(&story_dir().join("eu"), options.clone());
    let request = |token: &str| {
        json!({
            "jira": fake.url(),
            "email": options.email,
            "api_token": token,
            "org_id": options.org_id,
            "admin_api_key": options.admin_key,
            "admin_api": fake.url(),
        })
    };
    let wait = |pull: u64| -> Value {
        for _ in 0..600 {
            let (status, body) = server.call(&admin, Method::GET, &format!("/api/v1/pulls/{pull}"), None);
            assert_eq!(status, StatusCode::OK, "{body}");
            if body["state"] != "running" {
                return body;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("pull {pull} did not finish");
    };

    // A refused token: the pull fails, names path and status, not the token.
    let (status, body) = server.call(&admin, Method::POST, "/api/v1/sites/eu/pull", Some(request("wrong-s3cret")));
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let failed = wait(body["pull"].as_u64().unwrap());
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["error_code"], "remote");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("/rest/servicedeskapi/servicedesk") && error.contains("401"), "{error}");
    assert!(!failed.to_string().contains("s3cret"), "{failed}");
    let (_, customers) = server.call(&admin, Method::GET, "/api/v1/sites/eu/customers", None);
    assert_eq!(customers["customers"].as_array().map(Vec::len), Some(0), "nothing written: {customers}");

    // The right token: the site arrives, with po-chen's email hidden.
    let (status, body) = server.call(&admin, Method::POST, "/api/v1/sites/eu/pull", Some(request(&options.token)));
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let pull = body["pull"].as_u64().unwrap();
    let done = wait(pull);
    assert_eq!(done["state"], "done", "{done}");
    for file in ["accounts.csv", "customers.csv", "requests.csv"] {
        let rows = std::fs::read_to_string(story_dir().join("eu").join(file)).unwrap().lines().count() - 1;
        assert_eq!(done["rows"][file], rows, "{file}: {done}");
    }
    assert_eq!(done["hidden_emails"][0]["account_id"], "po-chen", "{done}");
    assert_eq!(done["verification_checked"], true);
    assert!(done["requests"].as_u64().unwrap() > 10 && done["retries"].as_u64().unwrap() > 0, "{done}");
    assert!(!done.to_string().contains(&options.token) && !done.to_string().contains(&options.admin_key));
    let (status, access) = server.call(&admin, Method::GET, "/api/v1/sites/eu/access?email=alice%40acme.test", None);
    assert_eq!(status, StatusCode::OK, "{access}");
    assert!(access.to_string().contains("SUP-1"), "{access}");
    // A check into the story's us site: po-chen's outcome is uncertain (its
    // email is hidden), in the check's answer and on the console's page.
    let (status, body) = server.call(&admin, Method::POST, "/api/v1/orgs/acme/sites", Some(json!({"site": "us"})));
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = server.call(&admin, Method::POST, "/api/v1/sites/us/import", Some(snapshot("us")));
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, check) =
        server.call(&admin, Method::POST, "/api/v1/copies/check", Some(json!({"from": "eu", "to": "us"})));
    assert_eq!(status, StatusCode::OK, "{check}");
    assert!(check.to_string().contains("po-chen"), "the check names the uncertain customer: {check}");

    // Another organization's admin: neither the site nor the pull.
    let (status, _) = server.call(&stranger, Method::POST, "/api/v1/sites/eu/pull", Some(request(&options.token)));
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = server.call(&stranger, Method::GET, &format!("/api/v1/pulls/{pull}"), None);
    assert_eq!(status, StatusCode::NOT_FOUND, "another organization's pull is not found");
    assert!(!body.to_string().contains("acme"), "{body}");
    // Only the hosts the server allows: not another one, not this machine's
    // other services.
    let mut elsewhere = request(&options.token);
    elsewhere["jira"] = json!("https://intranet.example.com");
    let (status, body) = server.call(&admin, Method::POST, "/api/v1/sites/eu/pull", Some(elsewhere));
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.to_string().contains("FERRY_PULL_HOSTS"), "{body}");
    let mut admin_elsewhere = request(&options.token);
    admin_elsewhere["admin_api"] = json!("http://localhost:9");
    let (status, _) = server.call(&admin, Method::POST, "/api/v1/sites/eu/pull", Some(admin_elsewhere));
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Bad input is refused before anything starts.
    let mut plain = request(&options.token);
    plain["jira"] = json!("http://acme.atlassian.net");
    let (status, body) = server.call(&admin, Method::POST, "/api/v1/sites/eu/pull", Some(plain));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("plain http"), "{body}");
    let (status, _) = server.call(&admin, Method::POST, "/api/v1/sites/nowhere/pull", Some(request(&options.token)));
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.call(&admin, Method::GET, "/api/v1/pulls/999", None);
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The console: the form, then the pull's page until done.
    let console = browser_like();
    let status = form_post(&server, &console, "/sign-in", &format!("email=root%40acme.test&password={root}"));
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, html) = server.raw(&console, Method::GET, "/console/copies/check?from=eu&to=us", None, &[]);
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"uncertain\"") && html.contains("po-chen"), "{html}");
    let (status, _, html) = server.raw(&console, Method::GET, "/console/sites/eu/pull", None, &[]);
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Pull from Jira Cloud") && html.contains("type=\"password\""), "{html}");
    let form = format!(
        "jira={}&email={}&api_token={}&projects=SUP&org_id=&admin_api_key=&admin_api=",
        urlencode(&fake.url()),
        urlencode(&options.email),
        urlencode(&options.token)
    );
    let started = server.runtime.block_on(async {
        console
            .post(format!("{}/console/sites/eu/pull", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap()
    });
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    let location = started.headers()[reqwest::header::LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with("/console/pulls/"), "{location}");
    let console_pull: u64 = location.trim_start_matches("/console/pulls/").parse().unwrap();
    let done = wait(console_pull);
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["verification_checked"], false, "no admin key in that form");
    let (status, _, html) = server.raw(&console, Method::GET, &location, None, &[]);
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"pull-state\">Done") && html.contains("accounts.csv"), "{html}");
    assert!(!html.contains(&options.token), "the page never shows the token");
    let (status, _, partial) =
        server.raw(&console, Method::GET, &format!("{location}/progress"), None, &[("hx-request", "true")]);
    assert_eq!(status, StatusCode::OK);
    assert!(partial.starts_with("<div id=\"pull-progress\""), "{partial}");
    let (status, _, _) = server.raw(&browser_like(), Method::GET, &location, None, &[]);
    assert_eq!(status, StatusCode::SEE_OTHER, "anonymous: to the sign-in page");

    // One pull per site at a time: a site that does not answer keeps its
    // pull retrying, and a second pull into that site is refused.
    let (status, body) = server.call(&admin, Method::POST, "/api/v1/sites/eu/pull", Some(unreachable_pull()));
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = server.call(&admin, Method::POST, "/api/v1/sites/eu/pull", Some(request(&options.token)));
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.to_string().contains("still running"), "{body}");
}
