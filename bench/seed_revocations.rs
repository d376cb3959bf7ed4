//! Seeds a database with N live token revocations, for `bench/revocations`.
//! Usage: seed_revocations DATABASE_PATH N

use chrono::{Duration, Utc};
use library_api::db::{Backend, connect, revocations, run_migrations};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: seed_revocations DATABASE_PATH N");
    let count: usize = args.next().and_then(|n| n.parse().ok()).expect("N, a whole number");
    let pool = connect(&Backend::Sqlite(path.clone().into()), &path, 1).expect("open the database");
    let mut conn = pool.get().expect("a connection");
    run_migrations(&mut conn).expect("migrations");
    let now = Utc::now().naive_utc();
    let expires_at = now + Duration::days(1);
    let rows: Vec<_> = (0..count).map(|_| (uuid::Uuid::new_v4().to_string(), expires_at)).collect();
    revocations::insert_many(&mut conn, &rows, now).expect("insert");
    println!("seeded {count} revocations into {path}");
}
