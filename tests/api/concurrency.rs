//! Races that must resolve cleanly.

use crate::helpers::{Backend, PASSWORD, spawn_app_on};
use reqwest::StatusCode;
use rstest::rstest;

#[rstest]
#[actix_web::test]
async fn parallel_registrations_of_one_name_yield_one_201_and_only_409s(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let attempts = (0..16u32).map(|i| {
        // Differing case too: the names collide case-insensitively.
        let name = if i.is_multiple_of(2) { "racer" } else { "RACER" };
        app.register(name, PASSWORD)
    });
    let statuses: Vec<StatusCode> =
        futures_util::future::join_all(attempts).await.into_iter().map(|reply| reply.status).collect();
    assert_eq!(statuses.iter().filter(|status| **status == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|status| *status == StatusCode::CREATED || *status == StatusCode::CONFLICT),
        "{statuses:?}"
    );
}

/// "Log out everywhere" and role changes lock the user's rows while refreshes lock theirs: taken
/// in opposite orders they would deadlock on PostgreSQL. Every request must get a real answer.
#[rstest]
#[actix_web::test]
async fn logging_out_everywhere_and_demoting_while_sessions_refresh_never_fail(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let first = app.register_and_login("racer").await;
    let mut sessions = vec![first];
    for _ in 0..7 {
        sessions.push(app.login("racer", PASSWORD).await);
    }
    let public_id = app.get("/users/me", &sessions[0].access).await.body["public_id"].as_str().map(str::to_string);
    let public_id = public_id.expect("public_id");
    let admin = app.admin_token().await;

    let refreshes = sessions.iter().map(|session| app.refresh(&session.refresh));
    let logouts = sessions.iter().take(3).map(|session| app.logout_everywhere(&session.access));
    let role_changes = [true, false].map(|admin_flag| {
        let request = app.request(reqwest::Method::PATCH, &format!("/users/{public_id}")).bearer_auth(&admin);
        app.send(request.json(&serde_json::json!({ "admin": admin_flag })))
    });
    let (refreshed, logged_out, changed) = tokio::join!(
        futures_util::future::join_all(refreshes),
        futures_util::future::join_all(logouts),
        futures_util::future::join_all(role_changes),
    );
    for reply in refreshed.iter().chain(&logged_out).chain(&changed) {
        assert!(!reply.status.is_server_error(), "{} {:?}", reply.status, reply.body);
    }
    assert!(refreshed.iter().all(|reply| [StatusCode::OK, StatusCode::BAD_REQUEST].contains(&reply.status)));
    for session in &sessions {
        assert!(!app.access_works(&session.access).await, "every token issued before the logouts is refused");
    }
}

/// The writes of many concurrent callers all commit: on SQLite they queue for the one writer
/// thread instead of failing with "database is locked", and every acknowledged one is stored.
#[rstest]
#[actix_web::test]
async fn many_concurrent_writers_all_succeed_and_every_acknowledged_write_is_stored(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    const WRITERS: usize = 64;
    const WRITES: usize = 20;
    let Some(app) = spawn_app_on(backend).await else { return };
    let token = app.admin_token().await;
    let writers = (0..WRITERS).map(|writer| {
        let (app, token) = (&app, &token);
        async move {
            let mut failures = Vec::new();
            for write in 0..WRITES {
                let name = format!("author {writer}-{write}");
                let reply = app.create_author(token, &name, &format!("book of {name}")).await;
                if reply.status != StatusCode::CREATED {
                    failures.push(format!("{name}: {} {:?}", reply.status, reply.body));
                }
            }
            failures
        }
    });
    let failures: Vec<String> = futures_util::future::join_all(writers).await.into_iter().flatten().collect();
    assert!(failures.is_empty(), "{} failed writes, e.g. {:?}", failures.len(), failures.first());

    use diesel::prelude::*;
    let stored: i64 =
        library_api::schema::authors::table.count().get_result(&mut app.db()).expect("count the stored authors");
    assert_eq!(stored, (WRITERS * WRITES) as i64);
}

/// 64 clients each refreshing their own session in a chain (each answer's refresh token is the
/// next request's): every refresh succeeds, none is refused as busy or as reuse.
#[rstest]
#[actix_web::test]
async fn concurrent_refresh_chains_all_succeed(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    const CHAINS: usize = 64;
    const ROUNDS: usize = 4;
    let Some(app) = spawn_app_on(backend).await else { return };
    app.register_and_login("chainer").await;
    let mut sessions = Vec::with_capacity(CHAINS);
    for _ in 0..CHAINS {
        sessions.push(app.login("chainer", PASSWORD).await);
    }
    let chains = sessions.into_iter().enumerate().map(|(chain, session)| {
        let app = &app;
        async move {
            let mut refresh = session.refresh;
            for round in 0..ROUNDS {
                let reply = app.refresh(&refresh).await;
                if reply.status != StatusCode::OK {
                    return Some(format!("chain {chain}, round {round}: {} {:?}", reply.status, reply.body));
                }
                refresh = reply.body["refresh_token"].as_str().expect("refresh_token").to_string();
            }
            None
        }
    });
    let failures: Vec<String> = futures_util::future::join_all(chains).await.into_iter().flatten().collect();
    assert!(failures.is_empty(), "{} chains failed: {failures:?}", failures.len());
}
