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

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(session::sign_in, session::sign_out))
        .routes(routes!(session::me))
        .routes(routes!(session::list_tokens, session::create_token))
        .routes(routes!(session::revoke_token))
        .routes(routes!(sites::list_orgs, sites::create_org))
        .routes(routes!(sites::list_sites))
        .routes(routes!(sites::create_site))
        .routes(routes!(sites::import_site))
        .routes(routes!(sites::export_site))
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
