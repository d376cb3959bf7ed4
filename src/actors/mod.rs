//! The actors that own the service's state. Handlers talk to them through the small handles
//! defined beside each actor; hot paths read published snapshots instead of queueing on a mailbox.

pub mod db;
pub mod key_ring;
pub mod passwords;
pub mod revocations;
