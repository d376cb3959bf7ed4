//! Authors: anyone authenticated may read and create; only the creator or an admin may change
//! or delete one ([`may_change`]).

use super::cache::Rendered;
use super::users::{UserError, token_user};
use super::{Failure, Services, failures_pass_through};
use crate::db::authors::{self, Author, AuthorWithCreator, PageRows};
use crate::db::table_versions::Table;
use crate::db::users::User;
use crate::db::{DbConn, UniqueField, unique_violation};
use crate::domain::{AuthorFields, Page};
use crate::tokens::AccessClaims;
use std::sync::Arc;

/// Why an author operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AuthorError {
    #[error("no such author")]
    NotFound,
    #[error("only the creator or an admin may change this author")]
    NotAllowed,
    /// The token is valid but its user no longer exists.
    #[error("the token's user no longer exists")]
    NotACredential,
    /// A service token: only users create and change authors.
    #[error("a service token cannot act as a user")]
    NotAUser,
    /// An author with that name or book exists.
    #[error("{0:?} is taken")]
    Taken(UniqueField),
    #[error(transparent)]
    Failure(#[from] Failure),
}
failures_pass_through!(AuthorError);

impl From<diesel::result::Error> for AuthorError {
    fn from(error: diesel::result::Error) -> Self {
        match (unique_violation(&error), error) {
            (Some(field), _) => Self::Taken(field),
            (None, diesel::result::Error::NotFound) => Self::NotFound,
            (None, error) => Self::Failure(error.into()),
        }
    }
}

impl From<UserError> for AuthorError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::NotACredential | UserError::NotFound => Self::NotACredential,
            UserError::NotAUser => Self::NotAUser,
            UserError::NameTaken | UserError::LastAdmin | UserError::Throttled { .. } => {
                Self::Failure(Failure::Internal("a user lookup reported a change error".into()))
            }
            UserError::Failure(failure) => Self::Failure(failure),
        }
    }
}

/// The rule of who may change or delete an author: its creator, or an admin.
pub fn may_change(author: &Author, caller: &User, claims: &AccessClaims) -> bool {
    author.created_by == Some(caller.id) || claims.is_admin()
}

/// Author `id`, checked that the caller may change it.
fn find_changeable(conn: &mut DbConn, id: i32, claims: &AccessClaims) -> Result<Author, AuthorError> {
    // Who asks comes first: a service token is refused whether or not the author exists.
    let caller = token_user(conn, &claims.sub)?;
    let (author, _) = authors::find(conn, id)?.ok_or(AuthorError::NotFound)?;
    if may_change(&author, &caller, claims) { Ok(author) } else { Err(AuthorError::NotAllowed) }
}

/// Creates an author on behalf of the token's user.
pub async fn create(
    services: &Services,
    claims: AccessClaims,
    fields: AuthorFields,
) -> Result<AuthorWithCreator, AuthorError> {
    let now = services.clock.now().naive_utc();
    // Whatever the outcome: a write that timed out here may still have committed.
    let created = services
        .db
        .transaction(move |conn| -> Result<_, AuthorError> {
            let creator = token_user(conn, &claims.sub)?;
            let author = authors::insert(conn, &fields, creator.id, now)?;
            Ok((author, Some(creator.public_id)))
        })
        .await;
    services.views.wrote(Table::Authors);
    created
}

/// One page of authors ordered by id, as `render` turns it into a response body: from memory
/// while no author changed since it was rendered (see [`super::cache`]).
pub async fn page<R>(services: &Services, page: Page, render: R) -> Result<Arc<Rendered>, AuthorError>
where
    R: FnOnce(&Page, PageRows) -> Result<Rendered, Failure>,
{
    services
        .views
        .author_page(page, || async move {
            let rows = services.db.read(move |conn| authors::page(conn, &page)).await?;
            Ok(render(&page, rows)?)
        })
        .await
}

/// Author `id`.
pub async fn get(services: &Services, id: i32) -> Result<AuthorWithCreator, AuthorError> {
    services.db.read(move |conn| authors::find(conn, id)).await?.ok_or(AuthorError::NotFound)
}

/// Replaces author `id`'s fields, if the caller may change it.
pub async fn update(
    services: &Services,
    claims: AccessClaims,
    id: i32,
    fields: AuthorFields,
) -> Result<AuthorWithCreator, AuthorError> {
    let now = services.clock.now().naive_utc();
    let updated = services
        .db
        .transaction(move |conn| -> Result<_, AuthorError> {
            find_changeable(conn, id, &claims)?;
            authors::update(conn, id, &fields, now)?;
            authors::find(conn, id)?.ok_or(AuthorError::NotFound)
        })
        .await;
    services.views.wrote(Table::Authors);
    updated
}

/// Deletes author `id`, if the caller may change it.
pub async fn delete(services: &Services, claims: AccessClaims, id: i32) -> Result<(), AuthorError> {
    let deleted = services
        .db
        .transaction(move |conn| -> Result<_, AuthorError> {
            find_changeable(conn, id, &claims)?;
            authors::delete(conn, id)?;
            Ok(())
        })
        .await;
    services.views.wrote(Table::Authors);
    deleted
}
