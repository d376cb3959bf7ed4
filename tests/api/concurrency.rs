//! Races that must resolve cleanly.

use crate::helpers::{PASSWORD, spawn_app};
use reqwest::StatusCode;

async fn parallel_registrations_of_one_name_yield_one_201_and_only_409s() {
    let app = spawn_app().await;
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

crate::helpers::on_both_backends!(parallel_registrations_of_one_name_yield_one_201_and_only_409s,);
