//! The Shared Signals transmitter (issue 15, part 2): discovery, stream management and who may
//! use it, the events each action emits (exactly those, with the right subjects), SETs that
//! verify with the JWKS alone, acknowledgement, long polling, restarts, paused and disabled
//! streams, and push delivery to a receiver that fails and recovers.

use crate::helpers::{
    ADMIN_NAME, ADMIN_PASSWORD, Backend, PASSWORD, Reply, TestApp, claim, jwt_segments, sample, spawn_app_on,
    spawn_app_with,
};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::Duration;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const POLL: &str = "urn:ietf:rfc:8936";
const PUSH: &str = "urn:ietf:rfc:8935";
const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const CREDENTIAL_CHANGE: &str = "https://schemas.openid.net/secevent/caep/event-type/credential-change";
const CLAIMS_CHANGE: &str = "https://schemas.openid.net/secevent/caep/event-type/token-claims-change";
const ACCOUNT_PURGED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-purged";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";

/// A registered receiver: its client id and a client-credentials token.
struct Receiver {
    client_id: String,
    secret: String,
    token: String,
}

/// Registers a confidential client with `scope` and gets its client-credentials token.
async fn client_with_scope(app: &TestApp, admin: &str, name: &str, scope: &str) -> Receiver {
    let reply = app
        .post_json("/admin/clients", Some(admin), &json!({"name": name, "confidential": true, "scope": scope}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "register {name}: {:?}", reply.body);
    let client_id = reply.body["client_id"].as_str().expect("client_id").to_string();
    let secret = reply.body["client_secret"].as_str().expect("secret").to_string();
    let token = client_token(app, &client_id, &secret).await;
    Receiver { client_id, secret, token }
}

/// A client-credentials access token for the client.
async fn client_token(app: &TestApp, client_id: &str, secret: &str) -> String {
    let request = app
        .request(Method::POST, "/oauth/token")
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")]);
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::OK, "token for {client_id}: {:?}", reply.body);
    reply.body["access_token"].as_str().expect("token").to_string()
}

async fn receiver(app: &TestApp, admin: &str, name: &str) -> Receiver {
    client_with_scope(app, admin, name, "ssf").await
}

async fn create_stream(app: &TestApp, receiver: &Receiver, body: &Value) -> Reply {
    app.post_json("/ssf/stream", Some(&receiver.token), body).await
}

/// A poll stream for `receiver` requesting every event: its configuration.
async fn poll_stream(app: &TestApp, receiver: &Receiver) -> Value {
    let reply = create_stream(app, receiver, &json!({"delivery": {"method": POLL}})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "create stream: {:?}", reply.body);
    reply.body
}

/// `POST endpoint_url` with `body`: the reply.
async fn poll(app: &TestApp, receiver: &Receiver, stream: &Value, body: &Value) -> Reply {
    let url = stream["delivery"]["endpoint_url"].as_str().expect("endpoint_url");
    let request = app.client.post(url).bearer_auth(&receiver.token).json(body);
    app.send(request).await
}

/// `sets` of a poll answer with its members in the order sent (a `Value` would sort them).
struct OrderedSets(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for OrderedSets {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OrderedSets;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of SETs")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<OrderedSets, A::Error> {
                let mut sets = Vec::new();
                while let Some(entry) = map.next_entry::<String, String>()? {
                    sets.push(entry);
                }
                Ok(OrderedSets(sets))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[derive(serde::Deserialize)]
struct PollAnswer {
    sets: OrderedSets,
}

/// Every SET queued now (returned at once), as `(jti, SET)` in the order sent, unacknowledged.
async fn queued(app: &TestApp, receiver: &Receiver, stream: &Value) -> Vec<(String, String)> {
    let url = stream["delivery"]["endpoint_url"].as_str().expect("endpoint_url");
    let request = app.client.post(url).bearer_auth(&receiver.token).json(&json!({"returnImmediately": true}));
    let response = request.send().await.expect("poll sent");
    assert_eq!(response.status(), StatusCode::OK);
    let answer: PollAnswer = serde_json::from_str(&response.text().await.expect("body")).expect("a poll answer");
    answer.sets.0
}

/// Takes (and acknowledges) every SET queued now: their verified claims, in order.
async fn take_events(app: &TestApp, receiver: &Receiver, stream: &Value) -> Vec<Value> {
    let sets = queued(app, receiver, stream).await;
    let jtis: Vec<&String> = sets.iter().map(|(jti, _)| jti).collect();
    let ack = poll(app, receiver, stream, &json!({"ack": jtis, "maxEvents": 0})).await;
    assert_eq!(ack.status, StatusCode::OK);
    let mut claims = Vec::new();
    for (jti, set) in &sets {
        let verified = verify_set(app, set, &receiver.client_id).await;
        assert_eq!(verified["jti"], json!(jti));
        claims.push(verified);
    }
    claims
}

/// The claims of `set`, checked as a receiver would with nothing but the JWKS: RS256 by a
/// published key, `typ: secevent+jwt`, our `iss`, `aud` = the receiver; SSF's profile (one
/// event, `sub_id`, no `sub`, no `exp`).
async fn verify_set(app: &TestApp, set: &str, audience: &str) -> Value {
    let (header, _) = jwt_segments(set);
    assert_eq!(header["typ"], "secevent+jwt");
    assert_eq!(header["alg"], "RS256");
    let jwks = app.jwks().await.body;
    let kid = header["kid"].as_str().expect("kid");
    let jwk = jwks["keys"].as_array().expect("keys").iter().find(|key| key["kid"] == kid).expect("kid published");
    let key = DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    let issuer = app.config.issuer.clone().unwrap_or_else(|| app.address.clone());
    validation.set_issuer(&[issuer.as_str()]);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<Value>(set, &key, &validation).expect("the SET verifies with the JWKS").claims;
    assert!(claims.get("sub").is_none() && claims.get("exp").is_none(), "no sub, no exp: {claims}");
    assert!(claims["iat"].is_i64() && claims["txn"].is_string() && claims["sub_id"].is_object(), "{claims}");
    assert_eq!(claims["events"].as_object().expect("events").len(), 1, "one event per SET");
    claims
}

/// `(event type, sub_id)` of each event.
fn kinds(events: &[Value]) -> Vec<(String, Value)> {
    events
        .iter()
        .map(|claims| {
            let (uri, _) = claims["events"].as_object().unwrap().iter().next().unwrap();
            (uri.clone(), claims["sub_id"].clone())
        })
        .collect()
}

fn event<'a>(claims: &'a Value, uri: &str) -> &'a Value {
    &claims["events"][uri]
}

fn session_subject(access: &str) -> Value {
    json!({
        "format": "complex",
        "user": {"format": "opaque", "id": claim(access, "sub")},
        "session": {"format": "opaque", "id": claim(access, "sid")},
    })
}

fn user_subject(access: &str) -> Value {
    json!({"format": "opaque", "id": claim(access, "sub")})
}

#[rstest]
#[actix_web::test]
async fn discovery_and_stream_management_follow_ssf_and_only_the_owner_may_touch_a_stream(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let metadata = app.send(app.request(Method::GET, "/.well-known/ssf-configuration")).await;
    assert_eq!(metadata.status, StatusCode::OK);
    assert_eq!(metadata.body["issuer"], json!(app.address));
    assert_eq!(metadata.body["jwks_uri"], json!(format!("{}/.well-known/jwks.json", app.address)));
    assert_eq!(metadata.body["configuration_endpoint"], json!(format!("{}/ssf/stream", app.address)));
    assert_eq!(metadata.body["default_subjects"], "ALL");
    assert_eq!(metadata.body["delivery_methods_supported"], json!([PUSH, POLL]));

    let admin = app.admin_token().await;
    let alice = receiver(&app, &admin, "alice-rp").await;
    let stream = poll_stream(&app, &alice).await;
    let stream_id = stream["stream_id"].as_str().unwrap().to_string();
    assert_eq!(stream["aud"], json!(alice.client_id));
    assert_eq!(stream["iss"], json!(app.address));
    assert_eq!(stream["delivery"]["endpoint_url"], json!(format!("{}/ssf/poll/{stream_id}", app.address)));
    assert_eq!(stream["events_delivered"].as_array().unwrap().len(), 4);
    assert_eq!(create_stream(&app, &alice, &json!({})).await.status, StatusCode::CONFLICT, "one stream per receiver");
    let read = app.get(&format!("/ssf/stream?stream_id={stream_id}"), &alice.token).await;
    assert_eq!((read.status, read.body["stream_id"].clone()), (StatusCode::OK, json!(stream_id)));
    assert_eq!(app.get("/ssf/stream", &alice.token).await.body.as_array().map(Vec::len), Some(1));

    let patch = app.request(Method::PATCH, "/ssf/stream").bearer_auth(&alice.token).json(
        &json!({"stream_id": stream_id, "events_requested": [SESSION_REVOKED, "urn:example:unknown"], "description": "d"}),
    );
    let patched = app.send(patch).await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    assert_eq!(patched.body["events_delivered"], json!([SESSION_REVOKED]));
    assert_eq!(patched.body["description"], "d");
    let wrong_aud = app
        .request(Method::PUT, "/ssf/stream")
        .bearer_auth(&alice.token)
        .json(&json!({"stream_id": stream_id, "aud": "someone-else"}));
    assert_eq!(app.send(wrong_aud).await.status, StatusCode::BAD_REQUEST, "transmitter-supplied values must match");
    let put = app.request(Method::PUT, "/ssf/stream").bearer_auth(&alice.token).json(&json!({"stream_id": stream_id}));
    assert_eq!(app.send(put).await.body["events_delivered"].as_array().unwrap().len(), 4, "PUT restores defaults");

    // Who may not: another receiver, a client without the scope, a user, a bad delivery.
    let bob = receiver(&app, &admin, "bob-rp").await;
    let no_scope = client_with_scope(&app, &admin, "no-scope", "").await;
    let user = app.user_token("carol").await;
    for (who, token) in [("another receiver", &bob.token), ("no ssf scope", &no_scope.token), ("a user", &user)] {
        let reply = app.get(&format!("/ssf/stream?stream_id={stream_id}"), token).await;
        let expected = if who == "another receiver" { StatusCode::NOT_FOUND } else { StatusCode::FORBIDDEN };
        assert_eq!(reply.status, expected, "{who} reading the stream");
        let reply = app.delete(&format!("/ssf/stream?stream_id={stream_id}"), token).await;
        assert_eq!(reply.status, expected, "{who} deleting the stream");
        let caller = Receiver { client_id: String::new(), secret: String::new(), token: token.to_string() };
        let reply = poll(&app, &caller, &stream, &json!({})).await;
        assert_eq!(reply.status, expected, "{who} polling the stream");
    }
    for (case, body) in [
        ("unknown method", json!({"delivery": {"method": "urn:example:carrier-pigeon"}})),
        ("push without endpoint", json!({"delivery": {"method": PUSH}})),
        ("push to a relative URL", json!({"delivery": {"method": PUSH, "endpoint_url": "/x"}})),
        (
            "push with credentials in the URL",
            json!({"delivery": {"method": PUSH, "endpoint_url": "https://u:p@x.example/"}}),
        ),
        ("events not a list", json!({"events_requested": "all"})),
    ] {
        let reply = create_stream(&app, &bob, &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{case}: {:?}", reply.body);
    }
    let deleted = app.delete(&format!("/ssf/stream?stream_id={stream_id}"), &alice.token).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/ssf/stream?stream_id={stream_id}"), &alice.token).await.status,
        StatusCode::NOT_FOUND
    );
}

#[rstest]
#[actix_web::test]
async fn each_action_emits_exactly_its_events_with_the_right_subjects(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.login(ADMIN_NAME, ADMIN_PASSWORD).await.access;
    let rp = receiver(&app, &admin, "rp").await;
    let stream = poll_stream(&app, &rp).await;
    assert!(take_events(&app, &rp, &stream).await.is_empty());

    // Logout: one session-revoked for that session, initiated by the user.
    let laptop = app.register_and_login("alice").await;
    app.logout(&laptop.access).await;
    let events = take_events(&app, &rp, &stream).await;
    assert_eq!(kinds(&events), vec![(SESSION_REVOKED.to_string(), session_subject(&laptop.access))]);
    assert_eq!(event(&events[0], SESSION_REVOKED)["initiating_entity"], "user");

    // Password change: the other sessions end, then credential-change for the user.
    let phone = app.login("alice", PASSWORD).await;
    let tablet = app.login("alice", PASSWORD).await;
    let change = app
        .request(Method::PUT, "/users/me/password")
        .bearer_auth(&phone.access)
        .json(&json!({"current_password": PASSWORD, "new_password": "another passphrase"}));
    assert_eq!(app.send(change).await.status, StatusCode::NO_CONTENT);
    let events = take_events(&app, &rp, &stream).await;
    assert_eq!(
        kinds(&events),
        vec![
            (SESSION_REVOKED.to_string(), session_subject(&tablet.access)),
            (CREDENTIAL_CHANGE.to_string(), user_subject(&phone.access)),
        ]
    );
    assert_eq!(event(&events[1], CREDENTIAL_CHANGE)["credential_type"], "password");
    assert_eq!(event(&events[1], CREDENTIAL_CHANGE)["change_type"], "update");

    // Ending one's own session; refresh token revocation (RFC 7009); reuse detection.
    let other = app.login("alice", "another passphrase").await;
    let sid = claim(&other.access, "sid").as_str().unwrap().to_string();
    assert_eq!(app.delete(&format!("/users/me/sessions/{sid}"), &phone.access).await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        kinds(&take_events(&app, &rp, &stream).await),
        vec![(SESSION_REVOKED.into(), session_subject(&other.access))]
    );
    let revoked = app.login("alice", "another passphrase").await;
    let revoke =
        app.request(Method::POST, "/revoke").form(&[("token", revoked.refresh.as_str()), ("client_id", "library-app")]);
    assert_eq!(app.send(revoke).await.status, StatusCode::OK);
    assert_eq!(
        kinds(&take_events(&app, &rp, &stream).await),
        vec![(SESSION_REVOKED.into(), session_subject(&revoked.access))]
    );
    let reused = app.login("alice", "another passphrase").await;
    app.refreshed(&reused.refresh).await;
    assert_eq!(app.refresh(&reused.refresh).await.status, StatusCode::BAD_REQUEST);
    let events = take_events(&app, &rp, &stream).await;
    assert_eq!(kinds(&events), vec![(SESSION_REVOKED.into(), session_subject(&reused.access))]);
    assert_eq!(event(&events[0], SESSION_REVOKED)["initiating_entity"], "policy");

    // A role change: every session ends, then token-claims-change with the new groups.
    let bob = app.register_and_login("bob").await;
    let bob_id = claim(&bob.access, "sub").as_str().unwrap().to_string();
    let promote =
        app.request(Method::PATCH, &format!("/users/{bob_id}")).bearer_auth(&admin).json(&json!({"admin": true}));
    assert_eq!(app.send(promote).await.status, StatusCode::OK);
    let events = take_events(&app, &rp, &stream).await;
    assert_eq!(
        kinds(&events),
        vec![(SESSION_REVOKED.into(), session_subject(&bob.access)), (CLAIMS_CHANGE.into(), user_subject(&bob.access))]
    );
    assert_eq!(event(&events[1], CLAIMS_CHANGE)["claims"], json!({"groups": ["admin"]}));

    // An admin ends all of a user's sessions; logout everywhere.
    let bob2 = app.login("bob", PASSWORD).await;
    assert_eq!(app.delete(&format!("/users/{bob_id}/sessions"), &admin).await.status, StatusCode::NO_CONTENT);
    let events = take_events(&app, &rp, &stream).await;
    assert_eq!(kinds(&events), vec![(SESSION_REVOKED.into(), session_subject(&bob2.access))]);
    assert_eq!(event(&events[0], SESSION_REVOKED)["initiating_entity"], "admin");
    let bob3 = app.login("bob", PASSWORD).await;
    let bob4 = app.login("bob", PASSWORD).await;
    assert!(app.logout_everywhere(&bob3.access).await.status.is_success());
    let mut subjects: Vec<Value> = kinds(&take_events(&app, &rp, &stream).await).into_iter().map(|(_, s)| s).collect();
    let mut expected = vec![session_subject(&bob3.access), session_subject(&bob4.access)];
    subjects.sort_by_key(Value::to_string);
    expected.sort_by_key(Value::to_string);
    assert_eq!(subjects, expected);

    // Deletion: every session, then account-purged.
    let bob5 = app.login("bob", PASSWORD).await;
    assert_eq!(app.delete(&format!("/users/{bob_id}"), &admin).await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        kinds(&take_events(&app, &rp, &stream).await),
        vec![
            (SESSION_REVOKED.into(), session_subject(&bob5.access)),
            (ACCOUNT_PURGED.into(), user_subject(&bob5.access))
        ]
    );

    // Deleting a client: its own tokens end, as RISC account-purged of the client id.
    let doomed = receiver(&app, &admin, "doomed service").await;
    let deleted = app.delete(&format!("/admin/clients/{}", doomed.client_id), &admin).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        kinds(&take_events(&app, &rp, &stream).await),
        vec![(ACCOUNT_PURGED.into(), json!({"format": "opaque", "id": doomed.client_id}))]
    );

    // Verification, echoing the state; too soon again is 429.
    let stream_id = stream["stream_id"].as_str().unwrap();
    let verify = app.post_json("/ssf/verify", Some(&rp.token), &json!({"stream_id": stream_id, "state": "s-1"})).await;
    assert_eq!(verify.status, StatusCode::NO_CONTENT);
    let again = app.post_json("/ssf/verify", Some(&rp.token), &json!({"stream_id": stream_id})).await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
    let events = take_events(&app, &rp, &stream).await;
    assert_eq!(kinds(&events), vec![(VERIFICATION.into(), json!({"format": "opaque", "id": stream_id}))]);
    assert_eq!(event(&events[0], VERIFICATION)["state"], "s-1");
    assert!(take_events(&app, &rp, &stream).await.is_empty(), "nothing else was emitted");
}

#[rstest]
#[actix_web::test]
async fn sets_stay_until_acknowledged_survive_a_restart_and_paused_streams_hold_them(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    let rp = receiver(&app, &admin, "rp").await;
    let stream = poll_stream(&app, &rp).await;
    let stream_id = stream["stream_id"].as_str().unwrap().to_string();
    for name in ["user-a", "user-b", "user-c"] {
        let session = app.register_and_login(name).await;
        app.logout(&session.access).await;
    }
    let first = queued(&app, &rp, &stream).await;
    assert_eq!(first.len(), 3);
    assert_eq!(queued(&app, &rp, &stream).await, first, "unacknowledged SETs come again, in the same order");
    let limited =
        poll(&app, &rp, &stream, &json!({"returnImmediately": true, "maxEvents": 2, "ack": [first[0].0]})).await;
    assert_eq!(limited.body["sets"].as_object().unwrap().len(), 2);
    assert_eq!(limited.body["moreAvailable"], false, "only two were left after the ack");
    let mut keys: Vec<&String> = limited.body["sets"].as_object().unwrap().keys().collect();
    let mut expected = vec![&first[1].0, &first[2].0];
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected, "the oldest after the acknowledged one");

    // A restart between queueing and polling loses nothing.
    let config = app.stop().await;
    let app = spawn_app_with(config).await;
    // The restarted app listens on another port: another issuer (a new token) and poll URL.
    let rp = Receiver { token: client_token(&app, &rp.client_id, &rp.secret).await, ..rp };
    let stream = app.get(&format!("/ssf/stream?stream_id={stream_id}"), &rp.token).await.body;
    let after = queued(&app, &rp, &stream).await;
    let jtis = |sets: &[(String, String)]| sets.iter().map(|(jti, _)| jti.clone()).collect::<Vec<_>>();
    assert_eq!(jtis(&after), jtis(&first[1..]), "the unacknowledged ones, and only those (signed anew)");
    let ack: Vec<&String> = after.iter().map(|(jti, _)| jti).collect();
    poll(&app, &rp, &stream, &json!({"ack": ack, "maxEvents": 0})).await;
    assert!(queued(&app, &rp, &stream).await.is_empty(), "acknowledged SETs never come again");

    // Paused: held and not delivered; enabled: delivered. Disabled: dropped.
    let set_status = |status: &str| json!({"stream_id": stream_id, "status": status});
    assert_eq!(app.post_json("/ssf/status", Some(&rp.token), &set_status("paused")).await.body["status"], "paused");
    let d = app.register_and_login("user-d").await;
    app.logout(&d.access).await;
    assert!(queued(&app, &rp, &stream).await.is_empty(), "a paused stream delivers nothing");
    app.post_json("/ssf/status", Some(&rp.token), &set_status("enabled")).await;
    assert_eq!(queued(&app, &rp, &stream).await.len(), 1, "what the pause held comes once enabled");
    app.post_json("/ssf/status", Some(&rp.token), &set_status("disabled")).await;
    let e = app.register_and_login("user-e").await;
    app.logout(&e.access).await;
    let status = app.get(&format!("/ssf/status?stream_id={stream_id}"), &rp.token).await;
    assert_eq!(status.body["status"], "disabled");
    let verify = app.post_json("/ssf/verify", Some(&rp.token), &json!({"stream_id": stream_id})).await;
    assert_eq!(verify.status, StatusCode::BAD_REQUEST, "a disabled stream cannot be verified");
    app.post_json("/ssf/status", Some(&rp.token), &set_status("enabled")).await;
    assert!(queued(&app, &rp, &stream).await.is_empty(), "a disabled stream holds nothing");

    // The metrics of this instance (since the restart) saw it: d's event queued (e's was not: the
    // stream was disabled), the two acknowledged by poll, d's dropped, never acknowledged, when
    // the stream was disabled.
    let metrics = app.request(Method::GET, "/metrics").send().await.expect("metrics").text().await.expect("text");
    let value = |series: &str| sample(&metrics, series).unwrap_or_else(|| panic!("{series} missing:\n{metrics}"));
    assert_eq!(value(r#"library_api_ssf_events_queued_total{event="session-revoked"}"#), 1.0);
    assert_eq!(value(r#"library_api_ssf_events_dropped_total{reason="disabled"}"#), 1.0);
    assert_eq!(value(r#"library_api_ssf_events_delivered_total{method="poll"}"#), 2.0);
    assert!(metrics.contains("library_api_ssf_oldest_unacknowledged_event_age_seconds"));
}

#[rstest]
#[actix_web::test]
async fn a_long_poll_answers_as_soon_as_a_logout_commits(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    let rp = receiver(&app, &admin, "rp").await;
    let stream = poll_stream(&app, &rp).await;
    let alice = app.register_and_login("alice").await;
    let started = Instant::now();
    let long_poll = json!({});
    let waiting = poll(&app, &rp, &stream, &long_poll);
    let logout = async {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
        app.logout(&alice.access).await
    };
    let (reply, _) = futures_util::future::join(waiting, logout).await;
    let elapsed = started.elapsed();
    assert_eq!(reply.body["sets"].as_object().map(|sets| sets.len()), Some(1), "{:?}", reply.body);
    assert!(elapsed < std::time::Duration::from_secs(3), "the long poll answered after {elapsed:?}");
}

/// What a push receiver got: `Content-Type`, `Authorization`, body.
type Pushed = Arc<Mutex<Vec<(String, Option<String>, String)>>>;

/// A push receiver: records what it is sent; answers 503 while `failing`, else 202.
struct PushReceiver {
    url: String,
    failing: Arc<AtomicBool>,
    received: Pushed,
}

fn start_push_receiver() -> PushReceiver {
    let failing = Arc::new(AtomicBool::new(true));
    let received: Pushed = Arc::new(Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let (state_failing, state_received) = (failing.clone(), received.clone());
    let server = HttpServer::new(move || {
        let (failing, received) = (state_failing.clone(), state_received.clone());
        App::new().route(
            "/events",
            web::post().to(move |req: HttpRequest, body: String| {
                let (failing, received) = (failing.clone(), received.clone());
                async move {
                    if failing.load(Ordering::SeqCst) {
                        return HttpResponse::ServiceUnavailable().finish();
                    }
                    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from);
                    received.lock().unwrap().push((
                        header("content-type").unwrap_or_default(),
                        header("authorization"),
                        body,
                    ));
                    HttpResponse::Accepted().finish()
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    PushReceiver { url, failing, received }
}

#[rstest]
#[actix_web::test]
async fn push_retries_with_backoff_shows_failures_in_the_status_and_delivers_once_the_receiver_recovers(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    let rp = receiver(&app, &admin, "rp").await;
    let push = start_push_receiver();
    let created = create_stream(
        &app,
        &rp,
        &json!({"delivery": {"method": PUSH, "endpoint_url": push.url, "authorization_header": "Bearer push-secret"}}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert!(!created.body.to_string().contains("push-secret"), "the authorization header is never returned");
    let stream_id = created.body["stream_id"].as_str().unwrap().to_string();
    let polled = app
        .send(app.request(Method::POST, &format!("/ssf/poll/{stream_id}")).bearer_auth(&rp.token).json(&json!({})))
        .await;
    assert_eq!(polled.status, StatusCode::BAD_REQUEST, "a push stream is not polled");
    let alice = app.register_and_login("alice").await;
    app.logout(&alice.access).await;

    let status_path = format!("/ssf/status?stream_id={stream_id}");
    let failing = wait_for(
        || async { app.get(&status_path, &rp.token).await.body },
        |status| status["delivery_failures"].as_i64().unwrap_or(0) >= 1,
    )
    .await;
    assert!(failing["last_delivery_error"].as_str().unwrap().contains("503"), "{failing}");
    assert!(failing["next_delivery_attempt_at"].is_string(), "{failing}");
    assert!(!failing.to_string().contains("push-secret"));

    push.failing.store(false, Ordering::SeqCst);
    app.advance(Duration::seconds(10)).await; // past the backoff
    wait_for(|| async { push.received.lock().unwrap().len() }, |count| *count >= 1).await;
    let (content_type, authorization, set) = push.received.lock().unwrap()[0].clone();
    assert_eq!(content_type, "application/secevent+jwt");
    assert_eq!(authorization.as_deref(), Some("Bearer push-secret"));
    let claims = verify_set(&app, &set, &rp.client_id).await;
    assert_eq!(claims["sub_id"], session_subject(&alice.access));
    let recovered =
        wait_for(|| async { app.get(&status_path, &rp.token).await.body }, |status| status["delivery_failures"] == 0)
            .await;
    assert!(recovered.get("next_delivery_attempt_at").is_none(), "{recovered}");
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(push.received.lock().unwrap().len(), 1, "an accepted SET is not pushed again");
}

/// Polls `probe` until `done` holds (at most 15 s): the last value.
async fn wait_for<T, F, Fut>(probe: F, done: impl Fn(&T) -> bool) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let value = probe().await;
        if done(&value) || Instant::now() > deadline {
            return value;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Two instances on one PostgreSQL database: any instance serves polls of events queued at
/// either, and both instances' push workers together push each SET exactly once.
#[actix_web::test]
async fn with_two_instances_either_serves_polls_and_each_set_is_pushed_once() {
    let Some(config) = crate::helpers::TestConfig::on(Backend::Postgres) else { return };
    let config = crate::helpers::TestConfig { issuer: Some("http://library.test".into()), ..config };
    let a = spawn_app_with(config.clone()).await;
    let b = spawn_app_with(config).await;
    let admin = a.admin_token().await;
    let poller = receiver(&a, &admin, "poller").await;
    let stream = poll_stream(&a, &poller).await;
    let stream_id = stream["stream_id"].as_str().unwrap().to_string();
    // The stream names the issuer's URL; each instance serves the same path.
    let at_b = json!({"delivery": {"endpoint_url": format!("{}/ssf/poll/{stream_id}", b.address)}});
    let pushed_to = receiver(&b, &admin, "pushed-to").await;
    let push = start_push_receiver();
    push.failing.store(false, Ordering::SeqCst);
    let created = create_stream(&b, &pushed_to, &json!({"delivery": {"method": PUSH, "endpoint_url": push.url}})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);

    let mut sessions = Vec::new();
    for i in 0..10 {
        let (here, name) = if i % 2 == 0 { (&a, format!("even-{i}")) } else { (&b, format!("odd-{i}")) };
        let session = here.register_and_login(&name).await;
        here.logout(&session.access).await;
        sessions.push(session_subject(&session.access));
    }
    let polled = take_events(&b, &poller, &at_b).await;
    let subjects: Vec<Value> = kinds(&polled).into_iter().map(|(_, subject)| subject).collect();
    assert_eq!(subjects, sessions, "B serves every event, A's and its own, in order of commit");

    wait_for(|| async { push.received.lock().unwrap().len() }, |count| *count >= 10).await;
    actix_web::rt::time::sleep(std::time::Duration::from_millis(2500)).await;
    let received = push.received.lock().unwrap().clone();
    let mut jtis: Vec<String> =
        received.iter().map(|(_, _, set)| jwt_segments(set).1["jti"].as_str().unwrap().to_string()).collect();
    let pushed_subjects: Vec<Value> =
        received.iter().map(|(_, _, set)| jwt_segments(set).1["sub_id"].clone()).collect();
    assert_eq!(pushed_subjects, sessions, "pushed in order of commit");
    jtis.sort();
    jtis.dedup();
    assert_eq!(jtis.len(), 10, "each SET pushed exactly once by the two instances together: {}", received.len());
}
