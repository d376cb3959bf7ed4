//! The command line: `migrate`, `user create`, `keys list`, and fail-fast settings.

use crate::helpers::{TestConfig, kid_of, spawn_app, spawn_app_with, try_spawn_app};
use reqwest::StatusCode;
use std::process::{Command, Output};

fn library_api(config: &TestConfig, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_library-api"));
    command
        .args(args)
        .env("DATABASE_URL", config.database_path())
        .env("MASTER_KEY", &config.master_key)
        .env("BCRYPT_COST", "4");
    for (name, value) in extra_env {
        command.env(name, value);
    }
    command.output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[actix_web::test]
async fn migrate_then_user_create_makes_a_user_who_can_log_in() {
    let config = TestConfig::sqlite();
    let migrated = library_api(&config, &["migrate"], &[]);
    assert!(migrated.status.success(), "{migrated:?}");
    let all =
        diesel::migration::MigrationSource::<diesel::sqlite::Sqlite>::migrations(&library_api::db::SQLITE_MIGRATIONS)
            .expect("migrations")
            .len();
    assert!(stdout(&migrated).contains(&format!("{all} migration(s) applied")), "{}", stdout(&migrated));

    let created =
        library_api(&config, &["user", "create", "carol", "--admin"], &[("LIBRARY_PASSWORD", "carol's password")]);
    assert!(created.status.success(), "{created:?}");
    assert!(stdout(&created).contains("created admin carol"), "{}", stdout(&created));
    let again = library_api(&config, &["user", "create", "CAROL"], &[("LIBRARY_PASSWORD", "carol's password")]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already taken"));

    let app = spawn_app_with(config).await;
    let token = app.token_for("carol", "carol's password").await;
    assert_eq!(app.get("/users", &token).await.status, StatusCode::OK, "carol is an admin");
}

#[actix_web::test]
async fn keys_list_shows_the_current_key_without_key_material() {
    let app = spawn_app().await;
    let kid = app.current_signing_key().kid().to_string();
    let listed = library_api(&app.config, &["keys", "list"], &[]);
    assert!(listed.status.success(), "{listed:?}");
    let line =
        stdout(&listed).lines().find(|line| line.starts_with(&kid)).map(str::to_string).expect("the kid is listed");
    assert!(line.contains("current"), "{line}");
    assert!(!stdout(&listed).contains("PRIVATE"), "no key material");
}

#[test]
fn a_bad_setting_stops_the_process_with_one_line_naming_it() {
    let config = TestConfig::sqlite();
    let cases =
        [("BCRYPT_COST", "3"), ("RSA_KEY_BITS", "1024"), ("ACCESS_TOKEN_TTL", "forever"), ("MASTER_KEY", "short")];
    for (setting, value) in cases {
        let output = library_api(&config, &["migrate"], &[(setting, value)]);
        assert!(!output.status.success(), "{setting}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{setting}: {stderr}");
        assert!(stderr.contains(setting), "{setting}: {stderr}");
    }
}

#[actix_web::test]
async fn keys_rotate_from_the_command_line_is_picked_up_by_the_running_service() {
    // The ring was made 3 h ago (the app's clock runs behind): its next key may sign now.
    let app = spawn_app_with(TestConfig { clock_offset: chrono::Duration::hours(-3), ..TestConfig::sqlite() }).await;
    let before = app.current_signing_key().kid().to_string();
    let rotated = library_api(&app.config, &["keys", "rotate"], &[]);
    assert!(rotated.status.success(), "{rotated:?}");
    let after = app.current_signing_key().kid().to_string();
    assert_ne!(after, before);
    assert!(stdout(&rotated).contains(&after), "{}", stdout(&rotated));

    app.services.key_ring.tick().await.expect("tick");
    let token = app.user_token("alice").await;
    assert_eq!(kid_of(&token), after);

    let too_soon = library_api(&app.config, &["keys", "rotate"], &[]);
    assert!(!too_soon.status.success());
    assert!(String::from_utf8_lossy(&too_soon.stderr).contains("too recently"), "{too_soon:?}");
}

#[actix_web::test]
async fn keys_rewrap_moves_the_ring_to_a_new_master_key() {
    let app = spawn_app_with(TestConfig { issuer: Some("http://library.test".into()), ..TestConfig::sqlite() }).await;
    let token = app.user_token("alice").await;
    let config = app.stop().await;
    let new_key_file = config.dir.path().join("new.master.key");

    let rewrapped =
        library_api(&config, &["keys", "rewrap", "--new-master-key-file", &new_key_file.display().to_string()], &[]);
    assert!(rewrapped.status.success(), "{rewrapped:?}");
    assert!(stdout(&rewrapped).contains("re-encrypted 2 key(s)"), "{}", stdout(&rewrapped));

    match try_spawn_app(config.clone()).await {
        Err(library_api::startup::StartupError::KeyRing(library_api::actors::key_ring::KeyRingError::Store(
            library_api::key_store::KeyStoreError::MasterKey(library_api::master_key::MasterKeyError::WrongKey {
                ..
            }),
        ))) => {}
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("the old master key still opens the ring"),
    }
    let restarted = spawn_app_with(TestConfig { master_key_file: Some(new_key_file), ..config }).await;
    assert_eq!(restarted.get("/users/me", &token).await.status, StatusCode::OK, "same keys, new wrapping");
}
