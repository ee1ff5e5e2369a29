//! The HTTP client of a pull. Every request goes through [`Client::send`]:
//! a permit of the in-flight bound, a time-out, and on `429`/`503` or a
//! network failure a bounded number of retries, after `Retry-After` when the
//! site gives one, else after an exponential backoff with jitter. The
//! paging helpers follow each API's own style and never take a short page
//! for the last one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::{Limits, PullConfig, PullError, Secret};

/// Which of the two services a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The Jira site, with basic auth.
    Site,
    /// The organization admin API, with the bearer key.
    Admin,
}

/// Counts of what the client did, for the pull's report and measurements.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
}

/// A cheap handle (clone freely) on one pull's HTTP client.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    site: Url,
    email: String,
    token: Secret,
    admin: Option<(Url, Secret)>,
    limits: Limits,
    permits: Semaphore,
    counters: Counters,
}

/// How a list names its offset, its page size and its last page.
#[derive(Debug, Clone, Copy)]
struct OffsetPaging {
    start: &'static str,
    limit: &'static str,
    last: &'static str,
}

impl OffsetPaging {
    const SERVICE_DESK: OffsetPaging = OffsetPaging { start: "start", limit: "limit", last: "isLastPage" };
    const PLATFORM: OffsetPaging = OffsetPaging { start: "startAt", limit: "maxResults", last: "isLast" };
}

/// An answer: status and parsed body (`Null` when empty or not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

/// A base URL ferry may send credentials to: `https`, or `http` only to
/// this machine (a test double); no user, password, query or fragment.
/// Errors name the scheme and host only: what was typed may hold a secret.
pub fn base_url(raw: &str, what: &str) -> Result<Url, PullError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|e| {
        PullError::Config(format!("{what} is not a URL ({e}); it must look like https://your-site.atlassian.net"))
    })?;
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err(PullError::Config(format!(
            "{what} must be only scheme, host and path (no user, password, query or fragment): credentials go in the environment"
        )));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(PullError::Config(format!("{what} has no host")));
    };
    let shown = format!("{}://{host}", url.scheme());
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => {
            return Err(PullError::Config(format!(
                "{what} {shown} is plain http: credentials go only over https (http is allowed to this machine only)"
            )));
        }
        _ => return Err(PullError::Config(format!("{what} {shown}: the scheme is not https"))),
    }
    Ok(url)
}

/// `localhost`, `127.0.0.1` or `[::1]`.
pub fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1")
}

impl Client {
    pub fn new(config: &PullConfig) -> Result<Client, PullError> {
        let site = base_url(&config.site_url, "--jira")?;
        let admin = match &config.admin {
            Some(admin) => Some((base_url(&admin.url, "--admin-api")?, admin.key.clone())),
            None => None,
        };
        if config.email.trim().is_empty() {
            return Err(PullError::Config("JIRA_EMAIL is empty".to_owned()));
        }
        let http = reqwest::Client::builder()
            .timeout(config.limits.timeout)
            .connect_timeout(config.limits.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PullError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                site,
                email: config.email.clone(),
                token: config.token.clone(),
                admin,
                limits: config.limits,
                permits: Semaphore::new(config.limits.in_flight.max(1)),
                counters: Counters::default(),
            }),
        })
    }

    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    pub fn has_admin(&self) -> bool {
        self.inner.admin.is_some()
    }

    /// The site's URL of `path` (for matching role URLs the site hands out).
    pub fn site_path_of(&self, url: &str) -> Option<String> {
        let url = Url::parse(url).ok()?;
        let base = self.inner.site.path().trim_end_matches('/');
        let path = url.path();
        Some(path.strip_prefix(base).unwrap_or(path).to_owned())
    }

    /// Sends one request, retrying `429`, `503` and network failures.
    /// Returns any other status to the caller with its body.
    pub async fn send(
        &self,
        service: Service,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, PullError> {
        let inner = &self.inner;
        let name = method_name(&method);
        let (base, auth) = match service {
            Service::Site => (&inner.site, None),
            Service::Admin => match &inner.admin {
                Some((url, key)) => (url, Some(key)),
                None => return Err(PullError::Config("the organization admin API is not configured".to_owned())),
            },
        };
        let mut url = base.clone();
        let joined = format!("{}{}", base.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        let mut attempt = 0u32;
        loop {
            let mut request = inner.http.request(method.clone(), url.clone()).query(query);
            request = match auth {
                Some(key) => request.bearer_auth(key.expose()),
                None => request.basic_auth(&inner.email, Some(inner.token.expose())),
            };
            request = request.header("Accept", "application/json");
            if service == Service::Site {
                // The customer lists are experimental; the header is harmless elsewhere.
                request = request.header("X-ExperimentalApi", "opt-in");
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let outcome = {
                let _permit = inner.permits.acquire().await.map_err(|_| PullError::Network {
                    method: name,
                    path: path.to_owned(),
                    reason: "the client was shut down".to_owned(),
                })?;
                inner.counters.requests.fetch_add(1, Ordering::Relaxed);
                match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        let retry_after = response
                            .headers()
                            .get("Retry-After")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok());
                        match response.bytes().await {
                            Ok(bytes) => Ok((status, retry_after, bytes)),
                            Err(e) => Err(network_reason(&e)),
                        }
                    }
                    Err(e) => Err(network_reason(&e)),
                }
            };
            let wait = match outcome {
                Ok((status, retry_after, bytes))
                    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE =>
                {
                    if attempt >= inner.limits.retries {
                        return Err(PullError::Status {
                            method: name,
                            path: path.to_owned(),
                            status: status.as_u16(),
                            message: format!("still refused after {attempt} retries"),
                        });
                    }
                    let _ = bytes;
                    match retry_after {
                        Some(seconds) => Duration::from_secs(seconds).min(inner.limits.max_wait),
                        None => backoff(attempt, inner.limits.max_wait),
                    }
                }
                Ok((status, _, bytes)) => {
                    let body = match serde_json::from_slice(&bytes) {
                        Ok(body) => body,
                        // A 200 must be JSON; an error's body is only read for its words.
                        Err(e) if status.is_success() && !bytes.is_empty() => {
                            return Err(unexpected(path, format!("the answer is not JSON ({e})")));
                        }
                        Err(_) => Value::Null,
                    };
                    return Ok(Answer { status, body });
                }
                Err(reason) => {
                    if attempt >= inner.limits.retries {
                        return Err(PullError::Network {
                            method: name,
                            path: path.to_owned(),
                            reason: format!("{reason} (after {attempt} retries)"),
                        });
                    }
                    backoff(attempt, inner.limits.max_wait)
                }
            };
            attempt += 1;
            inner.counters.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(path, attempt, wait_ms = wait.as_millis() as u64, "retrying");
            // `Retry-After: 0` means now: a zero sleep would still wait for
            // the timer's next tick.
            if wait.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// A GET that must answer 200 with JSON of type `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        service: Service,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, PullError> {
        let answer = self.send(service, Method::GET, path, query, None).await?;
        ok_json(path, "GET", answer)
    }

    /// Every item of a `servicedeskapi` list (`start`/`limit`/`isLastPage`).
    pub async fn service_desk_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        on_page: impl FnMut(usize),
    ) -> Result<Vec<T>, PullError> {
        self.offset_pages(path, query, OffsetPaging::SERVICE_DESK, on_page).await
    }

    /// Every item of a platform list paged by `startAt`/`maxResults`/`isLast`.
    pub async fn start_at_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>, PullError> {
        self.offset_pages(path, query, OffsetPaging::PLATFORM, |_| {}).await
    }

    /// Every item of a list paged by offset in `paging`'s words. A short
    /// page is not the last one: only the page's own flag (or, without one,
    /// an empty page) ends the list.
    async fn offset_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        paging: OffsetPaging,
        mut on_page: impl FnMut(usize),
    ) -> Result<Vec<T>, PullError> {
        let mut items = Vec::new();
        let limit = self.inner.limits.page_size;
        loop {
            let mut full: Vec<(&str, String)> = query.to_vec();
            full.push((paging.start, items.len().to_string()));
            full.push((paging.limit, limit.to_string()));
            let page: Value = self.get(Service::Site, path, &full).await?;
            let last = page.get(paging.last).and_then(Value::as_bool);
            check_offset(path, &page, paging.start, items.len())?;
            let values = page_values(path, page)?;
            let count = values.len();
            for value in values {
                items.push(item(path, value)?);
            }
            on_page(items.len());
            if last.unwrap_or(count == 0) {
                return Ok(items);
            }
            if count == 0 {
                return Err(unexpected(path, format!("an empty page that is not the last ({} false)", paging.last)));
            }
        }
    }

    /// Every user of `GET /rest/api/3/users/search`: a bare array per page,
    /// the end being an empty page. A `409` (the search ran past its time
    /// limit) is asked again with half the page.
    pub async fn user_search<T: DeserializeOwned>(&self, mut on_page: impl FnMut(usize)) -> Result<Vec<T>, PullError> {
        const PATH: &str = "/rest/api/3/users/search";
        let mut items = Vec::new();
        let mut limit = self.inner.limits.page_size.max(1);
        loop {
            let query = [("startAt", items.len().to_string()), ("maxResults", limit.to_string())];
            let answer = self.send(Service::Site, Method::GET, PATH, &query, None).await?;
            if answer.status == StatusCode::CONFLICT && limit > 1 {
                limit = (limit / 2).max(1);
                tracing::debug!(limit, "user search timed out on the site; asking a smaller page");
                continue;
            }
            let page: Value = ok_json(PATH, "GET", answer)?;
            let Value::Array(values) = page else {
                return Err(unexpected(PATH, "not a JSON array"));
            };
            if values.is_empty() {
                return Ok(items);
            }
            for value in values {
                items.push(item(PATH, value)?);
            }
            if items.len() > MAX_USERS {
                return Err(unexpected(PATH, format!("more than {MAX_USERS} users: the search does not end")));
            }
            on_page(items.len());
        }
    }

    /// Every issue of a JQL search (`POST /rest/api/3/search/jql`), paged
    /// by `nextPageToken`, handed to `on_issue` page by page.
    pub async fn search_issues(
        &self,
        jql: &str,
        fields: &[String],
        mut on_issue: impl FnMut(Value) -> Result<(), PullError>,
    ) -> Result<(), PullError> {
        const PATH: &str = "/rest/api/3/search/jql";
        let mut token: Option<String> = None;
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        loop {
            let mut body = serde_json::json!({
                "jql": jql,
                "fields": fields,
                "maxResults": self.inner.limits.page_size,
            });
            if let (Some(token), Some(map)) = (&token, body.as_object_mut()) {
                map.insert("nextPageToken".to_owned(), Value::String(token.clone()));
            }
            let answer = self.send(Service::Site, Method::POST, PATH, &[], Some(&body)).await?;
            let page: Value = ok_json(PATH, "POST", answer)?;
            let Value::Object(mut page) = page else {
                return Err(unexpected(PATH, "a page that is not a JSON object"));
            };
            let next = page.get("nextPageToken").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_owned);
            let last = page.get("isLast").and_then(Value::as_bool).unwrap_or(next.is_none());
            match page.remove("issues") {
                Some(Value::Array(values)) => values.into_iter().try_for_each(&mut on_issue)?,
                None | Some(Value::Null) => {}
                Some(_) => return Err(unexpected(PATH, "`issues` is not an array")),
            }
            if last {
                return Ok(());
            }
            let Some(next) = next else {
                return Err(unexpected(PATH, "isLast is false but there is no nextPageToken"));
            };
            if !seen.insert(next.clone()) {
                return Err(unexpected(PATH, "a nextPageToken seen before: the search does not end"));
            }
            token = Some(next);
        }
    }
}

/// The most users a user search may list (an Atlassian site has at most
/// tens of thousands of licensed users; this is far beyond), against a
/// server that ignores `startAt`.
const MAX_USERS: usize = 50_000_000;

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "GET",
    }
}

/// A network failure in words, without the URL (reqwest's `Display` adds
/// it, and a query might say more than the path).
fn network_reason(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "request failed"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut deepest = None;
    while let Some(s) = source {
        deepest = Some(s.to_string());
        source = s.source();
    }
    match deepest {
        Some(cause) => format!("{kind} ({cause})"),
        None => kind.to_owned(),
    }
}

/// Exponential backoff with jitter: 0.5 s, 1 s, 2 s… each between half and
/// all of its step, never above `max`.
fn backoff(attempt: u32, max: Duration) -> Duration {
    let step = Duration::from_millis(500u64.saturating_mul(1u64 << attempt.min(16))).min(max);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let jitter = 0.5 + f64::from(nanos % 1000) / 2000.0;
    step.mul_f64(jitter)
}

pub(crate) fn unexpected(path: &str, reason: impl Into<String>) -> PullError {
    PullError::Unexpected { path: path.to_owned(), reason: reason.into() }
}

/// The body of a 200 answer as `T`; any other status is an error naming
/// the path, the status and what the site said.
pub(crate) fn ok_json<T: DeserializeOwned>(path: &str, method: &'static str, answer: Answer) -> Result<T, PullError> {
    if answer.status != StatusCode::OK {
        return Err(PullError::Status {
            method,
            path: path.to_owned(),
            status: answer.status.as_u16(),
            message: error_text(&answer.body),
        });
    }
    serde_json::from_value(answer.body).map_err(|e| unexpected(path, e.to_string()))
}

/// What an Atlassian error body says (`errorMessages`, `errors`, `message`),
/// shortened.
fn error_text(body: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(messages) = body.get("errorMessages").and_then(Value::as_array) {
        parts.extend(messages.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    if let Some(errors) = body.get("errors").and_then(Value::as_object) {
        parts.extend(errors.iter().map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default())));
    }
    for key in ["errorMessage", "message"] {
        if let Some(message) = body.get(key).and_then(Value::as_str) {
            parts.push(message.to_owned());
        }
    }
    let text = parts.join("; ");
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn page_values(path: &str, page: Value) -> Result<Vec<Value>, PullError> {
    let Value::Object(mut page) = page else {
        return Err(unexpected(path, "a page that is not a JSON object"));
    };
    match page.remove("values") {
        Some(Value::Array(values)) => Ok(values),
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(_) => Err(unexpected(path, "`values` is not an array")),
    }
}

/// A page that says where it starts must start where it was asked to: a
/// server that ignores the offset would otherwise be paged for ever.
fn check_offset(path: &str, page: &Value, field: &str, asked: usize) -> Result<(), PullError> {
    match page.get(field).and_then(Value::as_u64) {
        Some(start) if start != asked as u64 => {
            Err(unexpected(path, format!("asked for items from {asked}, the page starts at {start}")))
        }
        _ => Ok(()),
    }
}

fn item<T: DeserializeOwned>(path: &str, value: Value) -> Result<T, PullError> {
    serde_json::from_value(value).map_err(|e| unexpected(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_bounded() {
        let max = Duration::from_secs(8);
        for attempt in 0..20 {
            let wait = backoff(attempt, max);
            let step = Duration::from_millis(500u64 << attempt.min(16)).min(max);
            assert!(wait >= step / 2 && wait <= step, "attempt {attempt}: {wait:?} outside [{:?}, {step:?}]", step / 2);
        }
        assert!(backoff(30, max) <= max);
    }

    #[test]
    fn credentials_go_only_over_https_or_to_this_machine() {
        assert!(base_url("https://acme.atlassian.net/", "--jira").is_ok());
        assert!(base_url("http://127.0.0.1:8080", "--jira").is_ok());
        let refused = base_url("http://acme.atlassian.net", "--jira").map(|_| ()).unwrap_err().to_string();
        assert!(refused.contains("plain http"), "{refused}");
        assert!(base_url("ftp://acme.atlassian.net", "--jira").is_err());
        assert!(base_url("https://me:pw@acme.atlassian.net", "--jira").is_err());
        assert!(base_url("not a url", "--jira").is_err());
    }

    #[test]
    fn error_text_reads_atlassian_bodies_and_is_short() {
        let body = serde_json::json!({"errorMessages": ["Nope"], "errors": {"jql": "bad"}});
        assert_eq!(error_text(&body), "Nope; jql: bad");
        let long = serde_json::json!({"message": "x".repeat(500)});
        assert!(error_text(&long).chars().count() <= 201);
    }
}
