//! Per-user limit on new push requests: a token bucket. A user may make
//! `burst` requests at once, then one more every `every` seconds. A loop
//! of `sudo` calls cannot flood the approver with requests. Pure: the
//! caller keeps the buckets and gives the time.

/// One user's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Requests that may be made now.
    available: u64,
    /// When `available` was last counted.
    counted_at: u64,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(burst: u64, now: u64) -> Bucket {
        Bucket { available: burst, counted_at: now }
    }

    /// Whether the bucket is full again at `now` (and can be forgotten).
    pub fn is_full_at(&self, burst: u64, every: u64, now: u64) -> bool {
        let earned = now.saturating_sub(self.counted_at) / every.max(1);
        self.available.saturating_add(earned) >= burst
    }

    /// Takes one request at `now`, or says in how many seconds one is
    /// available again.
    pub fn take(&mut self, burst: u64, every: u64, now: u64) -> Result<(), u64> {
        let every = every.max(1);
        let earned = now.saturating_sub(self.counted_at) / every;
        self.available = self.available.saturating_add(earned).min(burst);
        self.counted_at =
            if self.available >= burst { now } else { self.counted_at + earned * every };
        if self.available == 0 {
            return Err(every - now.saturating_sub(self.counted_at).min(every - 1));
        }
        self.available -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval() {
        let mut b = Bucket::full(3, 0);
        for _ in 0..3 {
            assert_eq!(b.take(3, 20, 0), Ok(()));
        }
        assert_eq!(b.take(3, 20, 0), Err(20));
        assert_eq!(b.take(3, 20, 5), Err(15));
        assert_eq!(b.take(3, 20, 20), Ok(()));
        assert_eq!(b.take(3, 20, 21), Err(19));
        assert_eq!(b.take(3, 20, 40), Ok(()));
    }

    #[test]
    fn a_flood_gets_the_burst_and_the_rate_and_no_more() {
        // 46 requests in 10 s (the loop of sudo calls).
        let mut b = Bucket::full(3, 1000);
        let granted = (0..46).filter(|i| b.take(3, 20, 1000 + i * 10 / 46).is_ok()).count();
        assert_eq!(granted, 3);
        // A quiet user gets the whole burst back.
        assert_eq!(b.take(3, 20, 1100), Ok(()));
        assert_eq!(b.take(3, 20, 1100), Ok(()));
        assert_eq!(b.take(3, 20, 1100), Ok(()));
        assert!(b.take(3, 20, 1100).is_err());
    }
}
