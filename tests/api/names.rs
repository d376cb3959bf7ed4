//! User names (issue 13, look-alike accounts): the PRECIS `UsernameCaseMapped` profile (RFC 8265)
//! decides which names exist and how login finds them; Unicode TS #39 skeletons decide which
//! names are taken. Every look-alike of a registered name collides (409) or is refused (422);
//! names stored before these rules keep working.

use crate::helpers::{
    ADMIN_NAME, Backend, PASSWORD, TestApp, TestConfig, spawn_app, spawn_app_on, spawn_app_with, try_spawn_app,
};
use diesel::prelude::*;
use library_api::schema::users;
use library_api::service::users::{LegacyNames, backfill_names};
use library_api::startup::StartupError;
use reqwest::StatusCode;
use rstest::rstest;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// What registering the second name of a pair must answer.
#[derive(Debug, Clone, Copy)]
enum Second {
    /// 409 `name_taken`: it is the same name, or looks like it.
    Collides,
    /// 422 `invalid_name`: the profile refuses it outright.
    Refused,
}

/// The look-alike pairs of issue 13 (plus a few of their kind): the first name registers, the
/// second must not. Each pair has names of its own, so no two pairs can collide with each other.
const LOOK_ALIKES: &[(&str, &str, &str, Second)] = &[
    ("NFC vs NFD", "josé", "jose\u{301}", Second::Collides),
    ("zero-width space", "mira", "mi\u{200b}ra", Second::Refused),
    ("zero-width joiner", "nadia", "na\u{200d}dia", Second::Refused),
    ("zero-width non-joiner", "nils", "ni\u{200c}ls", Second::Refused),
    ("byte order mark (zero-width no-break space)", "olga", "\u{feff}olga", Second::Refused),
    ("soft hyphen", "pavel", "pa\u{ad}vel", Second::Refused),
    ("variation selector", "quinn", "quinn\u{fe0f}", Second::Refused),
    ("tag characters", "rosa", "rosa\u{e0072}\u{e007f}", Second::Refused),
    ("Hangul filler", "sven", "sven\u{3164}", Second::Refused),
    ("right-to-left override", "tariq", "\u{202e}qirat", Second::Refused),
    ("fullwidth letters", "ulla", "ｕｌｌａ", Second::Collides),
    ("fullwidth capitals", "uwe", "ＵＷＥ", Second::Collides),
    ("mathematical bold letters", "vera", "𝐯𝐞𝐫𝐚", Second::Refused),
    ("mathematical script capital", "wanda", "𝒲anda", Second::Refused),
    ("the fi ligature", "fiona", "ﬁona", Second::Refused),
    ("Cyrillic а in a Latin name", "kara", "k\u{430}ra", Second::Collides),
    ("Cyrillic whole-script look-alike", "ape", "\u{430}\u{440}\u{435}", Second::Collides),
    ("Greek omicron in a Latin name", "bob", "b\u{3bf}b", Second::Collides),
    ("Greek capitals that look Latin", "TOM", "\u{3a4}\u{39f}\u{39c}", Second::Collides),
    ("Cyrillic capitals that look Latin", "KOMA", "\u{41a}\u{41e}\u{41c}\u{410}", Second::Collides),
    ("Greek capitals for a lowercase name", "zeta", "\u{396}ETA", Second::Collides),
    ("capital I for l", "Ian", "lan", Second::Collides),
    ("digit zero for O", "OTTO", "0TT0", Second::Collides),
    ("dotless i for i", "ivo", "\u{131}vo", Second::Collides),
    ("capital sharp s for ß", "groß", "GRO\u{1e9e}", Second::Collides),
    ("Kelvin sign for K (NFC makes it K)", "kai", "\u{212a}ai", Second::Collides),
    ("Ohm sign for omega (NFC makes it Ω)", "\u{3a9}mega", "\u{2126}mega", Second::Collides),
    ("rn for m", "ramon", "rarnon", Second::Collides),
    ("digit one for l", "lola", "1ola", Second::Collides),
    ("case only", "Xaver", "XAVER", Second::Collides),
    ("a space-separated part", "Mary Ann", "Mary \u{410}nn", Second::Collides),
];

#[rstest]
#[actix_web::test]
async fn every_look_alike_of_a_registered_name_collides_or_is_refused(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    for (class, first, second, expected) in LOOK_ALIKES {
        let registered = app.register(first, PASSWORD).await;
        assert_eq!(registered.status, StatusCode::CREATED, "{class}: {first:?} registers: {:?}", registered.body);
        let look_alike = app.register(second, PASSWORD).await;
        let (status, code) = match expected {
            Second::Collides => (StatusCode::CONFLICT, "name_taken"),
            Second::Refused => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
        };
        assert_eq!(
            (look_alike.status, look_alike.error_code()),
            (status, code),
            "{class}: {second:?}: {:?}",
            look_alike.body
        );
    }
}

#[actix_web::test]
async fn a_look_alike_is_refused_whichever_was_registered_first() {
    let app = spawn_app().await;
    for (class, first, second, expected) in LOOK_ALIKES {
        if matches!(expected, Second::Collides) {
            assert_eq!(app.register(second, PASSWORD).await.status, StatusCode::CREATED, "{class}: {second:?}");
            let reply = app.register(first, PASSWORD).await;
            assert_eq!(reply.status, StatusCode::CONFLICT, "{class}: {first:?} after {second:?}: {:?}", reply.body);
        }
    }
}

#[actix_web::test]
async fn names_of_invisible_characters_only_are_refused() {
    let app = spawn_app().await;
    let invisible = [
        ("zero-width spaces", "\u{200b}\u{200b}\u{200b}"),
        ("zero-width joiners", "\u{200d}\u{200d}\u{200d}"),
        ("Hangul fillers", "\u{3164}\u{3164}\u{3164}"),
        ("halfwidth Hangul fillers", "\u{ffa0}\u{ffa0}\u{ffa0}"),
        ("byte order marks", "\u{feff}\u{feff}\u{feff}"),
        ("tag characters", "\u{e0061}\u{e0062}\u{e0063}"),
        ("word joiners", "\u{2060}\u{2060}\u{2060}"),
        ("Braille blanks", "\u{2800}\u{2800}\u{2800}"),
        ("no-break spaces between letters", "a\u{a0}b\u{a0}c"),
        ("an ideographic space between letters", "ab\u{3000}cd"),
        ("two spaces in a row", "Mary  Ann"),
    ];
    for (case, name) in invisible {
        let reply = app.register(name, PASSWORD).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
            "{case}: {:?}",
            reply.body
        );
    }
}

#[rstest]
#[actix_web::test]
async fn names_are_stored_in_nfc_as_typed_and_log_in_by_their_case_mapped_form(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let registered = app.register("  Jose\u{301} Ｌｕｉｓ ", PASSWORD).await;
    assert_eq!(registered.status, StatusCode::CREATED, "{:?}", registered.body);
    assert_eq!(registered.body["name"], "José Ｌｕｉｓ", "trimmed, NFC, otherwise as typed");

    for typed in ["José Ｌｕｉｓ", "Jose\u{301} Ｌｕｉｓ", "josé luis", "JOSÉ LUIS", "ｊｏｓé ｌｕｉｓ"]
    {
        let login = app.login_json(typed, PASSWORD).await;
        assert_eq!(login.status, StatusCode::OK, "login as {typed:?}: {:?}", login.body);
        let me = app.get("/users/me", login.body["access_token"].as_str().expect("token")).await;
        assert_eq!(me.body["name"], "José Ｌｕｉｓ", "shown as stored, whatever was typed");
    }
}

/// `ß` and `SS` are not look-alikes under these rules: RFC 8265 maps case with toLowerCase (not
/// case folding, which would turn `ß` into `ss`) and TS #39 does not count `ß` as a look-alike of
/// `ss`. They are two names, as they look. `ẞ` (capital sharp s) is the capital of `ß`.
#[rstest]
#[actix_web::test]
async fn sharp_s_and_double_s_are_two_names(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else { return };
    assert_eq!(app.register("Straße", PASSWORD).await.status, StatusCode::CREATED);
    assert_eq!(app.register("STRASSE", "another password").await.status, StatusCode::CREATED);
    assert_eq!(app.register("STRAẞE", PASSWORD).await.status, StatusCode::CONFLICT, "ẞ lowercases to ß");

    for (typed, password, shown) in
        [("STRAẞE", PASSWORD, "Straße"), ("straße", PASSWORD, "Straße"), ("strasse", "another password", "STRASSE")]
    {
        let login = app.login_json(typed, password).await;
        assert_eq!(login.status, StatusCode::OK, "{typed:?}");
        let me = app.get("/users/me", login.body["access_token"].as_str().expect("token")).await;
        assert_eq!(me.body["name"], shown, "{typed:?} logs in as {shown:?}");
    }
    assert_eq!(app.login_json("strasse", PASSWORD).await.status, StatusCode::UNAUTHORIZED, "ss is not ß");
}

/// `İ` (capital I with dot) is not a look-alike of `i` or `I` under these rules: its lowercase
/// is `i` + U+0307 COMBINING DOT ABOVE (toLowerCase is not tailored to Turkish), which keeps the
/// dot, as `é` keeps its accent. `İlker` and `Ilker` are two names, as `José` and `Jose` are;
/// the dotless `ı`, though, looks like `i` and collides.
#[rstest]
#[actix_web::test]
async fn dotted_capital_i_is_a_letter_of_its_own(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else { return };
    assert_eq!(app.register("İlker", PASSWORD).await.status, StatusCode::CREATED);
    assert_eq!(app.register("Ilker", "another password").await.status, StatusCode::CREATED);
    assert_eq!(app.register("i\u{307}lker", PASSWORD).await.status, StatusCode::CONFLICT, "the lowercase of İlker");
    assert_eq!(app.register("ılker", PASSWORD).await.status, StatusCode::CONFLICT, "dotless ı looks like i");

    for (typed, password, shown) in [
        ("İLKER", PASSWORD, "İlker"),
        ("i\u{307}lker", PASSWORD, "İlker"),
        ("ilker", "another password", "Ilker"),
        ("ILKER", "another password", "Ilker"),
    ] {
        let login = app.login_json(typed, password).await;
        assert_eq!(login.status, StatusCode::OK, "{typed:?}");
        let me = app.get("/users/me", login.body["access_token"].as_str().expect("token")).await;
        assert_eq!(me.body["name"], shown, "{typed:?} logs in as {shown:?}");
    }
}

#[rstest]
#[actix_web::test]
async fn concurrent_look_alikes_register_exactly_once(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let spellings = ["kara", "k\u{430}ra", "ｋａｒａ", "KARA", "k\u{3b1}ra", "\u{39a}\u{391}R\u{391}"];
    let replies = futures_util::future::join_all(spellings.iter().map(|name| app.register(name, PASSWORD))).await;
    let statuses: Vec<StatusCode> = replies.iter().map(|reply| reply.status).collect();
    assert_eq!(statuses.iter().filter(|status| **status == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| [StatusCode::CREATED, StatusCode::CONFLICT].contains(s)), "{statuses:?}");
}

/// Rewrites the row of `placeholder` as a user stored before the name rules: `name` as it was
/// typed, keyed by its trimmed lowercase, without skeletons.
fn store_as_before_the_name_rules(app: &TestApp, placeholder: &str, name: &str) -> String {
    let mut conn = app.db();
    diesel::update(users::table.filter(users::name.eq(placeholder)))
        .set((
            users::name.eq(name),
            users::name_key.eq(name.trim().to_lowercase()),
            users::name_skeleton.eq(None::<String>),
            users::shown_skeleton.eq(None::<String>),
        ))
        .returning(users::public_id)
        .get_result(&mut conn)
        .expect("the placeholder user")
}

/// Registers the names (each with its own password), then rewrites them as stored before the
/// name rules. Returns their public ids.
async fn seed_old_names(app: &TestApp, names: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let placeholder = format!("placeholder-{}", "x".repeat(i + 1));
        assert_eq!(app.register(&placeholder, &password_of(name)).await.status, StatusCode::CREATED);
        ids.push(store_as_before_the_name_rules(app, &placeholder, name));
    }
    ids
}

fn password_of(name: &str) -> String {
    format!("password of {}", name.escape_unicode())
}

/// Old names: two that the profile refuses, a look-alike pair, a pair that is one name once
/// case-mapped (NFC and NFD), and one whose key changes (fullwidth).
const OLD_NAMES: &[&str] = &["mira\u{200b}", "𝐯𝐞𝐫𝐚", "bob", "b\u{3bf}b", "josé", "jose\u{301}", "ＺＯＥＹ"];

#[rstest]
#[actix_web::test]
async fn names_stored_before_the_rules_keep_working_after_the_backfill(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let ids = seed_old_names(&app, OLD_NAMES).await;

    let app = spawn_app_with(app.stop().await).await; // the start runs the backfill
    let legacy = backfill_names(&app.services).await.expect("backfill");
    assert_eq!(
        legacy,
        LegacyNames { refused: 2, look_alikes: 1, key_taken: vec![ids[5].clone()] },
        "what the start left as it was (the same at every start)"
    );

    for name in ["mira\u{200b}", "𝐯𝐞𝐫𝐚", "bob", "b\u{3bf}b", "josé", "ＺＯＥＹ", "zoey", "ZOEY"] {
        let stored = if name.eq_ignore_ascii_case("zoey") { "ＺＯＥＹ" } else { name };
        let login = app.login_json(name, &password_of(stored)).await;
        assert_eq!(login.status, StatusCode::OK, "{:?} logs in: {:?}", name.escape_unicode().to_string(), login.body);
        let me = app.get("/users/me", login.body["access_token"].as_str().expect("token")).await;
        assert_eq!(me.body["name"], stored, "shown as stored");
    }
    // Both halves of a pair that the rules map to one key log in as before, each with their own
    // spelling: login tries the key from before the rules first. Nothing was dropped.
    let login = app.login_json("jose\u{301}", &password_of("jose\u{301}")).await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    let me = app.get("/users/me", login.body["access_token"].as_str().expect("token")).await;
    assert_eq!(me.body["name"], "jose\u{301}", "the NFD user, not the NFC one");
    assert_eq!(app.login_json("jose\u{301}", &password_of("josé")).await.status, StatusCode::UNAUTHORIZED);
    let names: Vec<String> = users::table.select(users::name).load(&mut app.db()).expect("names");
    assert!(names.contains(&"jose\u{301}".to_string()), "the NFD user is kept: {names:?}");

    // No new name may look like an old one, whether the old one got its skeletons or not.
    for look_alike in ["mira", "vera", "VERA", "BOB", "b\u{3bf}b", "zoey", "ｚｏｅｙ", "JOSÉ"] {
        let reply = app.register(look_alike, PASSWORD).await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{look_alike:?}: {:?}", reply.body);
    }
}

#[actix_web::test]
async fn a_look_alike_can_take_up_its_name_once_the_user_it_looked_like_is_gone() {
    let app = spawn_app().await;
    let ids = seed_old_names(&app, &["bob", "b\u{3bf}b"]).await;
    let app = spawn_app_with(app.stop().await).await;
    assert_eq!(backfill_names(&app.services).await.expect("backfill").look_alikes, 1);

    let deleted = app.delete(&format!("/users/{}", ids[0]), &app.admin_token().await).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let app = spawn_app_with(app.stop().await).await;

    assert_eq!(backfill_names(&app.services).await.expect("backfill"), LegacyNames::default());
    assert_eq!(app.register("bob", PASSWORD).await.status, StatusCode::CONFLICT, "b\u{3bf}b holds the skeleton now");
}

#[actix_web::test]
async fn the_start_warns_once_with_the_count_of_names_kept_as_they_were() {
    let app = spawn_app().await;
    let ids = seed_old_names(&app, OLD_NAMES).await;
    let config = app.stop().await;

    let mut server = Command::new(env!("CARGO_BIN_EXE_library-api"))
        .env("DATABASE_URL", config.database_path())
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("MASTER_KEY", &config.master_key)
        .env("BCRYPT_COST", "4")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let stderr = server.stderr.take().expect("stderr");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let listening = line.contains("listening on");
            let _ = lines.send(line);
            if listening {
                break;
            }
        }
    });
    let mut log = Vec::new();
    while let Ok(line) = received.recv_timeout(Duration::from_secs(60)) {
        log.push(line);
    }
    server.kill().expect("SIGKILL");
    server.wait().expect("reaped");

    let warnings: Vec<&String> = log.iter().filter(|line| line.contains("from before the name rules")).collect();
    assert_eq!(warnings.len(), 1, "{log:#?}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(warnings[0].contains("4 user name(s)"), "{}", warnings[0]);
    assert!(warnings[0].contains(&ids[5]), "names the user whose name another user now holds: {}", warnings[0]);
    assert!(log.iter().any(|line| line.contains("listening on")), "{log:#?}");
}

#[actix_web::test]
async fn no_warning_when_every_name_follows_the_rules() {
    let app = spawn_app().await;
    seed_old_names(&app, &["Anna", "ｂｅｒｔ", "Jose\u{301}"]).await;
    let app = spawn_app_with(app.stop().await).await;
    assert_eq!(backfill_names(&app.services).await.expect("backfill"), LegacyNames::default());
    for (typed, stored) in [("anna", "Anna"), ("BERT", "ｂｅｒｔ"), ("josé", "Jose\u{301}")] {
        assert_eq!(app.login_json(typed, &password_of(stored)).await.status, StatusCode::OK, "{typed}");
    }
}

#[actix_web::test]
async fn an_admin_name_that_looks_like_another_users_stops_the_start() {
    let app = spawn_app().await;
    let mut conn = app.db();
    diesel::delete(users::table.filter(users::name.eq(ADMIN_NAME))).execute(&mut conn).expect("delete the admin");
    let look_alike = ADMIN_NAME.replace('o', "\u{43e}"); // Cyrillic о
    assert_eq!(app.register(&look_alike, PASSWORD).await.status, StatusCode::CREATED);
    let config = app.stop().await;

    match try_spawn_app(config).await {
        Err(StartupError::CreateAdmin(error)) => assert_eq!(error.to_string(), "that name is already registered"),
        Err(other) => panic!("unexpected start-up error: {other}"),
        Ok(_) => panic!("the start must refuse an admin name that looks like another user's"),
    }
}

#[actix_web::test]
async fn the_cli_refuses_a_look_alike_too() {
    let app = spawn_app().await;
    let config: TestConfig = app.stop().await;
    let output = Command::new(env!("CARGO_BIN_EXE_library-api"))
        .args(["user", "create", "r\u{43e}ot-admin"])
        .env("DATABASE_URL", config.database_path())
        .env("MASTER_KEY", &config.master_key)
        .env("LIBRARY_PASSWORD", PASSWORD)
        .env("BCRYPT_COST", "4")
        .output()
        .expect("the CLI runs");
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the name r\u{43e}ot-admin is already taken"), "{stderr}");
}
