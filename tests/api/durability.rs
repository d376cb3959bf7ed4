//! A write that answered 2xx survives the process being killed right after: the server binary
//! is SIGKILLed in the middle of concurrent registrations and author inserts, restarted on the
//! same file, and every acknowledged row must be there.

use crate::helpers::{ADMIN_NAME, ADMIN_PASSWORD, PASSWORD, TestConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub struct ServerProcess {
    pub child: Child,
    pub address: String,
}

impl ServerProcess {
    /// Starts the binary built by cargo and waits for its "listening on" line.
    pub fn start(config: &TestConfig) -> Self {
        Self::start_with(config, &[])
    }

    pub fn start_with(config: &TestConfig, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_library-api"));
        for (name, value) in env {
            command.env(name, value);
        }
        if !env.iter().any(|(name, _)| *name == "BCRYPT_COST") {
            command.env("BCRYPT_COST", "4");
        }
        let mut child = command
            .env("DATABASE_URL", config.database_path())
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("MASTER_KEY", &config.master_key)
            .env("ADMIN_NAME", ADMIN_NAME)
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        let stderr = child.stderr.take().expect("stderr");
        let (found, address) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = found.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
            }
        });
        let address = address.recv_timeout(Duration::from_secs(60)).expect("the server reports its address");
        Self { child, address }
    }

    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn admin_token(client: &reqwest::Client, address: &str) -> String {
    let reply = client
        .post(format!("{address}/login"))
        .basic_auth(ADMIN_NAME, Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("login");
    assert_eq!(reply.status(), StatusCode::OK);
    reply.json::<Value>().await.expect("json")["access_token"].as_str().expect("token").to_string()
}

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
    let config = TestConfig::default();
    let client = reqwest::Client::new();
    let mut server = ServerProcess::start(&config);
    let token = admin_token(&client, &server.address).await;

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
    let token = admin_token(&client, &restarted.address).await;
    let stored = stored_names(&client, &restarted.address, &token).await;
    let lost: Vec<_> = acknowledged.iter().filter(|name| !stored.contains(*name)).collect();
    assert!(lost.is_empty(), "acknowledged but lost after SIGKILL: {lost:?}");
}
