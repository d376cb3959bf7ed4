//! Queries on `signing_keys`. Private keys arrive here already sealed by the master key.

use super::DbConn;
use crate::schema::signing_keys;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    /// `next`, `current` or `retired`.
    pub state: String,
    pub algorithm: String,
    /// PKCS#8 DER sealed by [`crate::master_key::MasterKey::seal`].
    pub private_key_enc: Vec<u8>,
    pub created_at: NaiveDateTime,
    pub activates_at: NaiveDateTime,
    pub retires_at: Option<NaiveDateTime>,
}

/// How many keys are stored.
pub fn count(conn: &mut DbConn) -> QueryResult<i64> {
    signing_keys::table.count().get_result(conn)
}

/// Every stored key, oldest first.
pub fn list(conn: &mut DbConn) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table
        .order((signing_keys::created_at, signing_keys::activates_at, signing_keys::kid))
        .select(SigningKeyRow::as_select())
        .load(conn)
}

/// One change of the ring, applied atomically.
#[derive(Debug, Default)]
pub struct RingUpdate {
    /// `(kid, state it must still be in)`.
    pub remove: Vec<(String, String)>,
    pub promotion: Option<PromotionRow>,
    pub insert: Vec<SigningKeyRow>,
}

/// `promote` (a next key) starts signing at `now` until `retires_at`; `retire` (the current
/// key, if any) stops signing at `now`.
#[derive(Debug)]
pub struct PromotionRow {
    pub retire: Option<String>,
    pub promote: String,
    pub now: NaiveDateTime,
    pub retires_at: NaiveDateTime,
}

/// Applies `update` in one write transaction. Each state change names the state it expects, so a
/// ring changed meanwhile by someone else (another instance, the CLI) is not overwritten: the
/// transaction rolls back with `Error::RollbackTransaction`.
pub fn apply(conn: &mut DbConn, update: &RingUpdate) -> QueryResult<()> {
    super::write_transaction(conn, |conn| {
        for (kid, state) in &update.remove {
            let removed =
                diesel::delete(signing_keys::table.find(kid).filter(signing_keys::state.eq(state))).execute(conn)?;
            expect_one(removed)?;
        }
        if let Some(promotion) = &update.promotion {
            if let Some(retire) = &promotion.retire {
                let retired =
                    diesel::update(signing_keys::table.find(retire).filter(signing_keys::state.eq("current")))
                        .set((signing_keys::state.eq("retired"), signing_keys::retires_at.eq(promotion.now)))
                        .execute(conn)?;
                expect_one(retired)?;
            }
            let promoted =
                diesel::update(signing_keys::table.find(&promotion.promote).filter(signing_keys::state.eq("next")))
                    .set((
                        signing_keys::state.eq("current"),
                        signing_keys::activates_at.eq(promotion.now),
                        signing_keys::retires_at.eq(promotion.retires_at),
                    ))
                    .execute(conn)?;
            expect_one(promoted)?;
        }
        super::on_backend!(conn, |conn| diesel::insert_into(signing_keys::table).values(&update.insert).execute(conn))?;
        Ok(())
    })
}

fn expect_one(rows: usize) -> QueryResult<()> {
    if rows == 1 { Ok(()) } else { Err(diesel::result::Error::RollbackTransaction) }
}

/// Replaces the sealed private key of each `(kid, sealed)` in one transaction (master key
/// rotation). Rolls back (`Error::RollbackTransaction`) unless `sealed` covers exactly the keys
/// stored now: a key added meanwhile would stay sealed under the old master key.
pub fn replace_sealed(conn: &mut DbConn, sealed: &[(String, Vec<u8>)]) -> QueryResult<()> {
    super::write_transaction(conn, |conn| {
        let mut stored: Vec<String> = signing_keys::table.select(signing_keys::kid).load(conn)?;
        let mut replaced: Vec<String> = sealed.iter().map(|(kid, _)| kid.clone()).collect();
        stored.sort_unstable();
        replaced.sort_unstable();
        if stored != replaced {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        for (kid, blob) in sealed {
            let updated = diesel::update(signing_keys::table.find(kid))
                .set(signing_keys::private_key_enc.eq(blob))
                .execute(conn)?;
            expect_one(updated)?;
        }
        Ok(())
    })
}
