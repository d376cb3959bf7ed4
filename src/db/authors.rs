//! Queries on `authors`. Reads join `users` for the creator's public id.

use super::DbConn;
use crate::domain::{AuthorFields, Page, PageStart};
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

/// One page of authors ordered by id, with what a listing needs besides the rows.
#[derive(Debug)]
pub struct PageRows {
    pub rows: Vec<AuthorWithCreator>,
    /// How many authors there are.
    pub total: i64,
    /// Whether rows follow the last one of this page.
    pub more: bool,
}

/// Page `page` of the authors, in one statement: the page with one row more than asked for
/// (to know whether another page follows), each row carrying the total count as a scalar
/// subquery. Only an empty page needs a second query for the total.
pub fn page(conn: &mut DbConn, page: &Page) -> QueryResult<PageRows> {
    // Kept by triggers (migration 9): COUNT(*) would read the whole table on every page.
    let total = row_counts::table.find("authors").select(row_counts::count);
    let query = authors::table
        .left_join(users::table)
        .select((Author::as_select(), users::public_id.nullable(), total.single_value()))
        .order(authors::id)
        .limit(page.limit + 1);
    let rows: Vec<(Author, Option<String>, Option<i64>)> = match page.start {
        // A range scan of the primary key: as fast at the millionth row as at the first.
        PageStart::After(after) => match i32::try_from(after) {
            Ok(after) => query.filter(authors::id.gt(after)).load(conn)?,
            Err(_) => Vec::new(),
        },
        PageStart::Offset(offset) => query.offset(offset).load(conn)?,
    };
    let total = match rows.first() {
        Some((_, _, Some(total))) => *total,
        _ => total.first(conn).optional()?.unwrap_or(0),
    };
    let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > page.limit;
    let rows = rows
        .into_iter()
        .take(usize::try_from(page.limit).unwrap_or(usize::MAX))
        .map(|(author, created_by, _)| (author, created_by))
        .collect();
    Ok(PageRows { rows, total, more })
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
