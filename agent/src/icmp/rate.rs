//! The agent's global packets-per-second cap, shared by every sender (ICMP engine, ARP,
//! TCP port checks) so that together they never exceed it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    pps: f64,
    capacity: f64,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// `pps` packets per second with 4 ms of burst, so a sender can wake every 2 ms and send
    /// a handful instead of waking per packet (each wake-up costs more than a send).
    pub fn new(pps: u32) -> Self {
        let pps = f64::from(pps.max(1));
        let capacity = (pps / 250.0).max(1.0);
        RateLimiter {
            pps,
            capacity,
            bucket: Mutex::new(Bucket {
                tokens: capacity,
                last: Instant::now(),
            }),
        }
    }

    pub fn pps(&self) -> u32 {
        self.pps as u32
    }

    /// How many to ask for at once so wake-ups come about every 2 ms.
    pub fn quantum(&self) -> u32 {
        (self.pps / 500.0).max(1.0) as u32
    }

    /// Takes up to `want` tokens now and says how many it got.
    pub fn take(&self, want: u32) -> u32 {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let earned = now.duration_since(bucket.last).as_secs_f64() * self.pps;
        bucket.tokens = (bucket.tokens + earned).min(self.capacity);
        bucket.last = now;
        let granted = bucket.tokens.min(f64::from(want)).floor();
        bucket.tokens -= granted;
        granted as u32
    }

    /// Returns tokens that were taken but not used.
    pub fn give_back(&self, unused: u32) {
        if unused > 0 {
            let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
            bucket.tokens = (bucket.tokens + f64::from(unused)).min(self.capacity);
        }
    }

    /// How long until `n` tokens (at most the burst) will be there.
    pub fn time_until(&self, n: u32) -> Duration {
        let bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let need = f64::from(n).min(self.capacity);
        let have = bucket.tokens + bucket.last.elapsed().as_secs_f64() * self.pps;
        if have >= need {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((need - have) / self.pps)
        }
    }

    /// Blocks the calling thread until one token is there, and takes it.
    pub fn acquire_blocking(&self) {
        while self.take(1) == 0 {
            std::thread::sleep(self.time_until(1).max(Duration::from_micros(50)));
        }
    }

    /// The same for async callers.
    pub async fn acquire(&self) {
        while self.take(1) == 0 {
            tokio::time::sleep(self.time_until(1).max(Duration::from_micros(50))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_is_small_and_tokens_come_back() {
        let limiter = RateLimiter::new(1000);
        assert_eq!(limiter.take(100), 4, "4 ms of burst at 1000 pps");
        assert_eq!(limiter.take(1), 0);
        limiter.give_back(1);
        assert_eq!(limiter.take(5), 1);
        assert!(limiter.time_until(1) <= Duration::from_millis(1));
    }

    #[test]
    fn a_blocking_sender_never_beats_the_rate() {
        let limiter = RateLimiter::new(2000);
        let started = Instant::now();
        for _ in 0..208 {
            limiter.acquire_blocking();
        }
        // 8 from the burst, 200 more at 2000/s: at least 100 ms, whatever the machine.
        assert!(
            started.elapsed() >= Duration::from_millis(99),
            "{:?}",
            started.elapsed()
        );
    }
}
