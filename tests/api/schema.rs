//! `src/schema.rs` must describe exactly what the migrations create, and every `down.sql` must
//! undo its `up.sql` (up → down → up).

use crate::helpers::{Backend, PgDatabase};
use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use diesel_migrations::MigrationHarness as _;
use library_api::db::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
use std::collections::BTreeMap;

#[derive(QueryableByName, Debug)]
struct ColumnInfo {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    r#type: String,
    #[diesel(sql_type = Integer)]
    notnull: i32,
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(QueryableByName)]
struct TableName {
    #[diesel(sql_type = Text)]
    name: String,
}

type Tables = BTreeMap<String, Vec<(String, String)>>;

/// Tables and `(column, type)` as written in src/schema.rs, e.g. `("created_by", "Nullable<Integer>")`.
fn declared_schema() -> Tables {
    let source = include_str!("../../src/schema.rs");
    let mut tables = Tables::new();
    let mut current: Option<String> = None;
    for line in source.lines().map(str::trim) {
        if let Some(table) = line.strip_suffix('{').and_then(|head| head.split_once(" (")).map(|(name, _)| name.trim())
        {
            current = Some(table.to_string());
            tables.insert(table.to_string(), Vec::new());
        } else if let (Some(table), Some((column, sql_type))) = (&current, line.split_once(" -> ")) {
            tables
                .get_mut(table)
                .expect("table")
                .push((column.to_string(), sql_type.trim_end_matches(',').to_string()));
        } else if line == "}" {
            current = None;
        }
    }
    tables
}

/// The same, read back from a migrated SQLite database.
fn migrated_schema(conn: &mut SqliteConnection) -> Tables {
    let names = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations' ORDER BY name",
    )
    .load::<TableName>(conn)
    .expect("tables");
    names
        .into_iter()
        .map(|table| {
            let columns = diesel::sql_query(format!("PRAGMA table_info({})", table.name))
                .load::<ColumnInfo>(conn)
                .expect("columns");
            let columns = columns
                .into_iter()
                .map(|column| {
                    let base = match column.r#type.as_str() {
                        "INTEGER" => "Integer",
                        "BIGINT" => "BigInt",
                        "TEXT" => "Text",
                        "BOOLEAN" => "Bool",
                        "TIMESTAMP" => "Timestamp",
                        "BLOB" => "Binary",
                        other => panic!("unmapped SQL type {other} in {}.{}", table.name, column.name),
                    };
                    let nullable = column.notnull == 0 && column.pk == 0;
                    (column.name, if nullable { format!("Nullable<{base}>") } else { base.to_string() })
                })
                .collect();
            (table.name, columns)
        })
        .collect()
}

fn fresh_database() -> (tempfile::TempDir, SqliteConnection) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut conn = SqliteConnection::establish(&dir.path().join("schema.db").display().to_string()).expect("open");
    conn.batch_execute("PRAGMA foreign_keys = ON").expect("pragma");
    (dir, conn)
}

#[test]
fn schema_rs_matches_the_migrated_sqlite_database() {
    let (_dir, mut conn) = fresh_database();
    conn.run_pending_migrations(SQLITE_MIGRATIONS).expect("migrate");
    assert_eq!(migrated_schema(&mut conn), declared_schema());
}

#[test]
fn every_sqlite_migration_reverts_cleanly_and_reapplies() {
    let (_dir, mut conn) = fresh_database();
    conn.run_pending_migrations(SQLITE_MIGRATIONS).expect("up");
    conn.revert_all_migrations(SQLITE_MIGRATIONS).expect("down");
    assert!(migrated_schema(&mut conn).is_empty(), "down.sql leaves tables behind");
    conn.run_pending_migrations(SQLITE_MIGRATIONS).expect("up again");
    assert_eq!(migrated_schema(&mut conn), declared_schema());
}

#[derive(QueryableByName, Debug)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
}

/// Tables and `(column, type)` of a migrated PostgreSQL database, in schema.rs's terms.
fn migrated_pg_schema(conn: &mut PgConnection) -> Tables {
    let columns = diesel::sql_query(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations' ORDER BY table_name, ordinal_position",
    )
    .load::<PgColumn>(conn)
    .expect("columns");
    let mut tables = Tables::new();
    for column in columns {
        let base = match column.data_type.as_str() {
            "integer" => "Integer",
            "bigint" => "BigInt",
            "text" => "Text",
            "boolean" => "Bool",
            "timestamp without time zone" => "Timestamp",
            "bytea" => "Binary",
            other => panic!("unmapped SQL type {other} in {}.{}", column.table_name, column.column_name),
        };
        let sql_type = if column.is_nullable == "YES" { format!("Nullable<{base}>") } else { base.to_string() };
        tables.entry(column.table_name).or_default().push((column.column_name, sql_type));
    }
    tables
}

#[test]
fn schema_rs_matches_the_migrated_postgres_database_and_its_migrations_revert() {
    if !Backend::Postgres.available() {
        return;
    }
    let database = PgDatabase::create();
    let mut conn = PgConnection::establish(&database.url).expect("connect");
    conn.run_pending_migrations(POSTGRES_MIGRATIONS).expect("up");
    assert_eq!(migrated_pg_schema(&mut conn), declared_schema(), "PostgreSQL migrations drifted from schema.rs");
    conn.revert_all_migrations(POSTGRES_MIGRATIONS).expect("down");
    assert!(migrated_pg_schema(&mut conn).is_empty(), "down.sql leaves tables behind");
    conn.run_pending_migrations(POSTGRES_MIGRATIONS).expect("up again");
    assert_eq!(migrated_pg_schema(&mut conn), declared_schema());
    assert_eq!(
        diesel::migration::MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
            .expect("sqlite")
            .len(),
        diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&POSTGRES_MIGRATIONS).expect("postgres").len(),
        "both dialects have the same migrations"
    );
}
