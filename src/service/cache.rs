//! Views served from memory: `GET /authors` pages and `GET /users/me` bodies, kept as the exact
//! bytes sent (with their entity tag), so a repeated request costs no query, no JSON and no
//! time formatting. Every entry carries the generation of the table it was built from
//! ([`ChangeWatch`], in `db/`) and is used only while that generation is current: a write
//! anywhere is never answered stale past the next request on SQLite, nor past
//! 1.5 × `REVOCATION_POLL_INTERVAL` on PostgreSQL for another instance's writes (this instance's own
//! writes invalidate at once, see [`Views::wrote`]).

use crate::actors::db::Database;
use crate::db::table_versions::{self, ChangeWatch, Table};
use crate::db::{self, Backend, DbSetupError};
use crate::domain::Page;
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Bytes of `/authors` pages kept (a page of 100 authors is about 25 KB).
const AUTHOR_PAGES_BYTES: u64 = 16 << 20;
/// Bytes of `/users/me` bodies kept (about 150 bytes each).
const USER_BODIES_BYTES: u64 = 4 << 20;

/// A response body as sent, and what is derived from the same data.
#[derive(Debug)]
pub struct Rendered {
    pub body: Bytes,
    /// A strong entity tag of `body` (quoted): the same bytes give the same tag on every
    /// instance.
    pub etag: Bytes,
    /// The `Link` header value that goes with the body, if any.
    pub link: Option<Bytes>,
}

impl Rendered {
    pub fn new(body: Vec<u8>, link: Option<String>) -> Self {
        Self { etag: entity_tag(&body), body: body.into(), link: link.map(Bytes::from) }
    }
}

/// `"…"`: the first 128 bits of the body's SHA-256, base64url.
fn entity_tag(body: &[u8]) -> Bytes {
    let hash = digest(&SHA256, body);
    let mut tag = String::with_capacity(24);
    tag.push('"');
    URL_SAFE_NO_PAD.encode_string(&hash.as_ref()[..16], &mut tag);
    tag.push('"');
    tag.into()
}

/// A bounded map of rendered views of one table, each tagged with the generation it was built
/// at.
pub struct ViewCache<K> {
    table: Table,
    entries: quick_cache::sync::Cache<K, (u64, Arc<Rendered>), BodyWeight>,
}

#[derive(Clone)]
struct BodyWeight;

impl<K> quick_cache::Weighter<K, (u64, Arc<Rendered>)> for BodyWeight {
    fn weight(&self, _: &K, (_, view): &(u64, Arc<Rendered>)) -> u64 {
        // The bookkeeping around an entry counts too.
        view.body.len() as u64 + 128
    }
}

impl<K: Eq + Hash + Clone> ViewCache<K> {
    fn new(table: Table, bytes: u64, typical_entry: u64) -> Self {
        let items = usize::try_from(bytes / typical_entry).unwrap_or(1024);
        Self { table, entries: quick_cache::sync::Cache::with_weighter(items, bytes, BodyWeight) }
    }

    /// The view of `key`: from memory while the table has not changed since it was built,
    /// otherwise from `build` (and kept).
    async fn get_or_build<E, F, Fut>(&self, watch: &ChangeWatch, key: K, build: F) -> Result<Arc<Rendered>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Rendered, E>>,
    {
        // The generation is read before the database: a change committed meanwhile moves it on,
        // so a view built from older rows is never kept under a newer generation.
        let generation = watch.current(self.table);
        if let Some(generation) = generation
            && let Some((built_at, view)) = self.entries.get(&key)
            && built_at == generation
        {
            return Ok(view);
        }
        let view = Arc::new(build().await?);
        if let Some(generation) = generation {
            self.entries.insert(key, (generation, view.clone()));
        }
        Ok(view)
    }
}

/// The cached views and what tells them apart from stale ones.
pub struct Views {
    watch: ChangeWatch,
    author_pages: ViewCache<Page>,
    user_bodies: ViewCache<Uuid>,
}

impl Views {
    /// Starts watching the database behind `backend` (`name`: how to name it in errors, without
    /// credentials). On PostgreSQL this spawns the poll of the change counts (every
    /// `poll_interval`) on the current arbiter; it ends when the views are dropped.
    pub async fn start(
        db: &Database,
        backend: &Backend,
        name: &str,
        poll_interval: Duration,
    ) -> Result<Arc<Self>, DbSetupError> {
        let watch = match backend {
            Backend::Sqlite(_) => {
                let (owned_backend, owned_name) = (backend.clone(), name.to_string());
                actix_web::rt::task::spawn_blocking(move || -> Result<ChangeWatch, DbSetupError> {
                    let open = |reason: String| DbSetupError::Open { name: owned_name.clone(), reason };
                    // A connection of its own, never returned to a pool.
                    let conn = db::connect(&owned_backend, &owned_name, 1)?.get().map_err(|e| open(e.to_string()))?;
                    ChangeWatch::sqlite(conn).map_err(|e| open(format!("change watch: {e}")))
                })
                .await
                .map_err(|e| DbSetupError::Open { name: name.to_string(), reason: e.to_string() })??
            }
            Backend::Postgres(_) => {
                let initial = db.read(table_versions::read).await.map_err(|e| DbSetupError::Open {
                    name: name.to_string(),
                    reason: format!("table versions: {e}"),
                })?;
                ChangeWatch::polled(initial, poll_interval)
            }
        };
        let views = Arc::new(Self {
            author_pages: ViewCache::new(Table::Authors, AUTHOR_PAGES_BYTES, 12 << 10),
            user_bodies: ViewCache::new(Table::Users, USER_BODIES_BYTES, 300),
            watch,
        });
        if views.watch.needs_polling() {
            actix_web::rt::spawn(poll(Arc::downgrade(&views), db.clone(), poll_interval));
        }
        Ok(views)
    }

    /// This instance changed `table` (call once the write is over, whatever its outcome): every
    /// view built before is stale at once. Other instances learn of it from their poll.
    pub fn wrote(&self, table: Table) {
        self.watch.wrote(table);
    }

    /// Page `page` of the authors, from memory or from `build`.
    pub async fn author_page<E, F, Fut>(&self, page: Page, build: F) -> Result<Arc<Rendered>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Rendered, E>>,
    {
        self.author_pages.get_or_build(&self.watch, page, build).await
    }

    /// The body of user `public_id`'s own record, from memory or from `build`.
    pub async fn user_body<E, F, Fut>(&self, public_id: Uuid, build: F) -> Result<Arc<Rendered>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Rendered, E>>,
    {
        self.user_bodies.get_or_build(&self.watch, public_id, build).await
    }
}

/// Reads the change counts every `interval` until the views are gone.
async fn poll(views: Weak<Views>, db: Database, interval: Duration) {
    let mut ticks = actix_web::rt::time::interval(interval);
    loop {
        ticks.tick().await;
        let started = Instant::now();
        let versions = db.read(table_versions::read).await;
        let Some(views) = views.upgrade() else { return };
        match versions {
            Ok(versions) => views.watch.observe(versions, started),
            Err(error) => {
                log::warn!("polling table versions failed (cached views are bypassed until a poll succeeds): {error}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_tags_are_quoted_and_depend_on_every_byte() {
        let tag = entity_tag(b"{\"authors\":[],\"total\":0}");
        assert_eq!(tag.len(), 24);
        assert!(tag.starts_with(b"\"") && tag.ends_with(b"\""));
        assert_eq!(tag, entity_tag(b"{\"authors\":[],\"total\":0}"));
        assert_ne!(tag, entity_tag(b"{\"authors\":[],\"total\":1}"));
    }
}
