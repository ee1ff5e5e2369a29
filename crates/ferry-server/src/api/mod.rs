//! The REST API: everything the CLI does, JSON in and out. Each handler is
//! registered through [`OpenApiRouter`], so a route cannot exist without
//! its entry in `/api/v1/openapi.json`.

pub(crate) mod audit;
pub(crate) mod copies;
pub(crate) mod remedy;
pub(crate) mod session;
pub(crate) mod sites;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "ferry", description = "Copy service-desk customers between sites: plans, runs, reports, remediation."),
    modifiers(&Security),
    components(schemas(sites::AccountTypeParam)),
    security(("token" = []), ("session" = [])),
    tags(
        (name = "session", description = "Sign-in and API tokens"),
        (name = "sites", description = "Organizations, sites, snapshots, customers"),
        (name = "copies", description = "Copy plans: check, run, resume, status, rollback, reports"),
        (name = "remediation", description = "Imported groups, upgrades"),
        (name = "audit", description = "The audit log"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("an API token")).build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::auth::SESSION_COOKIE))),
        );
    }
}

/// Documents, on every operation, the error answers the server's shared
/// machinery can give whatever the handler says (authentication, path and
/// query parsing, JSON bodies), and gives every response a description:
/// one place, so the document cannot miss a status a route can answer.
/// Run on the finished document (operations are added route by route).
pub fn document_errors(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |status: &str, description: &str| {
        let mut response = ResponseBuilder::new().description(description).content(
            "application/json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
        );
        if status == "429" {
            let seconds = utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::Integer)
                .minimum(Some(0))
                .build();
            response = response.header(
                "Retry-After",
                utoipa::openapi::HeaderBuilder::new()
                    .schema(Some(seconds))
                    .description(Some("seconds to wait before trying again"))
                    .build(),
            );
        }
        RefOr::T(response.build())
    };
    for (path, item) in openapi.paths.paths.iter_mut() {
        let changes = item.post.is_some() || item.delete.is_some();
        let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            let open = path == "/api/v1/session";
            let has_body = operation.request_body.is_some();
            let has_query = operation.parameters.iter().flatten().any(|p| match p {
                RefOr::T(p) => p.parameter_in == ParameterIn::Query,
                RefOr::Ref(_) => false,
            });
            let mut wanted: Vec<(&str, &str)> = Vec::new();
            wanted.push(("401", "not signed in, or an unknown or revoked API token"));
            if !open {
                wanted.push((
                    "403",
                    "the caller may not do this here (another organization's site, a customer, a cross-site request)",
                ));
            } else {
                wanted.push(("403", "a cross-site request (CSRF protection)"));
            }
            if path.contains('{') || has_query {
                wanted
                    .push(("404", "no such site, run, group, file or customer (a path or query parameter names none)"));
            }
            if !open && (has_body || (changes && path.contains('{'))) {
                wanted.push(("409", "refused by the state of things: the error's code says which"));
            }
            if has_body {
                wanted.push(("413", "the body is larger than this route takes"));
                wanted.push(("415", "the body is not sent as application/json"));
            }
            if has_body || has_query || path.contains('{') {
                wanted.push(("422", "the body, query or path is not what this route takes; the message says which"));
            }
            if open && has_body {
                wanted.push(("429", "too many sign-in attempts; wait as Retry-After says"));
            }
            for (status, description) in wanted {
                operation.responses.responses.entry(status.to_owned()).or_insert_with(|| error(status, description));
            }
            for (status, response) in operation.responses.responses.iter_mut() {
                if let RefOr::T(response) = response
                    && response.description.is_empty()
                {
                    response.description = describe(status).to_owned();
                }
            }
        }
    }
}

/// A response's description by its status, where the route gives none.
fn describe(status: &str) -> &'static str {
    match status {
        "200" => "done; the body is the result",
        "201" => "created",
        "202" => "accepted: the work goes on in the background",
        "204" => "done; no body",
        "401" => "not signed in, or an unknown or revoked API token",
        "403" => "the caller may not do this here",
        "404" => "no such resource",
        "409" => {
            "refused by the state of things: the error's code says which (conflict, blocking_conflicts, rollback_refused, run_claimed, run_done, not_resumable, run_unfinished)"
        }
        "413" => "the body is larger than the server takes",
        "422" => "the input is not valid; the message names what and where",
        "429" => "too many attempts",
        _ => "see the error's code and message",
    }
}

/// What JSON Schema can say of the server's rules that the Rust types do
/// not carry: names and keys by their patterns, the values of the enums,
/// lengths, the snapshot's file names, that an upgrade names emails or all
/// duplicates. With these, a request the document allows is one the server
/// takes (or answers 404/409 for, by the state of things), and one it
/// forbids is refused: schemathesis checks both in CI.
pub fn refine(doc: &mut serde_json::Value) {
    use serde_json::json;
    let slug = json!({"pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", "maxLength": 63});
    let key = json!({"type": "string", "pattern": "^[A-Z][A-Z0-9]{1,9}$"});
    let files: Vec<&str> = ferry_snapshot::FILES.iter().map(|(name, _)| *name).collect();
    let merges = [
        ("/components/schemas/PlanRequest/properties/from", slug.clone()),
        ("/components/schemas/PlanRequest/properties/to", slug.clone()),
        ("/components/schemas/PlanRequest/properties/customers", json!({"enum": ["related", "all", null]})),
        ("/components/schemas/PlanRequest/properties/organizations", json!({"enum": ["block", "merge", null]})),
        ("/components/schemas/PlanRequest/properties/projects/items", key.clone()),
        (
            "/components/schemas/PlanRequest/properties/renames",
            json!({"propertyNames": key, "additionalProperties": key}),
        ),
        ("/components/schemas/NewOrg/properties/org", slug.clone()),
        ("/components/schemas/NewSite/properties/site", slug),
        ("/components/schemas/NewToken/properties/name", json!({"minLength": 1, "maxLength": 100})),
        ("/components/schemas/SignIn/properties/email", json!({"minLength": 1})),
        ("/components/schemas/UpgradeRequest/properties/emails/items", json!({"minLength": 1})),
        (
            "/components/schemas/UpgradeRequest",
            json!({"oneOf": [
                {"required": ["emails"], "properties": {"emails": {"minItems": 1}}},
                {"required": ["all_duplicates"], "properties": {"all_duplicates": {"const": true}}}
            ]}),
        ),
        ("/components/schemas/Snapshot/properties/files", json!({"propertyNames": {"enum": files}})),
    ];
    for (pointer, extra) in merges {
        merge(doc.pointer_mut(pointer), extra);
    }
    let parameters = [
        ("/api/v1/audit", "get", "since", json!({"format": "date-time"})),
        ("/api/v1/sites/{site}/access", "get", "email", json!({"minLength": 1})),
        ("/api/v1/sites/{site}/groups/{group}/{decision}", "post", "decision", json!({"enum": ["approve", "decline"]})),
        ("/api/v1/copies/{run}/report/{file}", "get", "file", json!({"enum": crate::api::copies::REPORT_FILES})),
    ];
    for (path, method, name, extra) in parameters {
        let pointer = format!("/paths/{}/{method}/parameters", path.replace('/', "~1"));
        if let Some(serde_json::Value::Array(list)) = doc.pointer_mut(&pointer) {
            for parameter in list.iter_mut().filter(|p| p["name"] == name) {
                merge(parameter.get_mut("schema"), extra.clone());
            }
        }
    }
}

/// Adds the members of `extra` to the object at `target`, if there is one.
fn merge(target: Option<&mut serde_json::Value>, extra: serde_json::Value) {
    if let (Some(serde_json::Value::Object(object)), serde_json::Value::Object(extra)) = (target, extra) {
        object.extend(extra);
    }
}

/// The API's routes. Snapshot imports take bodies up to
/// `max_import_bytes`; every other route axum's default (2 MB).
pub fn router(max_import_bytes: usize) -> OpenApiRouter<AppState> {
    let import = OpenApiRouter::new()
        .routes(routes!(sites::import_site))
        .layer(axum::extract::DefaultBodyLimit::max(max_import_bytes));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(session::sign_in, session::sign_out))
        .routes(routes!(session::me))
        .routes(routes!(session::list_tokens, session::create_token))
        .routes(routes!(session::revoke_token))
        .routes(routes!(sites::list_orgs, sites::create_org))
        .routes(routes!(sites::list_sites))
        .routes(routes!(sites::create_site))
        .merge(import)
        .routes(routes!(sites::export_site))
        .routes(routes!(sites::pull_site))
        .routes(routes!(sites::pull_status))
        .routes(routes!(sites::customers))
        .routes(routes!(sites::access))
        .routes(routes!(copies::check))
        .routes(routes!(copies::list_runs, copies::start_run))
        .routes(routes!(copies::run_status))
        .routes(routes!(copies::resume))
        .routes(routes!(copies::rollback))
        .routes(routes!(copies::report))
        .routes(routes!(copies::report_file))
        .routes(routes!(remedy::groups))
        .routes(routes!(remedy::decide))
        .routes(routes!(remedy::upgrade))
        .routes(routes!(audit::audit))
}
