//! Rate-limited log lines, for events that hostile traffic can cause at any rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::health::clock_ms;

/// Lets one line through per interval for one kind of event, and counts the rest.
#[derive(Debug)]
pub struct LogLimit {
    interval_ms: u64,
    /// `clock_ms` time from which the next line may go out.
    next: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimit {
    pub const fn new(interval: Duration) -> Self {
        LogLimit {
            interval_ms: interval.as_millis() as u64,
            next: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were held back since the
    /// last one; `None` (and one more held back) otherwise.
    pub fn allow(&self) -> Option<u64> {
        let now = clock_ms();
        let next = self.next.load(Ordering::Relaxed);
        if now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now + self.interval_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_a_count_of_the_rest() {
        let limit = LogLimit::new(Duration::from_millis(200));
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), None);
        assert_eq!(limit.allow(), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(limit.allow(), Some(2));
    }
}
