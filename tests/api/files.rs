//! Files on disk: the SQLite database and its `-wal`/`-shm` files are private to the service's
//! user (mode 0600), and a master key file others can read stops the start (as ssh does).
#![cfg(unix)]

use crate::helpers::{PASSWORD, TestConfig, random_master_key, spawn_app_with, try_spawn_app};
use library_api::master_key::MasterKeyError;
use library_api::startup::StartupError;
use reqwest::StatusCode;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The database file and the two files SQLite keeps beside it in WAL mode.
fn database_files(config: &TestConfig) -> [PathBuf; 3] {
    let db = config.database_path();
    let beside = |suffix: &str| PathBuf::from(format!("{}{suffix}", db.display()));
    [beside("-wal"), beside("-shm"), db]
}

fn assert_private(config: &TestConfig) {
    for path in database_files(config) {
        assert_eq!(format!("{:04o}", mode(&path)), "0600", "{}", path.display());
    }
}

#[actix_web::test]
async fn the_database_and_its_wal_and_shm_files_are_created_private() {
    let config = TestConfig::sqlite();
    assert!(!config.database_path().exists());
    let app = spawn_app_with(config).await;
    app.user_token("alice").await;
    // The pool keeps connections open, so the -wal and -shm files exist now.
    assert_private(&app.config);
}

#[actix_web::test]
async fn an_existing_database_open_to_others_is_made_private_at_start() {
    let app = spawn_app_with(TestConfig::sqlite()).await;
    app.user_token("alice").await;
    let config = app.stop().await;
    // As a run before this check left them, or a copy restored with a loose umask.
    let [wal, shm, db] = database_files(&config);
    chmod(&db, 0o644);
    for (path, mode) in [(&wal, 0o664), (&shm, 0o644)] {
        if path.exists() {
            chmod(path, mode);
        }
    }

    let restarted = spawn_app_with(config).await;
    restarted.login("alice", PASSWORD).await; // the same data
    restarted.user_token("bob").await;
    assert_private(&restarted.config);
}

#[actix_web::test]
async fn an_empty_database_file_made_beforehand_is_made_private() {
    let config = TestConfig::sqlite();
    std::fs::write(config.database_path(), b"").expect("touch");
    chmod(&config.database_path(), 0o666);
    let app = spawn_app_with(config).await;
    app.user_token("alice").await;
    assert_private(&app.config);
}

/// A master key file holding a valid key, with `mode`.
fn master_key_file(config: &TestConfig, mode: u32) -> PathBuf {
    let path = config.dir.path().join("library.master.key");
    std::fs::write(&path, format!("{}\n", random_master_key())).expect("write the key file");
    chmod(&path, mode);
    path
}

fn too_open_message(path: &Path, mode: u32) -> String {
    let path = path.display();
    format!("master key file {path} is accessible by group or others (mode {mode:04o}); run: chmod 600 {path}")
}

#[actix_web::test]
async fn a_master_key_file_readable_by_group_or_others_stops_the_start() {
    for loose in [0o640, 0o644] {
        let config = TestConfig::sqlite();
        let path = master_key_file(&config, loose);
        let config = TestConfig { master_key_file: Some(path.clone()), ..config };
        match try_spawn_app(config.clone()).await {
            Err(error @ StartupError::MasterKey(MasterKeyError::TooOpen { .. })) => {
                assert_eq!(error.to_string(), too_open_message(&path, loose));
            }
            Err(other) => panic!("mode {loose:o}: unexpected error: {other}"),
            Ok(_) => panic!("mode {loose:o}: started with a master key file others can read"),
        }
        assert_eq!(mode(&path), loose, "the file is left as it was, for its owner to fix");

        chmod(&path, 0o600);
        let app = spawn_app_with(config).await;
        assert_eq!(app.register("alice", PASSWORD).await.status, StatusCode::CREATED, "starts once fixed");
    }
}

/// The binary says so in one line, as its last, and exits with a failure.
#[test]
fn the_binary_refuses_a_loose_master_key_file_in_one_line() {
    let config = TestConfig::sqlite();
    let path = master_key_file(&config, 0o644);
    let stderr_path = config.dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_library-api"))
        .env_remove("MASTER_KEY")
        .env("MASTER_KEY_FILE", &path)
        .env("DATABASE_URL", config.database_path())
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("BCRYPT_COST", "4")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("the binary runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the service started with a master key file others can read");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&stderr_path).expect("stderr");
    assert!(!status.success(), "{stderr}");
    assert_eq!(stderr.lines().last(), Some(&*format!("library-api: {}", too_open_message(&path, 0o644))), "{stderr}");
    assert_eq!(mode(&path), 0o644);
}
