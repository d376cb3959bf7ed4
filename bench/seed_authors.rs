//! Seeds a database with a user and N authors, for `bench/run`: a SQLite file, or PostgreSQL when
//! the first argument is a `postgres://` URL.
//! Usage: seed_authors DATABASE_PATH|POSTGRES_URL N

use chrono::Utc;
use diesel::prelude::*;
use library_api::db::{Backend, connect, run_migrations, users};
use library_api::schema::authors;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: seed_authors DATABASE_PATH|POSTGRES_URL N");
    let count: usize = args.next().and_then(|n| n.parse().ok()).expect("N, a whole number");
    let backend = if path.starts_with("postgres://") || path.starts_with("postgresql://") {
        Backend::Postgres(path)
    } else {
        Backend::Sqlite(path.into())
    };
    let pool = connect(&backend, "the bench database", 1).expect("open the database");
    let mut conn = pool.get().expect("a connection");
    run_migrations(&mut conn).expect("migrations");
    let now = Utc::now().naive_utc();
    let hash = bcrypt::hash("seed user password", 4).expect("hash");
    let creator = users::create(&mut conn, "bench-seed", "bench-seed", &hash, false, now).expect("seed user");
    library_api::db::write_transaction(&mut conn, |conn| -> QueryResult<()> {
        // SQLite binds at most 32,766 parameters per statement: 4,000 rows of 7.
        for start in (0..count).step_by(4_000) {
            let rows: Vec<_> = (start..count.min(start + 4_000))
                .map(|i| {
                    (
                        authors::name.eq(format!("Author {i}")),
                        authors::book.eq(format!("Book {i}")),
                        authors::country.eq("UK"),
                        authors::booker_prize.eq(i % 7 == 0),
                        authors::created_by.eq(Some(creator.id)),
                        authors::created_at.eq(now),
                        authors::updated_at.eq(now),
                    )
                })
                .collect();
            match conn {
                library_api::db::DbConn::Sqlite(conn) => {
                    diesel::insert_into(authors::table).values(&rows).execute(conn)?
                }
                library_api::db::DbConn::Postgres(conn) => {
                    diesel::insert_into(authors::table).values(&rows).execute(conn)?
                }
            };
        }
        Ok(())
    })
    .expect("insert");
    println!("seeded {count} authors into {backend:?}");
}
