//! The engine over an in-memory network: real threads and clocks, scripted replies.

use super::*;
use crate::icmp::socket::Received;
use std::collections::VecDeque;
use std::sync::Condvar;

#[derive(Clone, Copy)]
enum Answer {
    After(Duration),
    Twice(Duration),
    Never,
}

type Script = dyn Fn(IpAddr, u16) -> Answer + Send + Sync;

#[derive(Default)]
struct Wire {
    in_flight: VecDeque<(Instant, Vec<u8>, IpAddr)>,
    sends: Vec<(IpAddr, Instant)>,
}

struct FakeSocket {
    wire: Arc<(Mutex<Wire>, Condvar)>,
    script: Arc<Script>,
}

impl FakeSocket {
    fn new(script: impl Fn(IpAddr, u16) -> Answer + Send + Sync + 'static) -> Self {
        FakeSocket {
            wire: Arc::new((Mutex::new(Wire::default()), Condvar::new())),
            script: Arc::new(script),
        }
    }

    fn sends(&self) -> Arc<(Mutex<Wire>, Condvar)> {
        self.wire.clone()
    }
}

use crate::icmp::packet::reply_to as as_reply;

impl EchoSocket for FakeSocket {
    fn is_v6(&self) -> bool {
        false
    }
    fn has_ip_header(&self) -> bool {
        false
    }
    fn identifier(&self) -> Option<u16> {
        Some(7)
    }
    fn send_to(&self, packet: &[u8], to: IpAddr) -> std::io::Result<()> {
        let sequence = u16::from_be_bytes([packet[6], packet[7]]);
        let now = Instant::now();
        let (lock, ready) = &*self.wire;
        let mut wire = lock.lock().unwrap();
        wire.sends.push((to, now));
        let reply = as_reply(packet, false);
        match (self.script)(to, sequence) {
            Answer::After(rtt) => wire.in_flight.push_back((now + rtt, reply, to)),
            Answer::Twice(rtt) => {
                wire.in_flight.push_back((now + rtt, reply.clone(), to));
                wire.in_flight.push_back((now + rtt, reply, to));
            }
            Answer::Never => {}
        }
        ready.notify_all();
        Ok(())
    }
    fn try_recv(&self, _: &mut [u8]) -> std::io::Result<Option<Received>> {
        Ok(None)
    }
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<Option<Received>> {
        let (lock, ready) = &*self.wire;
        let mut wire = lock.lock().unwrap();
        let give_up = Instant::now() + Duration::from_millis(20);
        loop {
            let now = Instant::now();
            if let Some(i) = wire.in_flight.iter().position(|(at, _, _)| *at <= now) {
                let (_, bytes, from) = wire.in_flight.remove(i).unwrap();
                buf[..bytes.len()].copy_from_slice(&bytes);
                return Ok(Some(Received {
                    from,
                    len: bytes.len(),
                    at_ns: wall_ns(),
                }));
            }
            if now >= give_up {
                return Ok(None);
            }
            let next = wire
                .in_flight
                .iter()
                .map(|(at, _, _)| *at)
                .min()
                .unwrap_or(give_up);
            wire = ready.wait_timeout(wire, next.min(give_up) - now).unwrap().0;
        }
    }
}

fn targets(n: u8) -> Vec<IpAddr> {
    (1..=n).map(|i| IpAddr::from([10, 0, 0, i])).collect()
}

fn job(targets: Vec<IpAddr>, count: u32, spacing_ms: u64, policy: TimeoutPolicy) -> PingJob {
    PingJob {
        targets,
        count,
        spacing: Duration::from_millis(spacing_ms),
        timeout: policy,
        hints: Vec::new(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn lost_pings_are_exactly_the_unanswered_ones() {
    // Target 10.0.0.k drops the pings whose sequence ≡ k (mod 7): a known number each.
    let socket = FakeSocket::new(|to, seq| match to {
        IpAddr::V4(v4) if seq % 7 == u16::from(v4.octets()[3]) % 7 => Answer::Never,
        _ => Answer::After(Duration::from_millis(2)),
    });
    let engine = IcmpEngine::start(Some(socket), None, Arc::new(RateLimiter::new(20_000)), 7);
    let policy = TimeoutPolicy::fixed(Duration::from_millis(200));
    let outcome = runtime()
        .block_on(engine.run(job(targets(40), 10, 5, policy)))
        .unwrap();
    let n = outcome.targets.len();
    for t in 0..n {
        let lost: Vec<bool> = outcome.rtts(t).map(|r| r.is_none()).collect();
        let expected: Vec<bool> = (0..10)
            .map(|i| ((i * n + t) as u16) % 7 == ((t + 1) as u16) % 7)
            .collect();
        assert_eq!(lost, expected, "target {t}");
        for rtt in outcome.rtts(t).flatten() {
            assert!(rtt >= Duration::from_millis(2), "{rtt:?}");
        }
    }
    assert_eq!(engine.unmatched_replies(), 0);
}

#[test]
fn the_rate_cap_holds_across_concurrent_jobs_and_each_target_keeps_its_spacing() {
    let socket = FakeSocket::new(|_, _| Answer::After(Duration::from_micros(100)));
    let wire = socket.sends();
    let engine = IcmpEngine::start(Some(socket), None, Arc::new(RateLimiter::new(2000)), 7);
    let policy = TimeoutPolicy::fixed(Duration::from_millis(100));
    let other_site: Vec<IpAddr> = (1..=20).map(|i| IpAddr::from([10, 0, 1, i])).collect();
    let rt = runtime();
    let (a, b) = rt.block_on(async {
        tokio::join!(
            engine.run(job(targets(20), 5, 30, policy)),
            engine.run(job(other_site.clone(), 5, 30, policy)),
        )
    });
    assert_eq!(a.unwrap().received(0) + b.unwrap().received(0), 10);
    let sends = wire.0.lock().unwrap().sends.clone();
    assert_eq!(sends.len(), 200);
    // 200 probes at 2000/s with an 8-probe burst: at least 96 ms from first to last.
    let span = sends.last().unwrap().1 - sends.first().unwrap().1;
    assert!(span >= Duration::from_millis(95), "{span:?}");
    // Each target's pings are at least the 30 ms spacing apart.
    for target in targets(20).into_iter().chain(other_site) {
        let times: Vec<Instant> = sends
            .iter()
            .filter(|(t, _)| *t == target)
            .map(|(_, at)| *at)
            .collect();
        assert_eq!(times.len(), 5);
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= Duration::from_millis(29),
                "{:?}",
                pair[1] - pair[0]
            );
        }
    }
}

#[test]
fn duplicate_and_foreign_replies_do_not_count() {
    let socket = FakeSocket::new(|_, _| Answer::Twice(Duration::from_millis(1)));
    let wire = socket.sends();
    // A reply nobody asked for: an echo reply with a token from another engine.
    let mut foreign = Vec::new();
    let token = Token {
        key: 1,
        job: 2,
        slot: 0,
    };
    encode_request(&mut foreign, false, 7, 0, token, PAYLOAD_LEN);
    wire.0.lock().unwrap().in_flight.push_back((
        Instant::now(),
        as_reply(&foreign, false),
        IpAddr::from([10, 0, 0, 1]),
    ));
    let engine = IcmpEngine::start(Some(socket), None, Arc::new(RateLimiter::new(10_000)), 7);
    let policy = TimeoutPolicy::fixed(Duration::from_millis(100));
    let outcome = runtime()
        .block_on(engine.run(job(targets(5), 4, 2, policy)))
        .unwrap();
    for t in 0..5 {
        assert_eq!(outcome.received(t), 4);
    }
    // The foreign reply is unmatched; so may be the duplicate of the job's very last reply,
    // which can arrive after the job has ended. Duplicates inside the job never count twice.
    assert!(
        (1..=2).contains(&engine.unmatched_replies()),
        "{}",
        engine.unmatched_replies()
    );
}

#[test]
fn a_silent_target_ends_the_job_at_the_adapted_deadline_not_the_ceiling() {
    let socket = FakeSocket::new(|to, _| {
        if to == IpAddr::from([10, 0, 0, 4]) {
            Answer::Never
        } else {
            Answer::After(Duration::from_millis(2))
        }
    });
    let engine = IcmpEngine::start(Some(socket), None, Arc::new(RateLimiter::new(10_000)), 7);
    let policy = TimeoutPolicy {
        floor: Duration::from_millis(50),
        ceiling: Duration::from_secs(10),
        multiplier: 4.0,
    };
    let started = Instant::now();
    let outcome = runtime()
        .block_on(engine.run(job(targets(8), 1, 1, policy)))
        .unwrap();
    assert_eq!(outcome.received(3), 0);
    assert_eq!((0..8).map(|t| outcome.received(t)).sum::<u32>(), 7);
    // The others answered in 2 ms, so the silent one is given the 50 ms floor, not 10 s.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_family_without_a_socket_is_reported_per_target() {
    let socket = FakeSocket::new(|_, _| Answer::After(Duration::from_millis(1)));
    let engine = IcmpEngine::start(Some(socket), None, Arc::new(RateLimiter::new(10_000)), 7);
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    assert!(!engine.has_family(&v6));
    let policy = TimeoutPolicy::fixed(Duration::from_millis(50));
    let outcome = runtime()
        .block_on(engine.run(job(vec![IpAddr::from([10, 0, 0, 1]), v6], 2, 1, policy)))
        .unwrap();
    assert_eq!(outcome.received(0), 2);
    assert_eq!(outcome.received(1), 0);
    assert_eq!(
        outcome.send_errors[1].as_deref(),
        Some("no IPv6 ICMP socket")
    );
}

#[test]
fn the_timeout_policy_clamps_between_floor_and_ceiling() {
    let policy = TimeoutPolicy {
        floor: Duration::from_millis(100),
        ceiling: Duration::from_secs(2),
        multiplier: 3.0,
    };
    assert_eq!(policy.wait_for(None), Duration::from_secs(2));
    assert_eq!(
        policy.wait_for(Some(Duration::from_millis(1))),
        Duration::from_millis(100)
    );
    assert_eq!(
        policy.wait_for(Some(Duration::from_millis(200))),
        Duration::from_millis(600)
    );
    assert_eq!(
        policy.wait_for(Some(Duration::from_secs(1))),
        Duration::from_secs(2)
    );
}
