//! A write that answered 2xx survives the process being killed right after: the server binary
//! is SIGKILLed in the middle of concurrent registrations and author inserts, restarted on the
//! same file, and every acknowledged row must be there.

use crate::helpers::{PASSWORD, ServerProcess, TestConfig};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keeps writing until the server stops answering; records every name that got a 2xx.
async fn writer(
    client: reqwest::Client,
    address: String,
    token: String,
    worker: usize,
    acknowledged: Arc<Mutex<Vec<String>>>,
) {
    for i in 0.. {
        let name = format!("w{worker}-{i}");
        let request = if worker.is_multiple_of(2) {
            client.post(format!("{address}/register")).json(&json!({"name": name, "password": PASSWORD}))
        } else {
            client
                .post(format!("{address}/authors"))
                .bearer_auth(&token)
                .json(&json!({"name": name, "book": format!("book of {name}"), "country": "UK"}))
        };
        match request.send().await {
            Ok(response) if response.status().is_success() => acknowledged.lock().expect("lock").push(name),
            Ok(response) => panic!("{name}: unexpected {}", response.status()),
            Err(_) => return, // the server is gone
        }
    }
}

async fn stored_names(client: &reqwest::Client, address: &str, token: &str) -> HashSet<String> {
    let users: Value = client
        .get(format!("{address}/users"))
        .bearer_auth(token)
        .send()
        .await
        .expect("users")
        .json()
        .await
        .expect("json");
    let mut names: HashSet<String> =
        users["users"].as_array().expect("users").iter().filter_map(|u| u["name"].as_str().map(String::from)).collect();
    for offset in (0..).step_by(100) {
        let page: Value = client
            .get(format!("{address}/authors?limit=100&offset={offset}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("authors")
            .json()
            .await
            .expect("json");
        let authors = page["authors"].as_array().expect("authors");
        names.extend(authors.iter().filter_map(|a| a["name"].as_str().map(String::from)));
        if authors.len() < 100 {
            break;
        }
    }
    names
}

#[actix_web::test]
async fn every_acknowledged_write_survives_sigkill() {
    let config = TestConfig::sqlite();
    let client = reqwest::Client::new();
    let mut server = ServerProcess::start(&config);
    let token = server.admin_token(&client).await;

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..8)
        .map(|worker| {
            actix_web::rt::spawn(writer(
                client.clone(),
                server.address.clone(),
                token.clone(),
                worker,
                acknowledged.clone(),
            ))
        })
        .collect();
    let started = Instant::now();
    while acknowledged.lock().expect("lock").len() < 150 && started.elapsed() < Duration::from_secs(20) {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill(); // SIGKILL, mid-flight
    for writer in writers {
        writer.await.expect("writer finished");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(acknowledged.len() >= 20, "the load ran ({} acknowledged)", acknowledged.len());

    let restarted = ServerProcess::start(&config);
    let token = restarted.admin_token(&client).await;
    let stored = stored_names(&client, &restarted.address, &token).await;
    let lost: Vec<_> = acknowledged.iter().filter(|name| !stored.contains(*name)).collect();
    assert!(lost.is_empty(), "acknowledged but lost after SIGKILL: {lost:?}");
}
