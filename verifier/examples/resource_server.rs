//! An example resource server that accepts library-api access tokens.
//!
//! ```text
//! ISSUER_URL=http://127.0.0.1:8080 AUDIENCE=library-api \
//!     cargo run --release -p library-api-verifier --example resource_server
//! ```
//!
//! - `GET /whoami` → 200 `{"sub","name","groups","scope"}` for a valid token; 401 otherwise.
//! - `GET /admin-only` → the same for a token of group `admin`; 403 for any other valid token.
//!
//! Settings (environment): `ISSUER_URL`, `AUDIENCE` (default `library-api`), `BIND_ADDR`
//! (default `127.0.0.1:8081`; port 0 picks a free port, logged as `listening on ADDR`), and to
//! follow revocations `SSF_CLIENT_ID` and `SSF_CLIENT_SECRET` (a confidential client with scope
//! `ssf`, one per replica), optionally with `DENY_LIST_FILE` to keep them across restarts.

use actix_web::{App, HttpResponse, HttpServer, web};
use library_api_verifier::{AuthError, Authenticated, SetupError, Verifier};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

/// The example's settings, from the environment.
pub struct Settings {
    pub issuer_url: String,
    pub audience: String,
    pub bind_addr: SocketAddr,
    /// `SSF_CLIENT_ID` and `SSF_CLIENT_SECRET`, when revocations are followed.
    pub ssf_client: Option<(String, String)>,
    pub deny_list_file: Option<PathBuf>,
}

impl Settings {
    /// Reads the settings; a missing or bad one is named in the error.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let issuer_url = var("ISSUER_URL").ok_or("ISSUER_URL is required (the issuer's URL, as in its tokens' iss)")?;
        let bind_addr = var("BIND_ADDR").unwrap_or_else(|| "127.0.0.1:8081".into());
        let bind_addr = bind_addr.parse().map_err(|error| format!("BIND_ADDR {bind_addr:?}: {error}"))?;
        let ssf_client = match (var("SSF_CLIENT_ID"), var("SSF_CLIENT_SECRET")) {
            (Some(id), Some(secret)) => Some((id, secret)),
            (None, None) => None,
            _ => return Err("SSF_CLIENT_ID and SSF_CLIENT_SECRET go together".into()),
        };
        Ok(Self {
            issuer_url,
            audience: var("AUDIENCE").unwrap_or_else(|| "library-api".into()),
            bind_addr,
            ssf_client,
            deny_list_file: var("DENY_LIST_FILE").map(PathBuf::from),
        })
    }

    /// The verifier these settings describe.
    pub async fn verifier(&self) -> Result<Verifier, SetupError> {
        let mut builder = Verifier::builder(&self.issuer_url, &self.audience);
        if let Some((client_id, client_secret)) = &self.ssf_client {
            builder = builder.follow_revocations(client_id, client_secret);
        }
        if let Some(path) = &self.deny_list_file {
            builder = builder.deny_list_file(path);
        }
        builder.build().await
    }
}

/// `GET /whoami`: who the token speaks for.
async fn whoami(caller: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "sub": caller.sub,
        "name": caller.name,
        "groups": caller.groups,
        "scope": caller.scope,
    }))
}

/// `GET /admin-only`: the same, for administrators only.
async fn admin_only(caller: Authenticated) -> Result<HttpResponse, AuthError> {
    caller.require_group("admin")?;
    Ok(whoami(caller).await)
}

/// The server on `listener`, verifying with `verifier`.
pub fn serve(verifier: Verifier, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
    let verifier = web::Data::new(verifier);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(verifier.clone())
            .route("/whoami", web::get().to(whoami))
            .route("/admin-only", web::get().to(admin_only))
    })
    .listen(listener)?
    .run();
    Ok(server)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::init_from_env(env_logger::Env::default().default_filter_or("info"));
    let settings = Settings::from_env().map_err(std::io::Error::other)?;
    let verifier = settings.verifier().await.map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(settings.bind_addr)?;
    log::info!("listening on {}", listener.local_addr()?);
    serve(verifier, listener)?.await
}
