//! The seed's story in a real headless Chromium (Debian's `chromium`,
//! driven through `chromedriver`): sign in, plan, check, run, View details,
//! download RequiresAttention.csv, the review banner, Review now, Approve,
//! the help center as the affected customer; then upgrade the duplicate and
//! see the old request appear. A failing step saves a screenshot.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::{Backend, Server, start, story_sites};

/// A chromedriver on a free port, stopped on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver; scripts/services.sh installs it)");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver { child, port }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({"binary": "/usr/bin/chromium", "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]}),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

type Step<T> = Result<T, String>;

fn fail<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The text of `css` once it satisfies `ready` (pages change under the
/// test: a form posts, htmx swaps a fragment).
async fn text_when(c: &Client, css: &str, ready: impl Fn(&str) -> bool) -> Step<String> {
    let started = Instant::now();
    let mut last = String::from("(never found)");
    while started.elapsed() < Duration::from_secs(15) {
        if let Ok(found) = c.find(Locator::Css(css)).await
            && let Ok(text) = found.text().await
        {
            if ready(&text) {
                return Ok(text);
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{css} never became ready; last seen: {last}"))
}

async fn text(c: &Client, css: &str) -> Step<String> {
    text_when(c, css, |_| true).await
}

async fn click(c: &Client, css: &str) -> Step<()> {
    let found = c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await.map_err(fail(css))?;
    found.click().await.map_err(fail(css))
}

async fn fill(c: &Client, css: &str, value: &str) -> Step<()> {
    let found = c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await.map_err(fail(css))?;
    found.clear().await.map_err(fail(css))?;
    found.send_keys(value).await.map_err(fail(css))
}

/// Signs in on the form at `url`, then waits for `landed` (an element of
/// the page signing in leads to).
async fn sign_in(c: &Client, url: &str, email: &str, password: &str, landed: &str) -> Step<()> {
    c.goto(url).await.map_err(fail(url))?;
    fill(c, "#email", email).await?;
    fill(c, "#password", password).await?;
    click(c, "#sign-in").await?;
    text(c, landed).await.map(|_| ())
}

/// The body of a same-origin link the page offers, fetched by the page.
async fn download(c: &Client, css: &str) -> Step<String> {
    let link = c.find(Locator::Css(css)).await.map_err(fail(css))?;
    let href = link.attr("href").await.map_err(fail(css))?.ok_or("no href")?;
    let script = "const done = arguments[arguments.length - 1]; fetch(arguments[0]).then(r => r.text()).then(done);";
    let body = c.execute_async(script, vec![Value::String(href)]).await.map_err(fail("fetch"))?;
    body.as_str().map(str::to_owned).ok_or_else(|| "the download is not text".to_owned())
}

async fn my_requests(c: &Client) -> Step<Vec<String>> {
    let mut keys = Vec::new();
    for link in c.find_all(Locator::Css("#my-requests a")).await.map_err(fail("requests"))? {
        keys.push(link.text().await.map_err(fail("request"))?);
    }
    Ok(keys)
}

async fn story(server: &Server, c: &Client, root: &str, jira: &str) -> Step<()> {
    let base = &server.base;
    const CONSOLE: &str = "header a[href='/console/users']";
    const HELP: &str = "#my-requests";
    sign_in(c, &format!("{base}/sign-in"), "root@acme.test", root, CONSOLE).await?;
    // A copy plan: check, then run.
    c.goto(&format!("{base}/console/copies")).await.map_err(fail("copies"))?;
    c.find(Locator::Css("#from"))
        .await
        .map_err(fail("from"))?
        .select_by_value("eu")
        .await
        .map_err(fail("select eu"))?;
    c.find(Locator::Css("#to")).await.map_err(fail("to"))?.select_by_value("us").await.map_err(fail("select us"))?;
    click(c, "#check").await?;
    // The plan is saved, to come back to.
    text(c, "#saved-plan").await?;
    let predicted = text(c, "#attention").await?;
    if !predicted.contains("Found duplicate accounts on destination") {
        return Err(format!("the check predicts no duplicate: {predicted}"));
    }
    click(c, "#run").await?;
    // Live progress; the review banner appears once the run is done, without
    // a reload; the check is a page Back returns to.
    let banner = text_when(c, "#review-banner", |b| b.contains("needs review")).await?;
    if !banner.contains("1 imported group needs review") {
        return Err(format!("banner on the run page: {banner}"));
    }
    c.back().await.map_err(fail("back"))?;
    text_when(c, "h1", |h| h.starts_with("Check: eu → us")).await?;
    c.forward().await.map_err(fail("forward"))?;
    c.goto(&format!("{base}/console/copies")).await.map_err(fail("copies"))?;
    let plans = text(c, "#plans").await?;
    if !(plans.contains("eu") && plans.contains("us") && plans.contains("Check again")) {
        return Err(format!("the saved plan is not listed: {plans}"));
    }
    c.back().await.map_err(fail("back"))?;
    click(c, "#view-details").await?;
    let rows = text(c, "#attention").await?;
    if !(rows.contains("Chen@Acme.test") && rows.contains("fay@acme.test") && rows.contains("open")) {
        return Err(format!("View details lacks the story's rows: {rows}"));
    }
    let csv = download(c, "a[href$='RequiresAttention.csv']").await?;
    let expected =
        std::fs::read_to_string(ferry_testkit::story_dir().join("RequiresAttention.csv")).map_err(fail("expected"))?;
    if csv != expected {
        return Err(format!("RequiresAttention.csv differs:\n{csv}"));
    }
    // The banner, Review now, Review, Approve.
    let banner = text(c, "#review-banner").await?;
    if !banner.contains("1 imported group needs review") {
        return Err(format!("banner: {banner}"));
    }
    // One group waits: Review now opens it. Approve asks first.
    click(c, "#review-banner a").await?;
    let members = text(c, "#members").await?;
    if !(members.contains("Chen") && members.contains("chen@acme.test") && members.contains("Atlassian account")) {
        return Err(format!("the members list lacks name, email or type: {members}"));
    }
    click(c, "#approve").await?;
    text_when(c, "h1", |h| h.starts_with("Approve group customers-from-eu?")).await?;
    let asked = text(c, "main").await?;
    if !asked.contains("gain access to 1 request") {
        return Err(format!("the confirmation does not say what changes: {asked}"));
    }
    click(c, "#confirm-decision").await?;
    text_when(c, "#group-state", |state| state == "active").await?;
    // The page after the form reloads without sending it again.
    c.refresh().await.map_err(fail("refresh"))?;
    text_when(c, "#group-state", |state| state == "active").await?;
    // View details now shows chen's row resolved, fay's still open.
    c.goto(&format!("{base}/console/copies/1/details")).await.map_err(fail("details"))?;
    let state_of = |rows: &str, email: &str| -> Option<String> {
        rows.lines().find(|l| l.contains(email)).and_then(|l| l.split_whitespace().last().map(str::to_owned))
    };
    text_when(c, "#attention", |rows| {
        state_of(rows, "Chen@Acme.test").as_deref() == Some("resolved")
            && state_of(rows, "fay@acme.test").as_deref() == Some("open")
    })
    .await?;
    // The affected customer in the help center.
    let chen = set_password(server, "chen@acme.test", None).await;
    sign_in(c, &format!("{base}/help/us/sign-in"), "chen@acme.test", &chen, HELP).await?;
    let keys = my_requests(c).await?;
    if keys != ["SUP-3"] {
        return Err(format!("chen sees {keys:?}, not SUP-3"));
    }
    click(c, "a[href$='/requests/SUP-3']").await?;
    text_when(c, "h1", |h| h.starts_with("SUP-3")).await?;
    // An internationalized email (a UTF-8 local part, NFD-spelled in the
    // snapshot) signs in through the same form, typed as people type it.
    let jose = set_password(server, INTERNATIONAL, None).await;
    sign_in(c, &format!("{base}/help/us/sign-in"), INTERNATIONAL, &jose, HELP).await?;
    let keys = my_requests(c).await?;
    if keys != ["HR-2"] {
        return Err(format!("{INTERNATIONAL} sees {keys:?}, not HR-2"));
    }
    // The duplicate: before the upgrade fay sees SUP-6 only.
    let fay = set_password(server, "fay@acme.test", Some(ferry_core::model::AccountType::Atlassian)).await;
    sign_in(c, &format!("{base}/help/us/sign-in"), "fay@acme.test", &fay, HELP).await?;
    let keys = my_requests(c).await?;
    if keys != ["SUP-6"] {
        return Err(format!("before the upgrade fay sees {keys:?}"));
    }
    sign_in(c, &format!("{base}/sign-in"), "root@acme.test", root, CONSOLE).await?;
    c.goto(&format!("{base}/console/sites/us/customers?duplicates=true")).await.map_err(fail("customers"))?;
    c.goto(&format!("{base}/console/sites/us/customers?q=nobody-here")).await.map_err(fail("customers"))?;
    text(c, "#no-matches").await?;
    // Search as an admin types it: any word of the name or email, accents
    // aside; the list follows the search box.
    for typed in ["jose", "MULLER", "müller@acme"] {
        fill(c, "#q", typed).await?;
        text_when(c, "#customers", |t| t.contains("José Müller") && !t.contains("fay@acme.test")).await?;
    }
    fill(c, "#q", "acme.test").await?;
    text_when(c, "#shown", |t| t.starts_with("Showing ") && t.ends_with(" customers")).await?;
    // Paging: 120 customers, fifty a page, forwards and back, with the total.
    c.goto(&format!("{base}/console/sites/many/customers")).await.map_err(fail("customers"))?;
    text_when(c, "#shown", |t| t == "Showing 50 of 120 customers").await?;
    if c.find(Locator::Css("#previous-page")).await.is_ok() {
        return Err("the first page offers a previous page".into());
    }
    click(c, "#next-page").await?;
    click(c, "#next-page").await?;
    text_when(c, "#shown", |t| t == "Showing 20 of 120 customers").await?;
    click(c, "#previous-page").await?;
    text_when(c, "#customers", |t| t.contains("many050@acme.test") && !t.contains("many049@acme.test")).await?;
    c.goto(&format!("{base}/console/sites/us/customers?duplicates=true")).await.map_err(fail("customers"))?;
    click(c, "input[value='fay@acme.test']").await?;
    click(c, "#upgrade-selected").await?;
    click(c, "#confirm-upgrade").await?;
    text_when(c, "h1", |h| h == "Upgrade done").await?;
    let counts = text(c, "#upgrade-counts").await?;
    if !counts.contains("Upgraded to an Atlassian account 1") {
        return Err(format!("the upgrade's counts: {counts}"));
    }
    // The audit log: a table with filters; organization-level entries too.
    c.goto(&format!("{base}/console/audit?action=group.approve")).await.map_err(fail("audit"))?;
    let rows = text(c, "#audit").await?;
    if !rows.contains("group.approve") || rows.contains("customer.upgrade") {
        return Err(format!("the audit filter by action: {rows}"));
    }
    click(c, "#audit details summary").await?;
    let entry = text(c, "#audit details").await?;
    if !entry.contains("\"state\": \"active\"") {
        return Err(format!("the entry's after, on demand: {entry}"));
    }
    c.goto(&format!("{base}/console/audit?actor=nobody-at-all")).await.map_err(fail("audit"))?;
    text(c, "#no-entries").await?;
    // A token is shown once; reloading its page makes no second one.
    c.goto(&format!("{base}/console/tokens")).await.map_err(fail("tokens"))?;
    fill(c, "#name", "browser").await?;
    click(c, "#create-token").await?;
    let token = text(c, "#new-token").await?;
    if !token.starts_with("ferry_") {
        return Err(format!("no token shown: {token}"));
    }
    c.refresh().await.map_err(fail("refresh"))?;
    text(c, "#token-gone").await?;
    let rows = c.find_all(Locator::Css("td form[action$='/revoke']")).await.map_err(fail("tokens"))?;
    if rows.len() != 1 {
        return Err(format!("{} live tokens after a reload, not 1", rows.len()));
    }
    c.goto(&format!("{base}/console/copies/1/details")).await.map_err(fail("details"))?;
    text_when(c, "#attention", |rows| state_of(rows, "fay@acme.test").as_deref() == Some("resolved")).await?;
    sign_in(c, &format!("{base}/help/us/sign-in"), "fay@acme.test", &fay, HELP).await?;
    let keys = my_requests(c).await?;
    if keys != ["HR-1", "SUP-6"] {
        return Err(format!("after the upgrade fay sees {keys:?}"));
    }
    pull_from_jira_cloud(server, c, root, jira).await
}

/// The console's Pull from Jira Cloud: from the sites list to the form, the
/// pull's page follows it (htmx) until it is done, with its rows.
async fn pull_from_jira_cloud(server: &Server, c: &Client, root: &str, jira: &str) -> Step<()> {
    let base = &server.base;
    sign_in(c, &format!("{base}/sign-in"), "root@acme.test", root, "header a[href='/console/users']").await?;
    c.goto(&format!("{base}/console")).await.map_err(fail("console"))?;
    click(c, "a[href='/console/sites/pulled/pull']").await?;
    fill(c, "#jira", jira).await?;
    fill(c, "#email", "admin@example.test").await?;
    fill(c, "#api_token", "fake-token").await?;
    click(c, "#start-pull").await?;
    text_when(c, "#pull-state", |state| state == "Done").await?;
    let rows = text(c, "#pull-rows").await?;
    if !rows.contains("accounts.csv") {
        return Err(format!("the pull's rows: {rows}"));
    }
    let page = c.source().await.map_err(fail("page source"))?;
    if page.contains("fake-token") {
        return Err("the pull's page shows the API token".to_owned());
    }
    Ok(())
}

/// A help-center password for the customer (on a blocking thread: the
/// store's PostgreSQL client must not run on the runtime's workers).
async fn set_password(server: &Server, email: &str, prefer: Option<ferry_core::model::AccountType>) -> String {
    let (url, email) = (server.db.url.clone(), email.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut store = ferry_store::Store::open(&url).unwrap();
        ferry_ops::admin::set_customer_password(&mut store, "us", &email, prefer).unwrap()
    })
    .await
    .unwrap()
}

/// Where screenshots of failed steps go.
fn screenshot_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots")
}

/// A customer of the destination whose email is not ASCII.
const INTERNATIONAL: &str = "josé.müller@acme.test";

pub fn the_story_in_a_browser(backend: Backend) {
    let (server, root, _) = start(backend);
    let admin = server.sign_in("root@acme.test", &root);
    story_sites(&server, &admin);
    let jose = json!({"files": {
        "accounts.csv": "account_id,account_type,email,display_name,active,email_verified\npo-jose,customer,Jose\u{301}.Mu\u{308}ller@acme.test,José Müller,true,true\n",
        "customers.csv": "project_key,account_id\nHR,po-jose\n",
        "requests.csv": "request_key,project_key,summary,status,created,reporter_id,participant_ids,organization\nHR-2,HR,Zugang,Open,2026-02-02T09:00:00Z,po-jose,,\n",
    }});
    let (status, body) = server.call(&admin, reqwest::Method::POST, "/api/v1/sites/us/import", Some(jose));
    assert!(status.is_success(), "{body}");
    // A site of 120 customers, to page through.
    let (status, body) =
        server.call(&admin, reqwest::Method::POST, "/api/v1/orgs/acme/sites", Some(json!({"site": "many"})));
    assert!(status.is_success(), "{body}");
    let mut accounts = String::from("account_id,account_type,email,display_name,active,email_verified\n");
    for i in 0..120 {
        accounts.push_str(&format!("m{i},customer,many{i:03}@acme.test,Many {i},true,true\n"));
    }
    let many = json!({"files": {"accounts.csv": accounts}});
    let (status, body) = server.call(&admin, reqwest::Method::POST, "/api/v1/sites/many/import", Some(many));
    assert!(status.is_success(), "{body}");
    // A site to pull from a fake Jira Cloud site (SPEC §8) in the console.
    let (status, body) =
        server.call(&admin, reqwest::Method::POST, "/api/v1/orgs/acme/sites", Some(json!({"site": "pulled"})));
    assert!(status.is_success(), "{body}");
    let fake = ferry_testkit::jira::FakeJira::start(&ferry_testkit::story_dir().join("eu"), Default::default());
    let driver = driver();
    let outcome = server.runtime.block_on(async {
        let c = browser(&driver).await;
        let result = story(&server, &c, &root, &fake.url()).await;
        if result.is_err() {
            let dir = screenshot_dir();
            let _ = std::fs::create_dir_all(&dir);
            if let Ok(png) = c.screenshot().await {
                let _ = std::fs::write(dir.join(format!("story-{backend:?}.png")), png);
            }
        }
        let _ = c.close().await;
        result
    });
    if let Err(step) = outcome {
        panic!("browser story failed: {step} (screenshot in {})", screenshot_dir().display());
    }
}
