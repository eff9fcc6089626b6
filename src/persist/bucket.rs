//! carbon's token bucket (`carbon.util.TokenBucket`), which paces creates and updates.

use std::time::{Duration, Instant};

/// A bucket of `capacity` tokens refilled at `rate` a second, starting full.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    pub fn new(capacity: f64, rate: f64) -> TokenBucket {
        TokenBucket {
            capacity,
            rate,
            tokens: capacity,
            refilled: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        if self.tokens < self.capacity {
            let added = self.rate * now.duration_since(self.refilled).as_secs_f64();
            self.tokens = self.capacity.min(self.tokens + added);
        }
        self.refilled = now;
    }

    /// Takes a token if one is there (carbon's non-blocking `drain(1)`).
    pub fn try_take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Returns a token taken with [`TokenBucket::try_take`] but not used.
    pub fn give_back(&mut self) {
        self.tokens = self.capacity.min(self.tokens + 1.0);
    }

    /// Takes a token now and says how long the caller must wait before using it (carbon's
    /// blocking `drain(1, blocking=True)`: the balance may go below zero).
    pub fn take_blocking_wait(&mut self) -> Duration {
        self.refill();
        let wait = if self.tokens >= 1.0 || self.rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        };
        self.tokens -= 1.0;
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_full_then_paces() {
        let mut b = TokenBucket::new(2.0, 1.0);
        assert!(b.try_take());
        assert!(b.try_take());
        assert!(!b.try_take());
        let wait = b.take_blocking_wait();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
    }

    #[test]
    fn a_token_given_back_can_be_taken_again_but_not_past_capacity() {
        let mut b = TokenBucket::new(1.0, 1.0 / 60.0);
        assert!(b.try_take());
        assert!(!b.try_take());
        b.give_back();
        assert!(b.try_take());
        b.give_back();
        b.give_back();
        assert!(b.try_take());
        assert!(!b.try_take());
    }
}
