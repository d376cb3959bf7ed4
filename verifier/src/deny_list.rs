//! The deny list: access tokens refused before they expire. Three tables,
//! each answered with one hash lookup under a shared read lock:
//! - single tokens by `jti` (`/logout`, RFC 7009 revocation),
//! - sessions by `sid` (a login and every token issued from it),
//! - subjects by `sub`: every token issued before a cutoff (log out everywhere, a role change,
//!   deletion).
//!
//! Pure data. Whoever holds the [`DenyListWriter`] (in the issuer, the revocations actor, which
//! adds each revocation only once it is stored; in a verifier, the revocation follower) is its
//! only writer; everyone else holds the [`DenyList`] and can only read it.

use crate::claims::{AccessClaims, Subject};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use uuid::Uuid;

/// Every token of a subject issued before `valid_after` (unix seconds) is refused, until
/// `keep_until`, when every such token has expired anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectCutoff {
    /// Tokens with an earlier `iat` are refused.
    pub valid_after: i64,
    /// When the cutoff stops mattering (every older token has expired by then).
    pub keep_until: i64,
}

impl SubjectCutoff {
    /// Two cutoffs of one subject combined: the later cutoff, kept for the longer time. The
    /// order in which revocations arrive (or instances learn of them) never lowers a cutoff.
    pub fn merge(self, other: Self) -> Self {
        Self { valid_after: self.valid_after.max(other.valid_after), keep_until: self.keep_until.max(other.keep_until) }
    }
}

/// Why a token that verified is refused anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The token itself was revoked.
    Token,
    /// Its session was revoked (logout, refresh token reuse, RFC 7009 on a refresh token).
    Session,
    /// It was issued before its subject's cutoff.
    Subject,
}

impl Denial {
    /// A short name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Session => "session",
            Self::Subject => "subject",
        }
    }
}

/// A subject-wide revocation as stored: the subject's cutoff (merged with any earlier one) and
/// the sessions revoked with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRevocation {
    /// Whose tokens are refused.
    pub subject: Subject,
    /// Which of them, and for how long.
    pub cutoff: SubjectCutoff,
    /// Sessions revoked in the same change.
    pub sessions: Vec<Uuid>,
    /// Until when the sessions' tokens matter.
    pub sessions_keep_until: i64,
}

/// Every entry of a deny list, as a file keeps it: what [`DenyList::entries`] copies out and
/// [`DenyList::from_entries`] loads back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenyListEntries {
    /// `(jti, keep_until)` of revoked tokens.
    pub tokens: Vec<(Uuid, i64)>,
    /// `(sid, keep_until)` of revoked sessions.
    pub sessions: Vec<(Uuid, i64)>,
    /// Subject cutoffs.
    pub subjects: Vec<(Subject, SubjectCutoff)>,
}

#[derive(Debug, Default)]
struct Denied {
    /// jti → unix time after which the token is refused anyway.
    tokens: HashMap<Uuid, i64>,
    /// sid → unix time after which every token of the session is refused anyway.
    sessions: HashMap<Uuid, i64>,
    subjects: HashMap<Subject, SubjectCutoff>,
}

/// The deny list, for reading. Interior locking: readers (every request) share a read lock;
/// the writer takes the write lock briefly to add entries.
#[derive(Debug)]
pub struct DenyList {
    denied: RwLock<Denied>,
}

/// The one handle that changes a [`DenyList`]. Not `Clone`: there is one writer, so a prune
/// (copy, then swap) never loses an entry added meanwhile.
#[derive(Debug)]
pub struct DenyListWriter {
    list: Arc<DenyList>,
}

impl DenyList {
    /// A deny list holding what was stored (revoked tokens and sessions with the time they
    /// matter until, and subject cutoffs, merged when a subject appears twice), and its writer.
    pub fn from_entries(
        tokens: impl IntoIterator<Item = (Uuid, i64)>,
        sessions: impl IntoIterator<Item = (Uuid, i64)>,
        subjects: impl IntoIterator<Item = (Subject, SubjectCutoff)>,
    ) -> (Arc<Self>, DenyListWriter) {
        let mut denied = Denied {
            tokens: tokens.into_iter().collect(),
            sessions: sessions.into_iter().collect(),
            ..Denied::default()
        };
        for (subject, cutoff) in subjects {
            merge_subject(&mut denied.subjects, subject, cutoff);
        }
        denied.tokens.shrink_to_fit();
        let list = Arc::new(Self { denied: RwLock::new(denied) });
        (list.clone(), DenyListWriter { list })
    }

    /// An empty deny list and its writer.
    pub fn new() -> (Arc<Self>, DenyListWriter) {
        Self::from_entries([], [], [])
    }

    fn read(&self) -> RwLockReadGuard<'_, Denied> {
        self.denied.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Denied> {
        self.denied.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether (and why) a token with these claims is refused. O(1).
    pub fn check(&self, claims: &AccessClaims) -> Option<Denial> {
        let denied = self.read();
        if denied.tokens.contains_key(&claims.jti) {
            Some(Denial::Token)
        } else if claims.sid.is_some_and(|sid| denied.sessions.contains_key(&sid)) {
            Some(Denial::Session)
        } else if denied.subjects.get(&claims.sub).is_some_and(|cutoff| claims.iat < cutoff.valid_after) {
            Some(Denial::Subject)
        } else {
            None
        }
    }

    /// Refuses token `jti` until `keep_until`.
    fn deny_token(&self, jti: Uuid, keep_until: i64) {
        let mut denied = self.write();
        let until = denied.tokens.entry(jti).or_insert(keep_until);
        *until = (*until).max(keep_until);
    }

    /// Refuses every token of the sessions `sids` until `keep_until`.
    fn deny_sessions(&self, sids: impl IntoIterator<Item = Uuid>, keep_until: i64) {
        let mut denied = self.write();
        for sid in sids {
            let until = denied.sessions.entry(sid).or_insert(keep_until);
            *until = (*until).max(keep_until);
        }
    }

    /// Refuses the subject's tokens issued before the cutoff, merged with any earlier one.
    fn deny_subject(&self, subject: Subject, cutoff: SubjectCutoff) {
        merge_subject(&mut self.write().subjects, subject, cutoff);
    }

    /// The subject's cutoff in force, if any.
    #[cfg(test)]
    fn subject_cutoff(&self, subject: &Subject) -> Option<SubjectCutoff> {
        self.read().subjects.get(subject).copied()
    }

    /// Entries held: revoked tokens, sessions and subjects.
    pub fn len(&self) -> usize {
        let denied = self.read();
        denied.tokens.len() + denied.sessions.len() + denied.subjects.len()
    }

    /// Whether nothing is denied.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held by the three tables, for the README's memory figure and for metrics.
    /// hashbrown keeps a power-of-two number of buckets at most 7/8 full, each one entry plus a
    /// control byte.
    pub fn heap_bytes(&self) -> usize {
        fn table<K, V>(map: &HashMap<K, V>) -> usize {
            let capacity = map.capacity();
            if capacity == 0 {
                return 0;
            }
            let buckets =
                if capacity < 8 { (capacity + 1).next_power_of_two() } else { (capacity * 8 / 7).next_power_of_two() };
            buckets * (std::mem::size_of::<(K, V)>() + 1) + 16
        }
        let denied = self.read();
        table(&denied.tokens) + table(&denied.sessions) + table(&denied.subjects)
    }

    /// A copy of every entry, for saving to a file (see [`DenyListEntries`]).
    pub fn entries(&self) -> DenyListEntries {
        let denied = self.read();
        DenyListEntries {
            tokens: denied.tokens.iter().map(|(jti, until)| (*jti, *until)).collect(),
            sessions: denied.sessions.iter().map(|(sid, until)| (*sid, *until)).collect(),
            subjects: denied.subjects.iter().map(|(subject, cutoff)| (subject.clone(), *cutoff)).collect(),
        }
    }

    /// Drops entries that no longer matter at `now` (a token is accepted up to and including
    /// its `keep_until` second, so those stay). The pruned tables are built under the read
    /// lock, which verifications share, and swapped in under a brief write lock: the per-request
    /// check never waits for a pass over a large list. Only the revocations actor calls this,
    /// and it adds nothing meanwhile.
    fn prune(&self, now: i64) {
        let pruned = {
            let denied = self.read();
            Denied {
                tokens: denied.tokens.iter().filter(|(_, until)| **until >= now).map(|(k, v)| (*k, *v)).collect(),
                sessions: denied.sessions.iter().filter(|(_, until)| **until >= now).map(|(k, v)| (*k, *v)).collect(),
                subjects: denied
                    .subjects
                    .iter()
                    .filter(|(_, cutoff)| cutoff.keep_until >= now)
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
            }
        };
        let old = std::mem::replace(&mut *self.write(), pruned);
        drop(old); // freed outside the lock
    }
}

impl DenyListWriter {
    /// Refuses token `jti` until `keep_until`.
    pub fn deny_token(&self, jti: Uuid, keep_until: i64) {
        self.list.deny_token(jti, keep_until);
    }

    /// Refuses every token of the sessions `sids` until `keep_until`.
    pub fn deny_sessions(&self, sids: impl IntoIterator<Item = Uuid>, keep_until: i64) {
        self.list.deny_sessions(sids, keep_until);
    }

    /// Refuses the subject's tokens issued before the cutoff, merged with any earlier one.
    pub fn deny_subject(&self, subject: Subject, cutoff: SubjectCutoff) {
        self.list.deny_subject(subject, cutoff);
    }

    /// Adds a stored subject revocation: the subject's cutoff and its revoked sessions.
    pub fn deny_revocation(&self, revocation: SubjectRevocation) {
        self.list.deny_subject(revocation.subject, revocation.cutoff);
        self.list.deny_sessions(revocation.sessions, revocation.sessions_keep_until);
    }

    /// Drops entries that no longer matter at `now` (see [`DenyList`]'s pruning).
    pub fn prune(&self, now: i64) {
        self.list.prune(now);
    }
}

fn merge_subject(subjects: &mut HashMap<Subject, SubjectCutoff>, subject: Subject, cutoff: SubjectCutoff) {
    let merged = subjects.get(&subject).map_or(cutoff, |known| known.merge(cutoff));
    subjects.insert(subject, merged);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::claims_at;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_fresh_list_denies_nothing() {
        let (list, _) = DenyList::new();
        assert_eq!(list.check(&claims_at(NOW)), None);
        assert!(list.is_empty());
        assert_eq!(list.heap_bytes(), 0);
    }

    #[test]
    fn each_table_denies_its_own_tokens_and_no_others() {
        let (list, writer) = DenyList::new();
        let (by_jti, by_sid, by_sub, innocent) = (claims_at(NOW), claims_at(NOW), claims_at(NOW), claims_at(NOW));
        writer.deny_token(by_jti.jti, NOW + 60);
        writer.deny_sessions(by_sid.sid, NOW + 60);
        writer.deny_subject(by_sub.sub.clone(), SubjectCutoff { valid_after: NOW + 1, keep_until: NOW + 60 });
        assert_eq!(list.check(&by_jti), Some(Denial::Token));
        assert_eq!(list.check(&by_sid), Some(Denial::Session));
        assert_eq!(list.check(&by_sub), Some(Denial::Subject));
        assert_eq!(list.check(&innocent), None);
        assert_eq!(list.len(), 3);
    }

    #[test]
    fn a_subject_cutoff_spares_tokens_issued_at_or_after_it() {
        let (list, writer) = DenyList::new();
        let old = claims_at(NOW - 1);
        let new = AccessClaims { sub: old.sub.clone(), ..claims_at(NOW) };
        writer.deny_subject(old.sub.clone(), SubjectCutoff { valid_after: NOW, keep_until: NOW + 60 });
        assert_eq!(list.check(&old), Some(Denial::Subject));
        assert_eq!(list.check(&new), None, "issued at the cutoff second: allowed");
    }

    #[test]
    fn cutoffs_merge_to_the_later_cutoff_whatever_the_order() {
        let earlier = SubjectCutoff { valid_after: NOW, keep_until: NOW + 100 };
        let later = SubjectCutoff { valid_after: NOW + 10, keep_until: NOW + 50 };
        let merged = SubjectCutoff { valid_after: NOW + 10, keep_until: NOW + 100 };
        assert_eq!(earlier.merge(later), merged);
        assert_eq!(later.merge(earlier), merged);

        let subject = claims_at(NOW).sub;
        let (list, writer) = DenyList::new();
        writer.deny_subject(subject.clone(), later);
        writer.deny_subject(subject.clone(), earlier);
        assert_eq!(list.subject_cutoff(&subject), Some(merged), "an older revocation arriving late lowers nothing");
        let (loaded, _) = DenyList::from_entries([], [], [(subject.clone(), later), (subject.clone(), earlier)]);
        assert_eq!(loaded.subject_cutoff(&subject), Some(merged), "loading merges the same way");
    }

    #[test]
    fn pruning_keeps_entries_until_their_last_second() {
        let (list, writer) = DenyList::new();
        let (token, session, subject) = (claims_at(NOW - 10), claims_at(NOW - 10), claims_at(NOW - 10));
        writer.deny_token(token.jti, NOW);
        writer.deny_sessions(session.sid, NOW);
        writer.deny_subject(subject.sub.clone(), SubjectCutoff { valid_after: NOW, keep_until: NOW });
        writer.prune(NOW);
        assert_eq!(list.len(), 3, "still matter at their keep_until second");
        writer.prune(NOW + 1);
        assert!(list.is_empty());
        assert_eq!(list.check(&token), None);
    }

    #[test]
    fn a_repeated_revocation_never_shortens_how_long_it_is_kept() {
        let (list, writer) = DenyList::new();
        let claims = claims_at(NOW);
        writer.deny_token(claims.jti, NOW + 100);
        writer.deny_token(claims.jti, NOW + 10);
        writer.deny_sessions(claims.sid, NOW + 100);
        writer.deny_sessions(claims.sid, NOW + 10);
        writer.prune(NOW + 50);
        assert_eq!(list.check(&claims), Some(Denial::Token));
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn heap_bytes_grow_with_entries() {
        let (list, writer) = DenyList::new();
        for _ in 0..1000 {
            writer.deny_token(Uuid::new_v4(), NOW);
        }
        let bytes = list.heap_bytes();
        assert!((1000 * 24..1000 * 80).contains(&bytes), "{bytes} bytes for 1000 tokens");
    }
}
