//! The key cache against a fake issuer that counts its requests: revalidation with
//! `If-None-Match` after `max-age`, a key published later found by one fetch, a storm of unknown
//! `kid`s costing one fetch per cooldown, and cached keys verifying through an outage until
//! `max_stale`, then `KeysUnavailable`.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use library_api_verifier::{TokenRejection, Verifier};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A signing key of the fake issuer.
struct Key {
    kid: String,
    pair: RsaKeyPair,
}

impl Key {
    fn new(kid: &str) -> Self {
        Self { kid: kid.into(), pair: RsaKeyPair::generate(KeySize::Rsa2048).expect("generate") }
    }

    fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
            "n": B64URL.encode(public.modulus().big_endian_without_leading_zero()),
            "e": B64URL.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// An access token of `issuer`, as library-api signs them, naming `kid` (none when empty).
    fn token(&self, issuer: &str, kid: &str) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_secs();
        let mut header = json!({"alg": "RS256", "typ": "at+jwt", "kid": kid});
        if kid.is_empty() {
            header.as_object_mut().expect("object").remove("kid");
        }
        let claims = json!({
            "iss": issuer, "sub": uuid::Uuid::new_v4(), "aud": "library-api", "iat": now, "nbf": now,
            "exp": now + 60, "jti": uuid::Uuid::new_v4(), "client_id": "library-app", "scope": "", "groups": [],
        });
        let input = format!("{}.{}", B64URL.encode(header.to_string()), B64URL.encode(claims.to_string()));
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut signature).expect("sign");
        format!("{input}.{}", B64URL.encode(signature))
    }
}

/// What the fake issuer publishes, and the JWKS requests it has seen.
struct Issuer {
    base: String,
    published: Mutex<Vec<Value>>,
    max_age: u64,
    fetches: AtomicUsize,
    not_modified: AtomicUsize,
    handle: actix_web::dev::ServerHandle,
}

impl Issuer {
    async fn start(published: Vec<Value>, max_age: u64) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(None::<Arc<Issuer>>));
        let shared = Arc::clone(&state);
        let server = HttpServer::new(move || {
            let shared = Arc::clone(&shared);
            App::new().app_data(web::Data::new(shared)).default_service(web::to(answer))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let issuer = Arc::new(Issuer {
            base,
            published: Mutex::new(published),
            max_age,
            fetches: AtomicUsize::new(0),
            not_modified: AtomicUsize::new(0),
            handle: server.handle(),
        });
        *state.lock().expect("state") = Some(Arc::clone(&issuer));
        actix_web::rt::spawn(server);
        issuer
    }

    fn publish(&self, jwk: Value) {
        self.published.lock().expect("keys").push(jwk);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn answer(request: HttpRequest, state: web::Data<Arc<Mutex<Option<Arc<Issuer>>>>>) -> HttpResponse {
    let issuer = state.lock().expect("state").clone().expect("issuer");
    match request.path() {
        "/.well-known/oauth-authorization-server" => {
            HttpResponse::Ok().json(json!({"issuer": issuer.base, "jwks_uri": format!("{}/jwks", issuer.base)}))
        }
        "/jwks" => {
            issuer.fetches.fetch_add(1, Ordering::SeqCst);
            let body = json!({"keys": *issuer.published.lock().expect("keys")}).to_string();
            let etag = format!("\"{}\"", body.len());
            let cache_control = ("Cache-Control", format!("max-age={}", issuer.max_age));
            let if_none_match = request.headers().get("if-none-match").and_then(|value| value.to_str().ok());
            if if_none_match == Some(etag.as_str()) {
                issuer.not_modified.fetch_add(1, Ordering::SeqCst);
                return HttpResponse::NotModified().insert_header(cache_control).insert_header(("ETag", etag)).finish();
            }
            HttpResponse::Ok()
                .insert_header(cache_control)
                .insert_header(("ETag", etag))
                .content_type("application/json")
                .body(body)
        }
        _ => HttpResponse::NotFound().finish(),
    }
}

#[actix_web::test]
async fn a_key_set_is_revalidated_after_its_max_age_with_if_none_match() {
    let first = Key::new("first");
    let issuer = Issuer::start(vec![first.jwk()], 1).await;
    let verifier = Verifier::builder(&issuer.base, "library-api")
        .key_set_max_age_bounds(Duration::from_secs(1), Duration::from_secs(60))
        .build()
        .await
        .expect("verifier");
    assert_eq!(issuer.fetches(), 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(issuer.not_modified.load(Ordering::SeqCst) >= 1, "no 304 after max-age");
    assert!(verifier.stats().key_set_not_modified >= 1);
    assert!(verifier.verify(&first.token(&issuer.base, "first")).await.is_ok());
    issuer.handle.stop(false).await;
}

#[actix_web::test]
async fn a_key_published_later_is_found_by_one_fetch_and_a_storm_of_unknown_kids_by_one_per_cooldown() {
    let (first, second) = (Key::new("first"), Key::new("second"));
    let issuer = Issuer::start(vec![first.jwk()], 3600).await;
    let cooldown = Duration::from_secs(1);
    let verifier =
        Verifier::builder(&issuer.base, "library-api").unknown_kid_cooldown(cooldown).build().await.expect("verifier");
    assert!(verifier.verify(&first.token(&issuer.base, "first")).await.is_ok());

    // Rotation: a key the verifier has not seen signs; one fetch finds it.
    issuer.publish(second.jwk());
    assert!(verifier.verify(&second.token(&issuer.base, "second")).await.is_ok());
    assert_eq!(issuer.fetches(), 2);

    // A storm of made-up kids, all at once and then more within the cooldown: one fetch.
    tokio::time::sleep(cooldown).await;
    let forged: Vec<String> = (0..100).map(|i| first.token(&issuer.base, &format!("made-up-{i}"))).collect();
    let outcomes = futures_util::future::join_all(forged.iter().map(|token| verifier.verify(token))).await;
    assert!(outcomes.iter().all(|outcome| outcome == &Err(TokenRejection::UnknownKey)));
    for token in &forged {
        assert_eq!(verifier.verify(token).await, Err(TokenRejection::UnknownKey));
    }
    assert_eq!(issuer.fetches(), 3, "one fetch for the whole storm");
    // A token without a kid never asks for a fetch, whatever the cooldown.
    tokio::time::sleep(cooldown).await;
    let no_kid = first.token(&issuer.base, "");
    assert_eq!(verifier.verify(&no_kid).await, Err(TokenRejection::MissingKeyId));
    assert_eq!(issuer.fetches(), 3);
    issuer.handle.stop(false).await;
}

#[actix_web::test]
async fn cached_keys_verify_through_an_outage_until_max_stale() {
    let key = Key::new("only");
    let issuer = Issuer::start(vec![key.jwk()], 1).await;
    let verifier = Verifier::builder(&issuer.base, "library-api")
        .key_set_max_age_bounds(Duration::from_secs(1), Duration::from_secs(1))
        .max_stale(Duration::from_secs(3))
        .build()
        .await
        .expect("verifier");
    issuer.handle.stop(false).await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(verifier.verify(&key.token(&issuer.base, "only")).await.is_ok(), "within max_stale");
    assert!(verifier.stats().key_set_fetch_failures >= 1, "{:?}", verifier.stats());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(verifier.verify(&key.token(&issuer.base, "only")).await, Err(TokenRejection::KeysUnavailable));
}
