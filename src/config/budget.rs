//! The failover budget of a health-checked name: the longest a client can be handed a
//! member after it failed, from the checks' timing and the TTLs, against the name's
//! `failover-within`.
//!
//! A member that fails just after a probe succeeded is seen failing by the next probe,
//! `interval + timeout` later. Until then answers carry the name's full `ttl`, so the
//! last of them is cached until `interval + timeout + ttl`. From that first failure on,
//! answers carry a TTL cut to the time until the member could be declared down, and it is
//! out of answers after `fall × interval + timeout` (or, with a `failure-delay`, the first
//! probe after failing that long); the cut TTLs end within a second of that. A name that fails closed may meanwhile answer NODATA (nobody up), which resolvers
//! keep for the smaller of its SOA's TTL (the name's `ttl`) and the zone's `soa.minimum`.

use std::time::Duration;

use crate::model::{Check, CheckSpec};

/// The worst case and how it adds up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    pub worst: Duration,
    /// The arithmetic, in words, for `meridian check` and its errors.
    pub why: String,
}

/// The worst case for a name with these checks (its members' and their sites'), or
/// `None` when no check can see a failure. `negative` is the NODATA caching time when
/// the name fails closed.
pub fn worst_case<'a>(
    checks: impl IntoIterator<Item = &'a Check>,
    ttl: u32,
    negative: Option<u32>,
) -> Option<Budget> {
    let ttl = Duration::from_secs(u64::from(ttl));
    let slowest = checks
        .into_iter()
        .filter(|c| c.spec != CheckSpec::None)
        .map(|c| {
            let t = c.timing;
            let cached = t.interval + t.timeout + ttl;
            // After the first failed probe, `fall - 1` more, and as many as it takes to
            // have failed for `failure-delay`.
            let delay_probes = t
                .failure_delay
                .as_nanos()
                .div_ceil(t.interval.as_nanos().max(1));
            let more = (t.fall - 1).max(delay_probes as u32);
            let out = t.interval * (1 + more) + t.timeout + Duration::from_secs(1);
            (cached.max(out), cached, out, t)
        })
        .max_by_key(|(worst, ..)| *worst)?;
    let (worst, cached, out, t) = slowest;
    let s = |d: Duration| humantime::format_duration(d).to_string();
    let mut why = format!(
        "a member that fails just after a probe is seen failing by the next, interval {} + timeout {} later, and an answer given just before is cached for ttl {} ({}); it is out of answers after fall {} × interval {} + timeout {}{}, and the shortened TTLs end within 1s of that ({})",
        s(t.interval),
        s(t.timeout),
        s(ttl),
        s(cached),
        t.fall,
        s(t.interval),
        s(t.timeout),
        if t.failure_delay.is_zero() {
            String::new()
        } else {
            format!(
                " (at least failure-delay {} after the first failure)",
                s(t.failure_delay)
            )
        },
        s(out)
    );
    let mut worst = worst;
    if let Some(negative) = negative {
        let negative = Duration::from_secs(u64::from(negative)).min(ttl);
        worst += negative;
        why += &format!(
            "; failing closed, a NODATA given meanwhile is cached for {} more",
            s(negative)
        );
    }
    Some(Budget { worst, why })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timing;

    fn check(interval: u64, timeout: u64, fall: u32) -> Check {
        Check {
            spec: CheckSpec::Tcp { port: 1 },
            timing: Timing {
                interval: Duration::from_secs(interval),
                timeout: Duration::from_secs(timeout),
                rise: 2,
                fall,
                failure_delay: Duration::ZERO,
            },
            address: None,
        }
    }

    #[test]
    fn the_longer_of_the_cached_answer_and_the_detection() {
        // The demo's cluster name: 2 s + 1 s + ttl 10 s beats 2 × 2 s + 1 s + 1 s.
        let b = worst_case(&[check(2, 1, 2)], 10, None).unwrap();
        assert_eq!(b.worst, Duration::from_secs(13));
        // A slow check with a short TTL: detection decides.
        let b = worst_case(&[check(5, 2, 3)], 1, None).unwrap();
        assert_eq!(b.worst, Duration::from_secs(18));
        // The slowest of several checks counts, and failing closed adds the NODATA's life.
        let b = worst_case(&[check(2, 1, 2), check(5, 2, 3)], 10, Some(300)).unwrap();
        assert_eq!(b.worst, Duration::from_secs(18 + 10));
        assert!(
            b.why
                .ends_with("a NODATA given meanwhile is cached for 10s more"),
            "{}",
            b.why
        );
        let none = Check {
            spec: CheckSpec::None,
            ..check(1, 1, 1)
        };
        assert_eq!(worst_case(&[none], 10, None), None);
        // A site that may fail for 30 s before it is down: the first probe after that.
        let mut site = check(5, 2, 2);
        site.timing.failure_delay = Duration::from_secs(30);
        let b = worst_case(&[site], 10, None).unwrap();
        assert_eq!(b.worst, Duration::from_secs(5 + 30 + 2 + 1));
    }
}
