//! Login throttling without a denial-of-service lever. Failures per account and per client IP
//! earn growing delays (exponential backoff with a cap), answered with 429 and `Retry-After`,
//! instead of a hard lockout an attacker could use to lock real users out: the per-account
//! delay is capped low (a minute by default), the per-IP one higher.
//!
//! Each attempt is counted against the account *before* the password is checked, in one
//! transaction that locks the counters, and a success clears the account's counter afterwards.
//! So N parallel guesses cannot all slip past the limit while the first ones are still being
//! checked (the race that let parallel requests bypass ZITADEL's lockout).

use crate::config::{LoginThrottle, RegistrationLimit, ThrottleRule};
use crate::db::{DbConn, throttle};
use chrono::{DateTime, Duration, Utc};
use diesel::QueryResult;

/// The wait after the `excess`-th failure beyond the free ones (0-based): the base delay
/// doubled per failure, capped (the cap keeps an attacker from locking real users out).
fn delay(rule: &ThrottleRule, excess: i32) -> Duration {
    let factor = 1i64.checked_shl(excess.clamp(0, 40) as u32).unwrap_or(i64::MAX);
    let millis = rule.base_delay.num_milliseconds().saturating_mul(factor);
    Duration::milliseconds(millis).min(rule.max_delay)
}

/// The counters one login attempt touches: the account *as tried from this address*, and the
/// address. Keying the account's counter by address too means an attacker elsewhere cannot
/// make the real user wait at all, while the address counter still caps one source guessing
/// at many accounts.
pub struct AttemptKeys {
    account: String,
    ip: String,
}

impl AttemptKeys {
    /// The counters for a login as `name_key` from `ip`. The name is stored only as a keyed
    /// hash: the table never holds what was typed (a password typed into the name field must
    /// not end up readable in it).
    pub fn new(names: &NameHasher, name_key: &str, ip: std::net::IpAddr) -> Self {
        let source = source_of(ip);
        Self { account: format!("user:{}@{source}", names.hash(name_key)), ip: format!("ip:{source}") }
    }
}

/// Hashes typed names for the throttle table with a key derived from the master key
/// (HMAC-SHA256), so every instance computes the same counter key and the table reveals nothing.
pub struct NameHasher {
    key: aws_lc_rs::hmac::Key,
}

impl NameHasher {
    pub fn new(key: &[u8; 32]) -> Self {
        Self { key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key) }
    }

    fn hash(&self, name_key: &str) -> String {
        use base64::Engine as _;
        let tag = aws_lc_rs::hmac::sign(&self.key, name_key.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag.as_ref()[..16])
    }
}

/// The unit an address is counted in: an IPv4 address, or an IPv6 /64 (one end site holds a
/// whole /64, so counting single IPv6 addresses would give it endless budgets).
fn source_of(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Refuses the attempt while either counter is waiting (`Ok(Err(wait))`), else counts it against
/// the account *before* the password is checked: parallel guesses at one account cannot slip
/// past its limit. The address is charged only for failures ([`failed`]), so many people
/// logging in at once from one address (an office behind NAT) are not throttled.
pub fn begin_attempt(
    conn: &mut DbConn,
    keys: &AttemptKeys,
    throttle: &LoginThrottle,
    now: DateTime<Utc>,
) -> QueryResult<Result<(), Duration>> {
    crate::db::write_transaction(conn, |conn| {
        let mut account = current(conn, &keys.account, throttle, now)?;
        let address = current(conn, &keys.ip, throttle, now)?;
        let wait = [&account, &address]
            .iter()
            .filter_map(|row| row.blocked_until.map(|until| until.and_utc() - now))
            .filter(|wait| *wait > Duration::zero())
            .max();
        if let Some(wait) = wait {
            return Ok(Err(wait));
        }
        charge(&mut account, &throttle.account, now);
        throttle::save(conn, &account)?;
        Ok(Ok(()))
    })
}

/// Counts a registration from `ip` against its window (`REGISTRATIONS_PER_ADDRESS` per
/// `REGISTRATION_WINDOW`, fixed windows starting at an address's first registration), or answers
/// how long until the window ends (`Ok(Err(wait))`). A registration costs a bcrypt hash: without
/// this, one address could spend the server's CPU on accounts nobody uses. The window's end is
/// kept in the counter's `blocked_until`.
pub fn begin_registration(
    conn: &mut DbConn,
    ip: std::net::IpAddr,
    limit: &RegistrationLimit,
    now: DateTime<Utc>,
) -> QueryResult<Result<(), Duration>> {
    if limit.per_address == 0 {
        return Ok(Ok(()));
    }
    crate::db::write_transaction(conn, |conn| {
        let mut row = throttle::lock(conn, &format!("register:{}", source_of(ip)), now.naive_utc())?;
        let window_end = match row.blocked_until.map(|end| end.and_utc()).filter(|end| *end > now) {
            Some(end) => end,
            None => {
                row.failures = 0;
                now + limit.window
            }
        };
        if row.failures >= i32::try_from(limit.per_address).unwrap_or(i32::MAX) {
            return Ok(Err(window_end - now));
        }
        row.failures += 1;
        row.blocked_until = Some(window_end.naive_utc());
        row.updated_at = now.naive_utc();
        throttle::save(conn, &row)?;
        Ok(Ok(()))
    })
}

/// After a wrong password: the address is charged too.
pub fn failed(conn: &mut DbConn, keys: &AttemptKeys, throttle: &LoginThrottle, now: DateTime<Utc>) -> QueryResult<()> {
    crate::db::write_transaction(conn, |conn| {
        let mut address = current(conn, &keys.ip, throttle, now)?;
        charge(&mut address, &throttle.ip, now);
        throttle::save(conn, &address)
    })
}

/// After a successful login: the account (from this address) starts over. The address keeps its
/// failures, so one valid account cannot be used to reset an address guessing at others.
pub fn succeeded(conn: &mut DbConn, keys: &AttemptKeys) -> QueryResult<()> {
    throttle::clear(conn, &keys.account)
}

/// The counter, locked, and forgotten if it was quiet for `forget_after`.
fn current(
    conn: &mut DbConn,
    key: &str,
    throttle: &LoginThrottle,
    now: DateTime<Utc>,
) -> QueryResult<throttle::ThrottleRow> {
    let mut row = throttle::lock(conn, key, now.naive_utc())?;
    if row.updated_at.and_utc() + throttle.forget_after < now {
        row.failures = 0;
        row.blocked_until = None;
    }
    Ok(row)
}

/// One more failure: from the one that reaches the free allowance on, a doubling wait.
fn charge(row: &mut throttle::ThrottleRow, rule: &ThrottleRule, now: DateTime<Utc>) {
    row.failures = row.failures.saturating_add(1);
    row.updated_at = now.naive_utc();
    row.blocked_until = (row.failures >= rule.free_failures)
        .then(|| (now + delay(rule, row.failures - rule.free_failures)).naive_utc());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_counted_per_ipv4_address_and_per_ipv6_64() {
        let names = NameHasher::new(&[7; 32]);
        let key = |ip: &str| AttemptKeys::new(&names, "alice", ip.parse().expect("ip")).ip;
        assert_eq!(key("192.0.2.7"), "ip:192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "ip:192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        let account = AttemptKeys::new(&names, "alice", "192.0.2.7".parse().expect("ip")).account;
        assert!(account.starts_with("user:") && account.ends_with("@192.0.2.7"), "{account}");
        assert!(!account.contains("alice"), "the typed name is never stored: {account}");
    }

    #[test]
    fn delays_double_from_the_base_up_to_the_cap() {
        let rule =
            ThrottleRule { free_failures: 5, base_delay: Duration::seconds(1), max_delay: Duration::seconds(60) };
        let delays: Vec<i64> = (0..9).map(|excess| delay(&rule, excess).num_seconds()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(delay(&rule, 10_000).num_seconds(), 60, "no overflow");
    }
}
