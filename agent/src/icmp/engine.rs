//! The ICMP engine: one socket per address family shared by every job, one sending thread
//! that paces all probes under the global rate cap, and one receiving thread per socket
//! that matches replies by identifier, sequence and a token in the payload.
//!
//! Why threads and not async tasks: at 10,000 probes/s the work per probe is two system
//! calls; a plain loop that sends 2 ms worth of probes per wake-up, and a
//! receiver reading in batches with kernel timestamps, keeps the CPU per probe low and
//! makes the RTT independent of how busy the async runtime is.

use super::packet::{decode_reply, encode_request, Token};
use super::rate::RateLimiter;
use super::socket::{wall_ns, EchoSocket};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A job may hold at most this many probes (targets × count): 16 bytes of state each.
pub const MAX_PROBES_PER_JOB: usize = 4_000_000;
/// ping's default payload size.
pub const PAYLOAD_LEN: usize = 56;

/// How long to wait for a reply, adapted to what the target has shown: `multiplier` × the
/// slowest RTT seen from it, kept between `floor` and `ceiling`. With nothing seen yet, the
/// slowest RTT any target of the job showed stands in; with no reply at all, the ceiling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeoutPolicy {
    pub floor: Duration,
    pub ceiling: Duration,
    pub multiplier: f32,
}

impl TimeoutPolicy {
    pub fn fixed(timeout: Duration) -> Self {
        TimeoutPolicy {
            floor: timeout,
            ceiling: timeout,
            multiplier: 1.0,
        }
    }

    pub fn wait_for(&self, slowest: Option<Duration>) -> Duration {
        match slowest {
            Some(rtt) => {
                let scaled = (rtt.as_nanos() as f64 * f64::from(self.multiplier)).round();
                Duration::from_nanos(scaled as u64).clamp(self.floor, self.ceiling)
            }
            None => self.ceiling,
        }
    }
}

/// `count` pings to each target, `spacing` apart per target; targets are swept in order.
#[derive(Debug, Clone)]
pub struct PingJob {
    pub targets: Vec<IpAddr>,
    pub count: u32,
    pub spacing: Duration,
    pub timeout: TimeoutPolicy,
    /// Per target, the slowest RTT seen in earlier rounds (empty: none known).
    pub hints: Vec<Option<Duration>>,
}

/// What a job measured: per target, per ping, the RTT or nothing.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub targets: Vec<IpAddr>,
    pub count: u32,
    /// Ping-major: ping `i` of target `t` is at `i * targets.len() + t`. 0 = no reply.
    rtt_ns: Vec<u64>,
    /// The first error that stopped a ping from being sent, per target.
    pub send_errors: Vec<Option<String>>,
}

impl JobOutcome {
    /// `rtts` is ping-major (see the field); `None` is a lost ping.
    pub fn new(targets: Vec<IpAddr>, count: u32, rtts: &[Option<Duration>]) -> Self {
        assert_eq!(
            rtts.len(),
            targets.len() * count as usize,
            "one entry per ping"
        );
        let n = targets.len();
        JobOutcome {
            targets,
            count,
            rtt_ns: rtts
                .iter()
                .map(|r| r.map_or(0, |d| (d.as_nanos() as u64).max(1)))
                .collect(),
            send_errors: vec![None; n],
        }
    }

    /// The pings of target `index` in send order: `Some(rtt)` or `None` for lost.
    pub fn rtts(&self, index: usize) -> impl Iterator<Item = Option<Duration>> + '_ {
        let n = self.targets.len();
        (0..self.count as usize).map(move |i| {
            let ns = self.rtt_ns[i * n + index];
            (ns != 0).then(|| Duration::from_nanos(ns))
        })
    }

    pub fn received(&self, index: usize) -> u32 {
        self.rtts(index).flatten().count() as u32
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("a job of {probes} probes is more than the {MAX_PROBES_PER_JOB} one job may hold")]
    TooLarge { probes: usize },
    #[error("the ICMP engine has stopped")]
    Stopped,
}

/// State a job shares between the sending and the receiving threads.
struct JobState {
    id: u32,
    targets: Vec<IpAddr>,
    count: u32,
    /// When each probe was sent ([`wall_ns`]); 0 = not yet.
    sent_ns: Vec<AtomicU64>,
    rtt_ns: Vec<AtomicU64>,
    received: AtomicU64,
}

impl JobState {
    fn total(&self) -> usize {
        self.sent_ns.len()
    }
}

enum Message {
    Job(Box<NewJob>),
    /// A job got its last reply: finish it now rather than at its deadline.
    Wake,
    Stop,
}

struct NewJob {
    state: Arc<JobState>,
    job: PingJob,
    reply: tokio::sync::oneshot::Sender<JobOutcome>,
}

struct Shared {
    key: u32,
    identifier: u16,
    jobs: Mutex<HashMap<u32, Arc<JobState>>>,
    stop: AtomicBool,
    /// Replies that matched nothing (foreign, late or malformed), for diagnosis.
    unmatched: AtomicU64,
    sent: AtomicU64,
    matched: AtomicU64,
}

/// See [`IcmpEngine::counter_handle`].
pub struct Counters(std::sync::Weak<Shared>);

impl Counters {
    /// (requests sent, replies matched); zeros once the engine is gone.
    pub fn read(&self) -> (u64, u64) {
        self.0.upgrade().map_or((0, 0), |s| {
            (
                s.sent.load(Ordering::Relaxed),
                s.matched.load(Ordering::Relaxed),
            )
        })
    }
}

/// Handle to the running engine; dropping it stops its threads.
pub struct IcmpEngine {
    shared: Arc<Shared>,
    to_sender: mpsc::Sender<Message>,
    next_job: AtomicU32,
    has_v4: bool,
    has_v6: bool,
}

impl IcmpEngine {
    /// Starts the threads over the given sockets (either may be absent).
    pub fn start<S: EchoSocket>(
        v4: Option<S>,
        v6: Option<S>,
        rate: Arc<RateLimiter>,
        identifier: u16,
    ) -> Self {
        let shared = Arc::new(Shared {
            key: rand::random(),
            identifier,
            jobs: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            unmatched: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            matched: AtomicU64::new(0),
        });
        let (to_sender, from_all) = mpsc::channel();
        let (has_v4, has_v6) = (v4.is_some(), v6.is_some());
        let v4 = v4.map(Arc::new);
        let v6 = v6.map(Arc::new);
        for socket in [&v4, &v6].into_iter().flatten() {
            let socket = socket.clone();
            let shared = shared.clone();
            let wake = to_sender.clone();
            let _ = thread::Builder::new()
                .name("icmp-rx".into())
                .spawn(move || receive_loop(socket.as_ref(), &shared, &wake));
        }
        let sender = Sender {
            shared: shared.clone(),
            v4,
            v6,
            rate,
            inbox: from_all,
            jobs: Vec::new(),
            started: Instant::now(),
            packet: Vec::with_capacity(64 + PAYLOAD_LEN),
        };
        let _ = thread::Builder::new()
            .name("icmp-tx".into())
            .spawn(move || sender.run());
        IcmpEngine {
            shared,
            to_sender,
            next_job: AtomicU32::new(rand::random::<u32>() >> 1),
            has_v4,
            has_v6,
        }
    }

    pub fn has_family(&self, target: &IpAddr) -> bool {
        if target.is_ipv4() {
            self.has_v4
        } else {
            self.has_v6
        }
    }

    /// Replies seen that belonged to no running job (late, foreign or malformed).
    pub fn unmatched_replies(&self) -> u64 {
        self.shared.unmatched.load(Ordering::Relaxed)
    }

    /// Echo requests sent and replies matched since the engine started (for progress).
    pub fn counters(&self) -> (u64, u64) {
        (
            self.shared.sent.load(Ordering::Relaxed),
            self.shared.matched.load(Ordering::Relaxed),
        )
    }

    /// A handle that reads [`Self::counters`] without keeping the engine alive.
    pub fn counter_handle(&self) -> Counters {
        Counters(Arc::downgrade(&self.shared))
    }

    /// Runs a job to its end: every ping answered, or the adaptive deadline after the last.
    pub async fn run(&self, job: PingJob) -> Result<JobOutcome, EngineError> {
        let probes = job.targets.len().saturating_mul(job.count as usize);
        if probes > MAX_PROBES_PER_JOB {
            return Err(EngineError::TooLarge { probes });
        }
        let id = self.next_job.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(JobState {
            id,
            targets: job.targets.clone(),
            count: job.count,
            sent_ns: (0..probes).map(|_| AtomicU64::new(0)).collect(),
            rtt_ns: (0..probes).map(|_| AtomicU64::new(0)).collect(),
            received: AtomicU64::new(0),
        });
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.to_sender
            .send(Message::Job(Box::new(NewJob { state, job, reply })))
            .map_err(|_| EngineError::Stopped)?;
        outcome.await.map_err(|_| EngineError::Stopped)
    }
}

impl Drop for IcmpEngine {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = self.to_sender.send(Message::Stop);
    }
}

fn receive_loop<S: EchoSocket>(socket: &S, shared: &Shared, wake: &mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 2048];
    let mut last_error_log: Option<Instant> = None;
    // With kernel timestamps a reply's RTT does not depend on when we read it, so after a
    // wake-up we drain the queue and nap 2 ms: at 10,000 replies/s that is ~20 replies per
    // wake-up instead of one (wake-ups, not sends, were the largest cost per probe).
    let batch = socket.kernel_timestamps();
    while !shared.stop.load(Ordering::Relaxed) {
        let first = match socket.recv(&mut buf) {
            Ok(Some(received)) => received,
            Ok(None) => continue,
            Err(err) => {
                if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %err, "ICMP receive failed");
                    last_error_log = Some(Instant::now());
                }
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        handle_reply(socket, shared, wake, &buf, first);
        if batch {
            while let Ok(Some(received)) = socket.try_recv(&mut buf) {
                handle_reply(socket, shared, wake, &buf, received);
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

fn handle_reply<S: EchoSocket>(
    socket: &S,
    shared: &Shared,
    wake: &mpsc::Sender<Message>,
    buf: &[u8],
    received: super::socket::Received,
) {
    let data = &buf[..received.len.min(buf.len())];
    let Some(reply) = decode_reply(data, socket.is_v6(), socket.has_ip_header()) else {
        return;
    };
    if socket.identifier().is_some_and(|id| id != reply.identifier) {
        return; // another program's ping on a raw socket
    }
    let matched = reply.token.key == shared.key
        && match_reply(
            shared,
            &reply.token,
            reply.sequence,
            received.from,
            received.at_ns,
            wake,
        );
    if !matched {
        shared.unmatched.fetch_add(1, Ordering::Relaxed);
    }
}

/// Records one reply; false when it fits no probe of a running job.
fn match_reply(
    shared: &Shared,
    token: &Token,
    sequence: u16,
    from: IpAddr,
    at_ns: u64,
    wake: &mpsc::Sender<Message>,
) -> bool {
    let job = {
        let jobs = shared.jobs.lock().unwrap_or_else(|e| e.into_inner());
        match jobs.get(&token.job) {
            Some(job) => job.clone(),
            None => return false,
        }
    };
    let slot = token.slot as usize;
    if slot >= job.total() || sequence != token.slot as u16 {
        return false;
    }
    if job.targets[slot % job.targets.len()] != from {
        return false;
    }
    let sent = job.sent_ns[slot].load(Ordering::Acquire);
    if sent == 0 {
        return false;
    }
    let rtt = at_ns.saturating_sub(sent).max(1);
    if job.rtt_ns[slot]
        .compare_exchange(0, rtt, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
    {
        shared.matched.fetch_add(1, Ordering::Relaxed);
        let received = job.received.fetch_add(1, Ordering::AcqRel) + 1;
        if received == job.total() as u64 {
            let _ = wake.send(Message::Wake);
        }
    }
    // A duplicate reply still belongs to us: it is not counted as unmatched.
    true
}

/// A job the sending thread is working through.
struct ActiveJob {
    state: Arc<JobState>,
    job: PingJob,
    reply: Option<tokio::sync::oneshot::Sender<JobOutcome>>,
    next_slot: usize,
    /// Per target, when its previous ping went out (engine-relative ns).
    last_sent: Vec<u64>,
    started: u64,
    deadline: Option<u64>,
    send_errors: Vec<Option<String>>,
}

impl ActiveJob {
    fn sending(&self) -> bool {
        self.next_slot < self.state.total()
    }

    /// When the next probe may go: at once for the first sweep, then `spacing` after the
    /// same target's previous ping (per-target pacing).
    fn due(&self) -> u64 {
        let n = self.state.targets.len();
        if self.next_slot < n {
            self.started
        } else {
            self.last_sent[self.next_slot % n] + self.job.spacing.as_nanos() as u64
        }
    }

    /// After the last send: wait for the slowest target's adapted timeout.
    fn compute_deadline(&self) -> u64 {
        let n = self.state.targets.len();
        let mut slowest = vec![0u64; n];
        for (slot, rtt) in self.state.rtt_ns.iter().enumerate() {
            let rtt = rtt.load(Ordering::Relaxed);
            slowest[slot % n] = slowest[slot % n].max(rtt);
        }
        let job_slowest = slowest.iter().copied().max().filter(|&v| v > 0);
        let policy = &self.job.timeout;
        (0..n)
            .map(|t| {
                let seen = Some(slowest[t])
                    .filter(|&v| v > 0)
                    .map(Duration::from_nanos)
                    .or_else(|| self.job.hints.get(t).copied().flatten())
                    .or(job_slowest.map(Duration::from_nanos));
                self.last_sent[t] + policy.wait_for(seen).as_nanos() as u64
            })
            .max()
            .unwrap_or(self.started)
    }

    fn finish(&mut self) {
        let outcome = JobOutcome {
            targets: self.state.targets.clone(),
            count: self.state.count,
            rtt_ns: self
                .state
                .rtt_ns
                .iter()
                .map(|r| r.load(Ordering::Acquire))
                .collect(),
            send_errors: std::mem::take(&mut self.send_errors),
        };
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(outcome);
        }
    }
}

struct Sender<S: EchoSocket> {
    shared: Arc<Shared>,
    v4: Option<Arc<S>>,
    v6: Option<Arc<S>>,
    rate: Arc<RateLimiter>,
    inbox: mpsc::Receiver<Message>,
    jobs: Vec<ActiveJob>,
    started: Instant,
    packet: Vec<u8>,
}

impl<S: EchoSocket> Sender<S> {
    fn now(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    fn run(mut self) {
        let mut wait: Option<Duration> = None;
        loop {
            let message = match wait {
                None => self.inbox.recv().map_err(|_| ()),
                Some(wait) => match self.inbox.recv_timeout(wait) {
                    Ok(m) => Ok(m),
                    Err(mpsc::RecvTimeoutError::Timeout) => Ok(Message::Wake),
                    Err(mpsc::RecvTimeoutError::Disconnected) => Err(()),
                },
            };
            match message {
                Ok(Message::Job(new)) => self.admit(*new),
                Ok(Message::Wake) => {}
                Ok(Message::Stop) | Err(()) => return,
            }
            // Take whatever else queued up before working.
            while let Ok(message) = self.inbox.try_recv() {
                match message {
                    Message::Job(new) => self.admit(*new),
                    Message::Wake => {}
                    Message::Stop => return,
                }
            }
            if self.shared.stop.load(Ordering::Relaxed) {
                return;
            }
            wait = self.work();
        }
    }

    fn admit(&mut self, new: NewJob) {
        let n = new.state.targets.len();
        self.shared
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(new.state.id, new.state.clone());
        self.jobs.push(ActiveJob {
            state: new.state,
            job: new.job,
            reply: Some(new.reply),
            next_slot: 0,
            last_sent: vec![0; n],
            started: self.now(),
            deadline: None,
            send_errors: vec![None; n],
        });
    }

    /// Sends what is due, finishes what is done, and says how long to sleep.
    fn work(&mut self) -> Option<Duration> {
        let quantum = self.rate.quantum();
        loop {
            let now = self.now();
            let due_now = self
                .jobs
                .iter()
                .filter(|j| j.sending() && j.due() <= now)
                .count();
            if due_now == 0 {
                break;
            }
            let granted = self.rate.take(quantum.max(due_now as u32).min(256));
            if granted == 0 {
                break;
            }
            let mut used = 0;
            while used < granted {
                let now = self.now();
                let Some(index) = self.earliest_due(now) else {
                    break;
                };
                self.send_one(index, now);
                used += 1;
            }
            self.rate.give_back(granted - used);
            if used < granted {
                break;
            }
        }
        self.finish_done();

        // Sleep until the next thing to do; a reply completing a job wakes us sooner.
        let now = self.now();
        let mut next: Option<u64> = None;
        let mut soonest = |t: u64| next = Some(next.map_or(t, |n: u64| n.min(t)));
        for job in &self.jobs {
            if job.sending() {
                let due = job.due();
                if due <= now {
                    let tokens = self.rate.time_until(quantum).as_nanos() as u64;
                    soonest(now + tokens.max(20_000));
                } else {
                    soonest(due);
                }
            } else if let Some(deadline) = job.deadline {
                soonest(deadline);
            }
        }
        next.map(|t| Duration::from_nanos(t.saturating_sub(now)))
    }

    fn earliest_due(&self, now: u64) -> Option<usize> {
        self.jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| j.sending())
            .map(|(i, j)| (i, j.due()))
            .filter(|&(_, due)| due <= now)
            .min_by_key(|&(_, due)| due)
            .map(|(i, _)| i)
    }

    fn send_one(&mut self, index: usize, now: u64) {
        let job = &mut self.jobs[index];
        let slot = job.next_slot;
        let n = job.state.targets.len();
        let target = job.state.targets[slot % n];
        job.next_slot += 1;
        job.last_sent[slot % n] = now;
        let socket = if target.is_ipv4() {
            self.v4.as_ref()
        } else {
            self.v6.as_ref()
        };
        let Some(socket) = socket else {
            job.send_errors[slot % n].get_or_insert_with(|| {
                format!(
                    "no {} ICMP socket",
                    if target.is_ipv4() { "IPv4" } else { "IPv6" }
                )
            });
            return;
        };
        let token = Token {
            key: self.shared.key,
            job: job.state.id,
            slot: slot as u32,
        };
        encode_request(
            &mut self.packet,
            target.is_ipv6(),
            self.shared.identifier,
            slot as u16,
            token,
            PAYLOAD_LEN,
        );
        // Stamp before sending: the reply can arrive before send_to even returns.
        job.state.sent_ns[slot].store(wall_ns(), Ordering::Release);
        match socket.send_to(&self.packet, target) {
            Ok(()) => {
                self.shared.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                job.state.sent_ns[slot].store(0, Ordering::Release);
                job.send_errors[slot % n].get_or_insert_with(|| err.to_string());
            }
        }
    }

    fn finish_done(&mut self) {
        let now = self.now();
        for job in &mut self.jobs {
            if job.sending() {
                continue;
            }
            let all_answered =
                job.state.received.load(Ordering::Acquire) == job.state.total() as u64;
            // No deadline can come before the floor after the last send, and the replies seen
            // by then are what the adapted wait is based on: so look first at that point, and
            // again whenever the deadline found then is reached (the wait only grows with
            // more replies, so this ends).
            let deadline = match job.deadline {
                Some(deadline) if now >= deadline => {
                    let adapted = job.compute_deadline();
                    job.deadline = Some(adapted);
                    adapted
                }
                Some(deadline) => deadline,
                None => {
                    let last = job.last_sent.iter().copied().max().unwrap_or(job.started);
                    let first_look = last + job.job.timeout.floor.as_nanos() as u64;
                    job.deadline = Some(first_look);
                    first_look.max(now + 1)
                }
            };
            if all_answered || now >= deadline {
                self.shared
                    .jobs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&job.state.id);
                job.finish();
            }
        }
        self.jobs.retain(|j| j.reply.is_some());
    }
}

#[cfg(test)]
mod tests;
