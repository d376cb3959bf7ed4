//! The route table (API.md "Endpoints"), kept as data so a test can hold it against the
//! OpenAPI document: every route documented, every documented operation routed.

use super::observe::RouteObserver;
use super::{account, admin, auth, authors, clients, oauth, openapi, ssf, users, verify, well_known};
use crate::metrics::Metrics;
use actix_web::dev::Service as _;
use actix_web::http::Method;
use actix_web::web::{self, ServiceConfig};
use actix_web::{FromRequest, Handler, Responder, Route};
use std::sync::Arc;
use std::time::Instant;

/// The routes, in registration order. Resources answer a method they lack with 405.
#[derive(Default)]
pub struct RouteTable {
    routes: Vec<(&'static str, Option<Method>, Route)>,
}

impl RouteTable {
    fn add<F, Args>(mut self, method: Option<Method>, path: &'static str, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let route = match &method {
            Some(method) => web::method(method.clone()).to(handler),
            None => web::route().to(handler),
        };
        self.routes.push((path, method, route));
        self
    }

    fn get<F, Args>(self, path: &'static str, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Some(Method::GET), path, handler)
    }

    fn post<F, Args>(self, path: &'static str, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Some(Method::POST), path, handler)
    }

    fn put<F, Args>(self, path: &'static str, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Some(Method::PUT), path, handler)
    }

    fn patch<F, Args>(self, path: &'static str, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Some(Method::PATCH), path, handler)
    }

    fn delete<F, Args>(self, path: &'static str, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Some(Method::DELETE), path, handler)
    }

    /// A route answering every method (the `/verify` sidecar).
    fn any<F, Args>(self, path: &'static str, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(None, path, handler)
    }

    /// Every `(method, path)`; `None` for a route that answers any method.
    pub fn operations(&self) -> Vec<(Option<Method>, &'static str)> {
        self.routes.iter().map(|(path, method, _)| (method.clone(), *path)).collect()
    }

    /// Registers the routes, one resource per path, each observed (counted, timed and logged)
    /// by its own [`RouteObserver`].
    pub fn register(self, cfg: &mut ServiceConfig, metrics: &Arc<Metrics>) {
        let mut paths: Vec<(&'static str, Vec<Route>)> = Vec::new();
        for (path, _, route) in self.routes {
            match paths.iter_mut().find(|(known, _)| *known == path) {
                Some((_, routes)) => routes.push(route),
                None => paths.push((path, vec![route])),
            }
        }
        for (path, routes) in paths {
            let observer = Arc::new(RouteObserver::new(metrics.clone(), path));
            let resource = routes.into_iter().fold(web::resource(path), actix_web::Resource::route);
            cfg.service(resource.wrap_fn(move |req, service| {
                let (observer, started) = (observer.clone(), Instant::now());
                let response = service.call(req);
                async move {
                    let mut response = response.await?;
                    observer.finish(&mut response, started);
                    Ok(response)
                }
            }));
        }
    }
}

/// Every route of the service.
pub fn route_table() -> RouteTable {
    RouteTable::default()
        .post("/register", auth::register)
        .post("/login", auth::login)
        .post("/logout", auth::logout)
        .post("/token/refresh", auth::refresh)
        .post("/oauth/token", oauth::token)
        .post("/revoke", oauth::revoke)
        .post("/introspect", oauth::introspect)
        .any("/verify", verify::verify)
        .get("/users/me", users::me)
        // Before `/users/{public_id}/…`, which would otherwise take `me` for a public id.
        .put("/users/me/password", account::change_password)
        .get("/users/me/sessions", account::my_sessions)
        .delete("/users/me/sessions/{sid}", account::end_my_session)
        .get("/users", users::list)
        .patch("/users/{public_id}", users::update)
        .delete("/users/{public_id}", users::delete)
        .get("/users/{public_id}/sessions", account::user_sessions)
        .delete("/users/{public_id}/sessions", account::end_user_sessions)
        .get("/authors", authors::list)
        .post("/authors", authors::create)
        .post("/author", authors::create_alias)
        .get("/authors/{id}", authors::get)
        .put("/authors/{id}", authors::update)
        .delete("/authors/{id}", authors::delete)
        .get("/admin/keys", admin::list_keys)
        .post("/admin/keys/rotate", admin::rotate)
        .delete("/admin/keys/{kid}", admin::delete_key)
        .get("/admin/clients", clients::list)
        .post("/admin/clients", clients::create)
        .patch("/admin/clients/{client_id}", clients::update)
        .delete("/admin/clients/{client_id}", clients::delete)
        .post("/admin/clients/{client_id}/secret", clients::rotate_secret)
        .get("/.well-known/jwks.json", well_known::jwks)
        .get("/.well-known/openid-configuration", well_known::openid_configuration)
        .get("/.well-known/oauth-authorization-server", well_known::oauth_authorization_server)
        .get("/.well-known/ssf-configuration", ssf::configuration)
        .post("/ssf/stream", ssf::create_stream)
        .get("/ssf/stream", ssf::read_stream)
        .patch("/ssf/stream", ssf::update_stream)
        .put("/ssf/stream", ssf::replace_stream)
        .delete("/ssf/stream", ssf::delete_stream)
        .get("/ssf/status", ssf::read_status)
        .post("/ssf/status", ssf::set_status)
        .post("/ssf/verify", ssf::verify)
        .post("/ssf/poll/{stream_id}", ssf::poll)
        .get("/healthz", well_known::healthz)
        .get("/readyz", well_known::readyz)
        .get("/metrics", well_known::metrics)
        .get("/openapi.json", openapi::document)
        .get("/docs", openapi::docs_page)
}
