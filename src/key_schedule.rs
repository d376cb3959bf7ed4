//! The key ring's schedule (API.md "Key ring lifecycle"), as pure functions of the stored keys
//! and the time. No I/O: the `KeyRing` actor and the `keys` commands carry the plans out.
//!
//! `next` (published, not signing) → `current` (signs) → `retired` (published, verifies only)
//! → removed.
//!
//! The guarantee behind it: a verifier that caches the JWKS for the advertised `max-age` never
//! meets a token whose `kid` it has not seen. It holds because
//! - every key is published at least `2 × max_age_ceiling` before it may sign, so a JWKS fetched
//!   before a key existed has expired from every cache by the time the key signs;
//! - `max-age` never exceeds the time until the next key starts signing, minus a safety margin;
//! - a retired key stays published until every token it signed has expired (TTL + leeway).
//!
//! Only an emergency deletion of the current key breaks the first rule (nothing else could sign).

use chrono::{DateTime, Duration, Utc};
use std::fmt;

/// Longest `max-age` the JWKS ever advertises.
pub const MAX_AGE_CEILING: Duration = Duration::hours(1);
/// How far before the next key starts signing caches must have expired (clock skew, latency).
pub const SAFETY_MARGIN: Duration = Duration::seconds(30);
/// Extra time a retired key stays published: a change made elsewhere (the `keys rotate`
/// command) reaches a running service at its next tick, and the old key signs until then.
pub const PROPAGATION_SLACK: Duration = Duration::minutes(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Next,
    Current,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Retired => "retired",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "next" => Some(Self::Next),
            "current" => Some(Self::Current),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key's place in the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTimes {
    pub kid: String,
    pub state: KeyState,
    /// When it was made, and so first published.
    pub created_at: DateTime<Utc>,
    /// When it started (current, retired) or is due to start (next) signing.
    pub activates_at: DateTime<Utc>,
    /// When it is due to stop (current) or stopped (retired) signing; `None` for next.
    pub retires_at: Option<DateTime<Utc>>,
}

/// The timing rules, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct KeyPolicy {
    /// How long a key signs before the next takes over (KEY_ROTATION_INTERVAL).
    pub rotation_interval: Duration,
    /// Access token lifetime plus the verification leeway: how long a retired key must stay.
    pub token_lifetime: Duration,
}

impl KeyPolicy {
    /// The longest JWKS `max-age`: an hour, or a quarter of a short rotation interval.
    pub fn max_age_ceiling(&self) -> Duration {
        MAX_AGE_CEILING.min(self.rotation_interval / 4)
    }

    /// How long a key must be published before it may sign.
    pub fn min_publication(&self) -> Duration {
        self.max_age_ceiling() * 2
    }

    /// When a key that stopped signing at `retired_at` leaves the JWKS.
    pub fn removal_time(&self, retired_at: DateTime<Utc>) -> DateTime<Utc> {
        retired_at + self.token_lifetime + PROPAGATION_SLACK
    }

    /// When the current key is due to retire.
    fn retirement_of(&self, current: &KeyTimes) -> DateTime<Utc> {
        current.retires_at.unwrap_or(current.activates_at + self.rotation_interval)
    }

    /// When `next` takes over: at the current key's retirement, but never before `next` has
    /// been published long enough.
    pub fn activation_of(&self, current: Option<&KeyTimes>, next: &KeyTimes) -> DateTime<Utc> {
        let earliest = next.created_at + self.min_publication();
        current.map_or(earliest, |current| self.retirement_of(current).max(earliest))
    }

    /// The JWKS `max-age` at `now`, in whole seconds.
    pub fn jwks_max_age(&self, next_activation: Option<DateTime<Utc>>, now: DateTime<Utc>) -> i64 {
        let ceiling = self.max_age_ceiling();
        let allowed = next_activation.map_or(ceiling, |activation| activation - now - SAFETY_MARGIN);
        allowed.clamp(Duration::zero(), ceiling).num_seconds()
    }
}

/// When the next key will start signing, if there is one.
pub fn next_activation(keys: &[KeyTimes], policy: &KeyPolicy) -> Option<DateTime<Utc>> {
    let next = keys.iter().find(|key| key.state == KeyState::Next)?;
    Some(policy.activation_of(find(keys, KeyState::Current), next))
}

fn find(keys: &[KeyTimes], state: KeyState) -> Option<&KeyTimes> {
    keys.iter().find(|key| key.state == state)
}

/// `next → current` now, and the current key (if any) `→ retired` now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    pub retire: Option<String>,
    pub promote: String,
}

/// What the ring must change now. Empty when nothing is due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Keys to delete, with the state they must still be in: retired ones past their removal
    /// time, or one deleted by an admin.
    pub remove: Vec<(String, KeyState)>,
    pub promote: Option<Promotion>,
    /// Make a key that signs from now (first start only).
    pub create_current: bool,
    /// Make a next key that starts signing at this time.
    pub create_next: Option<DateTime<Utc>>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.promote.is_none() && !self.create_current && self.create_next.is_none()
    }
}

/// Why a forced rotation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationRefused {
    #[error(
        "the next key was published too recently; verifiers may not have it yet (rotation possible from {earliest})"
    )]
    NextTooYoung { earliest: DateTime<Utc>, wait: Duration },
}

/// What is due at `now`: removals, a scheduled rotation, missing keys.
pub fn plan(keys: &[KeyTimes], policy: &KeyPolicy, now: DateTime<Utc>) -> Plan {
    let remove = keys
        .iter()
        .filter(|key| key.state == KeyState::Retired)
        .filter(|key| policy.removal_time(key.retires_at.unwrap_or(key.activates_at)) <= now)
        .map(|key| (key.kid.clone(), key.state))
        .collect();
    let mut plan = Plan { remove, ..Plan::default() };
    match (find(keys, KeyState::Current), find(keys, KeyState::Next)) {
        (None, None) => {
            plan.create_current = true;
            plan.create_next = Some(now + policy.rotation_interval);
        }
        // Only after an emergency deletion of the current key: something must sign.
        (None, Some(next)) => promote(&mut plan, None, next, policy, now),
        (Some(current), None) => {
            plan.create_next = Some(policy.retirement_of(current).max(now + policy.min_publication()));
        }
        (Some(current), Some(next)) if policy.activation_of(Some(current), next) <= now => {
            promote(&mut plan, Some(current), next, policy, now);
        }
        (Some(_), Some(_)) => {}
    }
    plan
}

fn promote(plan: &mut Plan, current: Option<&KeyTimes>, next: &KeyTimes, policy: &KeyPolicy, now: DateTime<Utc>) {
    plan.promote = Some(Promotion { retire: current.map(|key| key.kid.clone()), promote: next.kid.clone() });
    plan.create_next = Some(now + policy.rotation_interval);
}

/// A rotation asked for now (admin or CLI): the next key starts signing at once, if it has been
/// published long enough.
pub fn plan_rotation(keys: &[KeyTimes], policy: &KeyPolicy, now: DateTime<Utc>) -> Result<Plan, RotationRefused> {
    let mut plan = plan(keys, policy, now);
    if plan.promote.is_some() || plan.create_current {
        return Ok(plan); // a rotation (or the first key) was due anyway
    }
    let Some(next) = find(keys, KeyState::Next) else {
        // No next key to hand over to (it was deleted moments ago): the plan makes one.
        let earliest = now + policy.min_publication();
        return Err(RotationRefused::NextTooYoung { earliest, wait: earliest - now });
    };
    let earliest = next.created_at + policy.min_publication();
    if earliest > now {
        return Err(RotationRefused::NextTooYoung { earliest, wait: earliest - now });
    }
    promote(&mut plan, find(keys, KeyState::Current), next, policy, now);
    Ok(plan)
}

/// An emergency deletion of key `kid` (compromise): it leaves the ring at once, and whatever
/// that leaves missing is planned as usual. `None` for an unknown kid.
pub fn plan_deletion(keys: &[KeyTimes], kid: &str, policy: &KeyPolicy, now: DateTime<Utc>) -> Option<Plan> {
    let deleted = keys.iter().find(|key| key.kid == kid)?;
    let remaining: Vec<KeyTimes> = keys.iter().filter(|key| key.kid != kid).cloned().collect();
    let mut plan = plan(&remaining, policy, now);
    plan.remove.push((kid.to_string(), deleted.state));
    Some(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> KeyPolicy {
        KeyPolicy {
            rotation_interval: Duration::hours(24),
            token_lifetime: Duration::minutes(30) + Duration::seconds(30),
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("time")
    }

    /// Applies a plan the way the key ring does, naming new keys k1, k2, …
    fn apply(keys: &mut Vec<KeyTimes>, plan: &Plan, now: DateTime<Utc>, counter: &mut u32) {
        keys.retain(|key| !plan.remove.iter().any(|(kid, _)| *kid == key.kid));
        let mut new_key = |state, activates_at, retires_at| {
            *counter += 1;
            KeyTimes { kid: format!("k{counter}"), state, created_at: now, activates_at, retires_at }
        };
        if plan.create_current {
            let key = new_key(KeyState::Current, now, Some(now + policy().rotation_interval));
            keys.push(key);
        }
        if let Some(promotion) = &plan.promote {
            for key in keys.iter_mut() {
                if Some(&key.kid) == promotion.retire.as_ref() {
                    key.state = KeyState::Retired;
                    key.retires_at = Some(now);
                } else if key.kid == promotion.promote {
                    key.state = KeyState::Current;
                    key.activates_at = now;
                    key.retires_at = Some(now + policy().rotation_interval);
                }
            }
        }
        if let Some(activates_at) = plan.create_next {
            let key = new_key(KeyState::Next, activates_at, None);
            keys.push(key);
        }
    }

    fn kids(keys: &[KeyTimes], state: KeyState) -> Vec<&str> {
        keys.iter().filter(|key| key.state == state).map(|key| key.kid.as_str()).collect()
    }

    #[test]
    fn first_start_makes_a_current_and_a_next_key() {
        let plan = plan(&[], &policy(), t0());
        assert!(plan.create_current);
        assert_eq!(plan.create_next, Some(t0() + Duration::hours(24)));
    }

    #[test]
    fn scheduled_rotation_retires_and_removal_follows_the_token_lifetime() {
        let (policy, mut keys, mut counter) = (policy(), Vec::new(), 0);
        let first = plan(&keys, &policy, t0());
        apply(&mut keys, &first, t0(), &mut counter);
        assert!(plan(&keys, &policy, t0() + Duration::hours(23)).is_empty(), "nothing due yet");

        let rotation = t0() + Duration::hours(24);
        let due = plan(&keys, &policy, rotation);
        assert_eq!(due.promote, Some(Promotion { retire: Some("k1".into()), promote: "k2".into() }));
        apply(&mut keys, &due, rotation, &mut counter);
        assert_eq!(
            (kids(&keys, KeyState::Current), kids(&keys, KeyState::Retired), kids(&keys, KeyState::Next)),
            (vec!["k2"], vec!["k1"], vec!["k3"])
        );

        let removal = rotation + policy.token_lifetime + PROPAGATION_SLACK;
        assert!(plan(&keys, &policy, removal - Duration::seconds(1)).remove.is_empty());
        assert_eq!(plan(&keys, &policy, removal).remove, vec![("k1".to_string(), KeyState::Retired)]);
    }

    #[test]
    fn a_rotation_missed_while_down_happens_at_start() {
        let (policy, mut keys, mut counter) = (policy(), Vec::new(), 0);
        let first = plan(&keys, &policy, t0());
        apply(&mut keys, &first, t0(), &mut counter);
        let back_up = t0() + Duration::days(3);
        let due = plan(&keys, &policy, back_up);
        assert!(due.promote.is_some());
        apply(&mut keys, &due, back_up, &mut counter);
        assert_eq!((kids(&keys, KeyState::Current), kids(&keys, KeyState::Next)), (vec!["k2"], vec!["k3"]));
        // It may have signed until the process stopped, which is unknown: it retires as of now.
        assert!(plan(&keys, &policy, back_up).is_empty());
    }

    #[test]
    fn forced_rotation_waits_until_the_next_key_is_published_long_enough() {
        let (policy, mut keys, mut counter) = (policy(), Vec::new(), 0);
        let first = plan(&keys, &policy, t0());
        apply(&mut keys, &first, t0(), &mut counter);
        let too_soon = t0() + policy.min_publication() - Duration::seconds(1);
        assert_eq!(
            plan_rotation(&keys, &policy, too_soon),
            Err(RotationRefused::NextTooYoung {
                earliest: t0() + policy.min_publication(),
                wait: Duration::seconds(1)
            })
        );
        let allowed = t0() + policy.min_publication();
        let rotation = plan_rotation(&keys, &policy, allowed).expect("allowed");
        apply(&mut keys, &rotation, allowed, &mut counter);
        assert_eq!(kids(&keys, KeyState::Current), vec!["k2"]);
        assert!(plan_rotation(&keys, &policy, allowed).is_err(), "the fresh next key cannot sign yet");
    }

    #[test]
    fn deleting_a_compromised_current_key_promotes_the_next_at_once() {
        let (policy, mut keys, mut counter) = (policy(), Vec::new(), 0);
        let first = plan(&keys, &policy, t0());
        apply(&mut keys, &first, t0(), &mut counter);
        let now = t0() + Duration::minutes(5);
        let deletion = plan_deletion(&keys, "k1", &policy, now).expect("known kid");
        assert_eq!(deletion.remove, vec![("k1".to_string(), KeyState::Current)]);
        assert_eq!(deletion.promote, Some(Promotion { retire: None, promote: "k2".into() }));
        apply(&mut keys, &deletion, now, &mut counter);
        assert_eq!((kids(&keys, KeyState::Current), kids(&keys, KeyState::Next)), (vec!["k2"], vec!["k3"]));
        assert!(plan_deletion(&keys, "unknown", &policy, now).is_none());
    }

    #[test]
    fn deleting_the_next_key_makes_a_new_one_that_waits_its_publication_time() {
        let (policy, mut keys, mut counter) = (policy(), Vec::new(), 0);
        let first = plan(&keys, &policy, t0());
        apply(&mut keys, &first, t0(), &mut counter);
        let now = t0() + Duration::hours(23) + Duration::minutes(30);
        let deletion = plan_deletion(&keys, "k2", &policy, now).expect("known kid");
        assert_eq!(deletion.create_next, Some(now + policy.min_publication()), "later than the scheduled rotation");
        assert!(deletion.promote.is_none());
    }

    #[test]
    fn max_age_shrinks_before_the_next_key_signs_and_never_exceeds_the_ceiling() {
        let policy = policy();
        let activation = t0() + Duration::hours(24);
        assert_eq!(policy.jwks_max_age(Some(activation), t0()), 3600);
        assert_eq!(policy.jwks_max_age(Some(activation), activation - Duration::minutes(10)), 600 - 30);
        assert_eq!(policy.jwks_max_age(Some(activation), activation - Duration::seconds(10)), 0);
        assert_eq!(policy.jwks_max_age(Some(activation), activation + Duration::seconds(10)), 0);
        let short = KeyPolicy { rotation_interval: Duration::hours(1), ..policy };
        assert_eq!(short.jwks_max_age(None, t0()), 900, "a quarter of a short interval");
    }

    /// Drives the ring through many rotations (scheduled, forced and emergency) with verifiers
    /// that cache the JWKS for exactly the advertised max-age, fetching at every possible phase.
    #[test]
    fn a_verifier_honouring_max_age_never_meets_an_unknown_kid() {
        let policy = KeyPolicy { rotation_interval: Duration::hours(2), token_lifetime: Duration::minutes(10) };
        let (mut keys, mut counter) = (Vec::new(), 0);
        let step = Duration::seconds(50);
        let mut now = t0();
        let first = plan(&keys, &policy, now);
        apply(&mut keys, &first, now, &mut counter);
        // Several verifiers, starting at different times so their caches are out of phase.
        let mut caches: Vec<(DateTime<Utc>, Vec<String>)> =
            (0..7).map(|index| (now + Duration::seconds(index * 431), Vec::new())).collect();
        let emergency = 1_500;
        let forfeited =
            emergency..emergency + (policy.max_age_ceiling().num_seconds() / step.num_seconds() + 1) as usize;
        for tick in 0..2_000 {
            now += step;
            let mut due = plan(&keys, &policy, now);
            if tick % 5 == 0 {
                due = plan_rotation(&keys, &policy, now).unwrap_or(due);
            }
            if tick == emergency {
                let current = kids(&keys, KeyState::Current)[0].to_string();
                due = plan_deletion(&keys, &current, &policy, now).expect("current exists");
            }
            apply(&mut keys, &due, now, &mut counter);
            let published: Vec<String> = keys.iter().map(|key| key.kid.clone()).collect();
            let signer = kids(&keys, KeyState::Current)[0].to_string();
            for (index, (expires, cached)) in caches.iter_mut().enumerate() {
                if now >= *expires {
                    let max_age = policy.jwks_max_age(next_activation(&keys, &policy), now);
                    *expires = now + Duration::seconds(max_age);
                    *cached = published.clone();
                }
                if cached.is_empty() || forfeited.contains(&tick) {
                    continue; // not started yet; or the emergency deletion forfeits the guarantee
                }
                assert!(
                    cached.contains(&signer),
                    "tick {tick}: verifier {index} has {cached:?}, token signed by {signer}"
                );
            }
        }
        assert!(counter > 20, "many rotations happened ({counter} keys)");
    }
}
