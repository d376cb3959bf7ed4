//! Whether the service can do its work (`/readyz`), and what it reports about itself
//! (`/metrics`).

use super::{Failure, Services};
use std::time::Duration;

/// How long readiness waits for the database.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// Ready when the database answers reads and writes in time and the key ring has a key that
/// signs. The write is empty: it proves that writes get through (on SQLite, that the writer
/// thread is alive and can begin and commit a transaction) without changing anything.
pub async fn readiness(services: &Services) -> Result<(), Failure> {
    let database = async {
        services.db.read(crate::db::ping).await?;
        services.db.write(|_| Ok(())).await
    };
    match actix_web::rt::time::timeout(READINESS_TIMEOUT, database).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(Failure::Unavailable(format!("readiness: {error}"))),
        Err(_) => return Err(Failure::Unavailable("readiness: database did not answer in time".into())),
    }
    if services.key_ring.snapshot().current.is_none() {
        return Err(Failure::Unavailable("readiness: no current signing key".into()));
    }
    Ok(())
}

/// The metrics in Prometheus text format. Gauges of state owned elsewhere (key ring, deny
/// list, connection pool) are read now, so they are never stale.
pub fn metrics_text(services: &Services) -> String {
    let metrics = &services.metrics;
    let snapshot = services.key_ring.snapshot();
    for key_state in ["next", "current", "retired"] {
        let count = snapshot.keys.iter().filter(|key| key.state.as_str() == key_state).count();
        metrics.key_ring_keys.with_label_values(&[key_state]).set(count as i64);
    }
    let now = services.clock.now();
    let until = snapshot.next_activation.map_or(0, |activation| (activation - now).num_seconds().max(0));
    metrics.key_ring_seconds_until_rotation.set(until);
    metrics.deny_list_entries.set(services.verifier.deny_list().len() as i64);
    let pool = services.pool.state();
    metrics.db_pool_connections.with_label_values(&["idle"]).set(i64::from(pool.idle_connections));
    metrics.db_pool_connections.with_label_values(&["in_use"]).set(i64::from(pool.connections - pool.idle_connections));
    metrics.render()
}
