//! Queries on `authors`. Reads join `users` for the creator's public id.

use super::DbConn;
use crate::domain::AuthorFields;
use crate::schema::{authors, row_counts, users};
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = authors)]
pub struct Author {
    pub id: i32,
    pub name: String,
    pub book: String,
    pub country: String,
    pub booker_prize: bool,
    pub created_by: Option<i32>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// An author with the public id of the user who created it (`None` once that user is deleted).
pub type AuthorWithCreator = (Author, Option<String>);

pub fn find(conn: &mut DbConn, id: i32) -> QueryResult<Option<AuthorWithCreator>> {
    authors::table
        .left_join(users::table)
        .select((Author::as_select(), users::public_id.nullable()))
        .filter(authors::id.eq(id))
        .first(conn)
        .optional()
}

/// Inserts an author created by user `created_by` (a `users.id`).
pub fn insert(conn: &mut DbConn, fields: &AuthorFields, created_by: i32, now: NaiveDateTime) -> QueryResult<Author> {
    let values = (fields, authors::created_by.eq(created_by), authors::created_at.eq(now), authors::updated_at.eq(now));
    super::on_backend!(conn, |conn| diesel::insert_into(authors::table)
        .values(values)
        .returning(Author::as_returning())
        .get_result(conn))
}

/// One page of authors ordered by id, and the total count.
pub fn page(conn: &mut DbConn, limit: i64, offset: i64) -> QueryResult<(Vec<AuthorWithCreator>, i64)> {
    conn.transaction(|conn| {
        let rows = authors::table
            .left_join(users::table)
            .select((Author::as_select(), users::public_id.nullable()))
            .order(authors::id)
            .limit(limit)
            .offset(offset)
            .load(conn)?;
        // Kept by triggers (migration 9): COUNT(*) would read the whole table on every page.
        let total = row_counts::table.find("authors").select(row_counts::count).first(conn)?;
        Ok((rows, total))
    })
}

pub fn update(conn: &mut DbConn, id: i32, fields: &AuthorFields, now: NaiveDateTime) -> QueryResult<Author> {
    super::on_backend!(conn, |conn| diesel::update(authors::table.find(id))
        .set((fields, authors::updated_at.eq(now)))
        .returning(Author::as_returning())
        .get_result(conn))
}

pub fn delete(conn: &mut DbConn, id: i32) -> QueryResult<usize> {
    diesel::delete(authors::table.find(id)).execute(conn)
}
