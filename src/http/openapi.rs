//! The OpenAPI 3.1 document of the whole API (utoipa, generated from the handlers' own
//! annotations), served at `/openapi.json`, and an offline docs page at `/docs` (one HTML file
//! compiled into the binary; nothing from a CDN). A test holds the document against the route
//! table, so neither can drift from the other.

use super::errors::ErrorBody;
use super::{account, admin, auth, authors, clients, oauth, ssf, users, verify, well_known};
use actix_web::HttpResponse;
use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use std::sync::OnceLock;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "library-api",
        description = "Users, RS256 access tokens with a JWKS and a revocation list, and a small authors API."
    ),
    paths(
        auth::register,
        auth::login,
        auth::refresh,
        auth::logout,
        users::me,
        users::list,
        users::update,
        users::delete,
        account::change_password,
        account::my_sessions,
        account::end_my_session,
        account::user_sessions,
        account::end_user_sessions,
        authors::create,
        authors::create_alias,
        authors::list,
        authors::get,
        authors::update,
        authors::delete,
        oauth::token,
        oauth::revoke,
        oauth::introspect,
        verify::verify,
        well_known::jwks,
        well_known::openid_configuration,
        well_known::oauth_authorization_server,
        ssf::configuration,
        ssf::create_stream,
        ssf::read_stream,
        ssf::update_stream,
        ssf::replace_stream,
        ssf::delete_stream,
        ssf::read_status,
        ssf::set_status,
        ssf::verify,
        ssf::poll,
        well_known::healthz,
        well_known::readyz,
        well_known::metrics,
        admin::list_keys,
        admin::rotate,
        admin::delete_key,
        clients::create,
        clients::list,
        clients::update,
        clients::rotate_secret,
        clients::delete,
        document,
        docs_page,
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// The document, serialized once.
fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".into()))
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "get_openapi_document",
    tag = "operations",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = serde_json::Value))
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(300)]))
        .content_type(ContentType::json())
        .body(json())
}

/// `GET /docs`: a self-contained page that renders `/openapi.json`.
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "get_docs_page",
    tag = "operations",
    responses((status = 200, description = "an HTML page rendering this document", body = String, content_type = "text/html"))
)]
pub async fn docs_page() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'",
        ))
        .content_type(ContentType::html())
        .body(include_str!("assets/docs.html"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// `(METHOD, path)` of every documented operation.
    fn documented() -> BTreeSet<(String, String)> {
        let document = serde_json::to_value(ApiDoc::openapi()).expect("serializable");
        let paths = document["paths"].as_object().expect("paths");
        paths
            .iter()
            .flat_map(|(path, operations)| {
                operations
                    .as_object()
                    .expect("operations")
                    .keys()
                    .map(move |method| (method.to_uppercase(), path.clone()))
            })
            .collect()
    }

    #[test]
    fn every_route_is_documented_and_every_documented_operation_is_routed() {
        let documented = documented();
        let routed = super::super::route_table().operations();
        for (method, path) in &routed {
            let is_documented = match method {
                Some(method) => documented.contains(&(method.to_string(), path.to_string())),
                // A route for any method (the sidecar) needs at least one documented method.
                None => documented.iter().any(|(_, documented_path)| documented_path == path),
            };
            assert!(is_documented, "{method:?} {path} is routed but not in the OpenAPI document");
        }
        for (method, path) in &documented {
            let is_routed = routed.iter().any(|(routed_method, routed_path)| {
                routed_path == path && routed_method.as_ref().is_none_or(|routed| routed.as_str() == method)
            });
            assert!(is_routed, "{method} {path} is documented but not routed");
        }
    }

    #[test]
    fn every_operation_has_a_unique_operation_id() {
        let document = serde_json::to_value(ApiDoc::openapi()).expect("serializable");
        let mut ids = BTreeSet::new();
        for (path, operations) in document["paths"].as_object().expect("paths") {
            for (method, operation) in operations.as_object().expect("operations") {
                let id = operation["operationId"].as_str();
                let id = id.unwrap_or_else(|| panic!("{method} {path} has no operationId"));
                assert!(ids.insert(id.to_string()), "operation id {id:?} of {method} {path} is used twice");
            }
        }
    }

    #[test]
    fn parameters_are_where_the_request_carries_them() {
        let document = serde_json::to_value(ApiDoc::openapi()).expect("serializable");
        let place = |path: &str, method: &str, name: &str| {
            let parameters = document["paths"][path][method]["parameters"].as_array().cloned().unwrap_or_default();
            let parameter = parameters.iter().find(|parameter| parameter["name"] == name);
            parameter.map(|parameter| parameter["in"].as_str().unwrap_or_default().to_string())
        };
        for (path, method, name, expected) in [
            ("/authors", "get", "limit", "query"),
            ("/authors", "get", "offset", "query"),
            ("/logout", "post", "all", "query"),
            ("/verify", "get", "group", "query"),
            ("/authors/{id}", "get", "id", "path"),
            ("/users/{public_id}", "patch", "public_id", "path"),
            ("/users/me/sessions/{sid}", "delete", "sid", "path"),
            ("/users/{public_id}/sessions", "get", "public_id", "path"),
            ("/admin/keys/{kid}", "delete", "kid", "path"),
        ] {
            assert_eq!(place(path, method, name).as_deref(), Some(expected), "{method} {path}: parameter `{name}`");
        }
        // Every path parameter names a segment of its path.
        for (path, operations) in document["paths"].as_object().expect("paths") {
            for (method, operation) in operations.as_object().expect("operations") {
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    let name = parameter["name"].as_str().unwrap_or_default();
                    if parameter["in"] == "path" {
                        assert!(path.contains(&format!("{{{name}}}")), "{method} {path}: `{name}` is not in the path");
                    }
                }
            }
        }
    }
}
