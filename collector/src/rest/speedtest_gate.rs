//! Who may move how much through `/speedtest/*`. The endpoints cost the collector's uplink, so
//! beyond the token they need, transfers at once are capped (`[http] speedtest_concurrency`)
//! and each token has an hourly byte budget (`[http] speedtest_bytes_per_hour`): a leaked
//! agent token cannot turn the collector into a free 1 GiB-a-request download.

use crate::auth::guard::Refusal;
use crate::error::{ApiError, ErrorCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const WINDOW: Duration = Duration::from_secs(3600);
/// Budgets kept before old windows are swept (one per token name that has tested).
const SWEEP_AT: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLimits {
    pub concurrency: usize,
    pub bytes_per_hour: u64,
}

/// A token's spending in its current hour.
struct Spent {
    since: Instant,
    bytes: u64,
}

pub struct SpeedTestGate {
    slots: Arc<Semaphore>,
    limits: GateLimits,
    spent: Mutex<HashMap<String, Spent>>,
}

/// A transfer's slot; the slot is free again when this is dropped (the transfer ended, or the
/// client went away).
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

fn refusal(code: ErrorCode, message: String, retry_after: u64) -> Refusal {
    Refusal {
        error: ApiError::new(code, message),
        retry_after: Some(retry_after.max(1)),
    }
}

impl SpeedTestGate {
    pub fn new(limits: GateLimits) -> Self {
        SpeedTestGate {
            slots: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            limits,
            spent: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for a transfer of `bytes` by `who`, charged to its budget up front; refused
    /// (with when to retry) when every slot is taken or the budget cannot cover it.
    pub fn admit(&self, who: &str, bytes: u64) -> Result<Slot, Refusal> {
        let permit = self.slots.clone().try_acquire_owned().map_err(|_| {
            refusal(
                ErrorCode::Unavailable,
                format!(
                    "{} speed tests are running, the most this collector serves at once \
                     ([http] speedtest_concurrency); retry shortly",
                    self.limits.concurrency
                ),
                5,
            )
        })?;
        self.charge(who, bytes)?;
        Ok(Slot { _permit: permit })
    }

    /// Charges `bytes` more to `who`'s hour (an upload of unknown length, as it arrives).
    pub fn charge(&self, who: &str, bytes: u64) -> Result<(), Refusal> {
        let now = Instant::now();
        let Ok(mut spent) = self.spent.lock() else {
            return Ok(());
        };
        if spent.len() >= SWEEP_AT {
            spent.retain(|_, s| now.duration_since(s.since) < WINDOW);
        }
        let entry = spent.entry(who.to_string()).or_insert(Spent {
            since: now,
            bytes: 0,
        });
        if now.duration_since(entry.since) >= WINDOW {
            *entry = Spent {
                since: now,
                bytes: 0,
            };
        }
        let total = entry.bytes.saturating_add(bytes);
        if total > self.limits.bytes_per_hour {
            let wait = WINDOW.saturating_sub(now.duration_since(entry.since));
            return Err(refusal(
                ErrorCode::ResourceExhausted,
                format!(
                    "{who} has moved {} of its {} speed-test bytes this hour and asked for {bytes} \
                     more ([http] speedtest_bytes_per_hour); retry in {} s",
                    entry.bytes,
                    self.limits.bytes_per_hour,
                    wait.as_secs().max(1)
                ),
                wait.as_secs(),
            ));
        }
        entry.bytes = total;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(concurrency: usize, bytes_per_hour: u64) -> SpeedTestGate {
        SpeedTestGate::new(GateLimits {
            concurrency,
            bytes_per_hour,
        })
    }

    #[test]
    fn slots_are_capped_and_freed_when_a_transfer_ends() {
        let gate = gate(2, u64::MAX);
        let a = gate.admit("a", 1).unwrap();
        let _b = gate.admit("b", 1).unwrap();
        let refused = gate.admit("c", 1).err().expect("a third is refused");
        assert_eq!(refused.error.code, ErrorCode::Unavailable);
        assert!(refused.retry_after.is_some());
        drop(a);
        assert!(gate.admit("c", 1).is_ok(), "a freed slot is taken again");
    }

    #[test]
    fn each_token_has_its_own_hourly_budget() {
        let gate = gate(8, 1000);
        drop(gate.admit("a", 600).unwrap());
        let refused = gate.admit("a", 500).err().expect("over the budget");
        assert_eq!(refused.error.code, ErrorCode::ResourceExhausted);
        assert!(refused.error.message.contains("600 of its 1000"));
        let wait = refused.retry_after.unwrap();
        assert!(
            (3500..=3600).contains(&wait),
            "retry within the hour, got {wait}"
        );
        // The refusal spent nothing, and another token has its own budget.
        drop(gate.admit("a", 400).unwrap());
        drop(gate.admit("b", 1000).unwrap());
        assert!(gate.charge("a", 1).is_err());
    }

    #[test]
    fn a_refused_budget_does_not_keep_a_slot() {
        let gate = gate(1, 10);
        assert!(gate.admit("a", 11).is_err());
        assert!(gate.admit("a", 10).is_ok(), "the slot was given back");
    }
}
