//! The driving loop: [`Sim`] polls each call through [`Call::poll_with`] — the production
//! path: the shared state is taken only when the call needs it, and every taking is counted
//! ([`Sim::locks_taken`]) — performs its actions against the script in virtual time (several
//! exchanges at once: a hedge, a probe), reports the events back, and checks the driver's
//! contract as it goes.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use vllm_client_core::call::{
    Action, AttemptId, Call, CallReport, Event, Purpose, ResponseHead, Shared, TransportErrorKind,
    WaitReason,
};
use vllm_client_core::client::CallSpec;
use vllm_client_core::config::ClientConfig;
use vllm_client_core::policy::WaiterId;
use vllm_client_core::{StreamEvent, VllmError};

use super::script::{Kind, SimCall, SimEnd, SimPart, SimResponse, SimServer};
use super::timeline::{Emitted, SimFault, SimOutcome, Step, TimelineEntry};
use super::{chat_json, DEFAULT_MAX_STEPS, WALL_ORIGIN_SECS};

/// The virtual-time simulator: see the [module docs](super).
#[derive(Debug)]
pub struct Sim {
    config: ClientConfig,
    shared: Shared,
    origin: Instant,
    wall_origin: SystemTime,
    now: Instant,
    max_steps: usize,
    timeline: Vec<TimelineEntry>,
    /// How far behind the true time each `now` handed to the driver is (cycled); empty: none.
    skew: Vec<Duration>,
    skew_at: usize,
    servers: Vec<SimServer>,
    /// How many times a call took the shared state (see [`Sim::locks_taken`]).
    locks: u64,
}

impl Sim {
    /// A simulator for calls with `config`; `seed` seeds [`Shared`] (the jitter), unless the
    /// policy has a seed of its own.
    pub fn new(config: ClientConfig, seed: u64) -> Sim {
        let shared = Shared::new(&config, seed);
        let origin = Instant::now();
        Sim {
            config,
            shared,
            origin,
            wall_origin: SystemTime::UNIX_EPOCH + Duration::from_secs(WALL_ORIGIN_SECS),
            now: origin,
            max_steps: DEFAULT_MAX_STEPS,
            timeline: Vec::new(),
            skew: Vec::new(),
            skew_at: 0,
            servers: Vec::new(),
            locks: 0,
        }
    }

    /// How many times calls took the shared state so far. Calls take it only when they owe or
    /// need it (admission, a breaker outcome, a retry decision, their end), never to read or
    /// emit a body — as they do in production, through the same
    /// [`Call::poll_with`](vllm_client_core::call::Call::poll_with).
    pub fn locks_taken(&self) -> u64 {
        self.locks
    }

    /// Several servers (a pool): an attempt sent to one of their hosts is answered by it
    /// instead of the call's script. The run checks, at every send, that the attempt went to
    /// a healthy endpoint (or to the one probe of an ejected one) whenever one was healthy,
    /// and that no more endpoints are ejected than the policy allows.
    pub fn with_servers(mut self, servers: Vec<SimServer>) -> Sim {
        self.servers = servers;
        self
    }

    /// How many attempts each server of [`with_servers`](Self::with_servers) answered, in
    /// order.
    pub fn server_hits(&self) -> Vec<usize> {
        self.servers.iter().map(|s| s.hits).collect()
    }

    /// How many health probes each server answered, in order.
    pub fn server_probes(&self) -> Vec<usize> {
        self.servers.iter().map(|s| s.probes).collect()
    }

    /// Bounds the driver steps of each [`run`](Self::run) / [`run_all`](Self::run_all).
    pub fn with_max_steps(mut self, max_steps: usize) -> Sim {
        self.max_steps = max_steps;
        self
    }

    /// Models an adapter whose clock readings are sometimes stale: the `now` handed to every
    /// `poll`, `handle` and `cancel` is the true virtual time minus the next of these skews
    /// (cycled, starting with the first). The driver must take a `now` earlier than one it
    /// already saw as the latest one; a skew of zero lets the true time through. Calls are
    /// still created at the true time, and the timeline records the true time.
    ///
    /// Every skew non-zero means the driver never sees its deadlines pass: the run ends at the
    /// step bound. Include a zero.
    pub fn with_time_skew(mut self, skew: Vec<Duration>) -> Sim {
        self.skew = skew;
        self.skew_at = 0;
        self
    }

    /// The configuration calls are made with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The shared state (breaker, budget, limiters).
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The shared state, to inspect transitions or force the breaker.
    pub fn shared_mut(&mut self) -> &mut Shared {
        &mut self.shared
    }

    /// The current virtual instant.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the simulator started.
    pub fn elapsed(&self) -> Duration {
        self.now.saturating_duration_since(self.origin)
    }

    /// The offset of `t` from the simulator's start.
    pub fn offset(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.origin)
    }

    /// The wall-clock time at the current virtual instant.
    pub fn wall_now(&self) -> SystemTime {
        self.wall_origin + self.elapsed()
    }

    /// Moves the virtual clock forward.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.checked_add(d).unwrap_or(self.now);
    }

    /// Every timeline entry of every run so far, in order.
    pub fn timeline(&self) -> &[TimelineEntry] {
        &self.timeline
    }

    /// Runs one call to its end, starting now.
    pub fn run(&mut self, spec: CallSpec, script: Vec<SimResponse>) -> SimOutcome {
        let mut out = self.run_all(vec![SimCall::new(spec, script)]);
        match out.pop() {
            Some(o) => o,
            // Unreachable: run_all returns one outcome per call.
            None => SimOutcome {
                result: Err(VllmError::InvalidRequest("simulator: no outcome".into())),
                events: Vec::new(),
                timeline: Vec::new(),
                report: CallReport::default(),
                sleeps: Vec::new(),
                sends: Vec::new(),
                hedges: Vec::new(),
                violations: Vec::new(),
                fault: Some(SimFault::Unexpected("no outcome".into())),
                started_at: self.elapsed(),
                ended_at: self.elapsed(),
                observations: Vec::new(),
            },
        }
    }

    /// Runs these calls concurrently over the shared state until all have ended; returns their
    /// outcomes in the same order. At one virtual instant, calls act in list order.
    pub fn run_all(&mut self, calls: Vec<SimCall>) -> Vec<SimOutcome> {
        let run_start = self.now;
        let mut tasks: Vec<Task> = calls
            .into_iter()
            .enumerate()
            .map(|(i, c)| Task::new(i, c, run_start, self.elapsed()))
            .collect();
        let mut steps = 0usize;
        loop {
            // The next task to act: the earliest wake, list order on ties.
            let next = tasks
                .iter()
                .enumerate()
                .filter_map(|(i, t)| t.wake(self.now).map(|w| (w, i)))
                .min();
            let Some((wake, i)) = next else {
                // Nothing scheduled: every call ended, or the rest wait forever.
                let mut any = false;
                for t in tasks.iter_mut().filter(|t| !t.is_done()) {
                    any = true;
                    self.fault(t, SimFault::Hang);
                }
                if any {
                    self.wake_waiters(&mut tasks);
                    continue;
                }
                break;
            };
            if wake > self.now {
                self.now = wake;
            }
            steps += 1;
            if steps > self.max_steps {
                for t in tasks.iter_mut().filter(|t| !t.is_done()) {
                    self.fault(t, SimFault::StepLimit);
                }
                break;
            }
            self.step(&mut tasks[i], &mut steps);
            self.check_shared(&mut tasks[i]);
            self.wake_waiters(&mut tasks);
        }
        tasks.into_iter().map(|t| t.into_outcome()).collect()
    }

    /// Wakes exactly the waiters the core names ([`Shared::poll_wake`]): they are told
    /// [`Event::PermitReleased`] now. Nobody else is woken.
    ///
    /// Checks first come, first served on the way: the waiter named must be the one that
    /// waited longest (the smallest [`WaiterId`] still waiting).
    fn wake_waiters(&mut self, tasks: &mut [Task]) {
        while let Some(waiter) = self.shared.poll_wake() {
            let earlier = tasks
                .iter()
                .filter_map(|t| match t.wait {
                    Wait::Until {
                        waiter: Some(w), ..
                    } if w < waiter => Some(w),
                    _ => None,
                })
                .min();
            for t in tasks.iter_mut() {
                if let (
                    Some(earlier),
                    Wait::Until {
                        waiter: Some(w), ..
                    },
                ) = (earlier, &t.wait)
                {
                    if *w == waiter {
                        t.violations.push(format!(
                            "{waiter:?} was handed a slot before {earlier:?}, which waited longer"
                        ));
                    }
                }
                if matches!(t.wait, Wait::Until { waiter: Some(w), .. } if w == waiter) {
                    t.wait = Wait::Woken;
                }
            }
        }
    }

    /// The shared state's invariants, after each step (breaches are listed on the call that
    /// stepped): no more calls in flight than `max_concurrency` (or than an adaptive limit's
    /// `max`), no more half-open probes than the breaker admits.
    fn check_shared(&mut self, task: &mut Task) {
        let policy = &self.config.policy;
        if let (Some(max), Some(n)) = (policy.max_concurrency, self.shared.in_flight()) {
            if n > max {
                task.violations.push(format!(
                    "{n} calls in flight, more than max_concurrency {max}"
                ));
            }
        }
        if let (Some(auto), Some(n)) = (policy.auto_concurrency, self.shared.in_flight()) {
            // An adaptive limit moves, but never past its bounds.
            let max = auto.sanitized().max;
            if n > max {
                task.violations.push(format!(
                    "{n} calls in flight, more than the adaptive limit's max {max}"
                ));
            }
        }
        let probes = policy.breaker.map(|b| b.half_open_probes.max(1));
        let now = self.now;
        if let (Some(max), Some(breaker)) = (probes, self.shared.breaker_mut()) {
            let n = breaker.in_flight_probes(now);
            if n > max {
                task.violations
                    .push(format!("{n} half-open probes in flight, more than {max}"));
            }
        }
    }

    /// At a send to `host`: the endpoint is healthy or probing (just dispatched), unless no
    /// endpoint is healthy; no more endpoints are out of rotation than the policy allows.
    fn check_route(&mut self, task: &mut Task, host: &str) {
        use vllm_client_core::policy::Health;
        let endpoints = self.shared.endpoints(self.now);
        let any_healthy = endpoints.iter().any(|e| e.health == Health::Healthy);
        let chosen = endpoints.iter().find(|e| e.url.contains(host));
        if let Some(e) = chosen {
            if matches!(e.health, Health::Ejected { .. }) && any_healthy {
                task.violations.push(format!(
                    "attempt sent to ejected endpoint {} while another was healthy",
                    e.url
                ));
            }
        }
        if let Some(e) = chosen {
            // Per-endpoint limits: never above its own while another healthy one has room.
            let room_elsewhere = endpoints.iter().any(|o| {
                o.id != e.id
                    && o.health == Health::Healthy
                    && o.limit.is_some_and(|l| o.in_flight < l)
            });
            if let Some(l) = e.limit {
                if e.in_flight > l && room_elsewhere {
                    task.violations.push(format!(
                        "attempt sent to {} at its limit {l} while another had room",
                        e.url
                    ));
                }
            }
        }
        let out = endpoints
            .iter()
            .filter(|e| e.health != Health::Healthy)
            .count();
        let max = self
            .config
            .policy
            .pool
            .ejection
            .max_ejected(endpoints.len());
        if out > max {
            task.violations.push(format!(
                "{out} endpoints out of rotation, more than the {max} allowed"
            ));
        }
    }

    /// After `Done`: polling again returns the same result, and late events (a chunk, a
    /// timeout, the body's end, a permit), even much later, change neither the result nor the
    /// calls in flight.
    fn check_done_is_sticky(&mut self, task: &mut Task, done: &Result<Bytes, VllmError>) {
        let Some(call) = task.call.as_mut() else {
            return;
        };
        let key = |r: &Result<Bytes, VllmError>| r.clone().map_err(|e| e.to_string());
        let expected = key(done);
        let in_flight = self.shared.in_flight();
        let attempt = call.attempt();
        for i in 0..3u32 {
            let later = self
                .now
                .checked_add(Duration::from_secs(7) * i)
                .unwrap_or(self.now);
            let late = [
                Event::Chunk {
                    attempt,
                    bytes: Bytes::from_static(b"data: [DONE]\n\n"),
                },
                Event::Timeout,
                Event::BodyEnd { attempt },
                Event::PermitReleased,
            ];
            for event in late {
                call.handle(later, event);
            }
            let locks = &mut self.locks;
            let shared = &mut self.shared;
            let action = call.poll_with(later, || {
                *locks += 1;
                &mut *shared
            });
            match action {
                Action::Done(r) if key(&r) == expected => {}
                other => {
                    task.violations
                        .push(format!("after Done, poll returned {other:?}"));
                    return;
                }
            }
        }
        if self.shared.in_flight() != in_flight {
            task.violations
                .push("events after Done changed the calls in flight".into());
        }
    }

    /// The `now` handed to the driver: the true virtual time, or an earlier one when skewing.
    fn driver_now(&mut self) -> Instant {
        if self.skew.is_empty() {
            return self.now;
        }
        let skew = self.skew[self.skew_at % self.skew.len()];
        self.skew_at = self.skew_at.wrapping_add(1);
        self.now.checked_sub(skew).unwrap_or(self.now)
    }

    fn record(&mut self, task: &mut Task, step: Step) {
        let entry = TimelineEntry {
            at: self.elapsed(),
            call: task.index,
            step,
        };
        self.timeline.push(entry.clone());
        task.timeline.push(entry);
    }

    fn off(&self, t: Option<Instant>) -> Option<Duration> {
        t.map(|t| self.offset(t))
    }

    /// Cancels a call the simulator cannot continue, and collects its result.
    fn fault(&mut self, task: &mut Task, fault: SimFault) {
        task.fault.get_or_insert(fault);
        task.ops.clear();
        let now = self.driver_now();
        if let Some(call) = task.call.as_mut() {
            call.cancel(now, &mut self.shared);
            self.locks += 1;
            self.record(task, Step::Cancel);
            if let Some(call) = task.call.as_mut() {
                match call.poll(now, &mut self.shared) {
                    Action::Done(r) => {
                        let step =
                            Step::Done(r.as_ref().map(|b| b.len()).map_err(|e| e.to_string()));
                        self.record(task, step);
                        self.check_done_is_sticky(task, &r);
                        task.finish(r, self.elapsed());
                        return;
                    }
                    other => task.violations.push(format!(
                        "after cancel, poll returned {other:?} instead of Done"
                    )),
                }
            }
        }
        let e = VllmError::InvalidRequest(format!(
            "simulator fault: {}",
            task.fault
                .as_ref()
                .map(|f| f.to_string())
                .unwrap_or_default()
        ));
        task.finish(Err(e), self.elapsed());
    }

    /// The caller drops the call.
    fn cancel(&mut self, task: &mut Task) {
        task.wait_promised = None;
        task.was_cancelled = true;
        task.ops.clear();
        let driver_now = self.driver_now();
        if let Some(call) = task.call.as_mut() {
            call.cancel(driver_now, &mut self.shared);
            self.locks += 1;
        }
        self.record(task, Step::Cancel);
    }

    /// Delivers what the task waits for, then polls it until it blocks again.
    fn step(&mut self, task: &mut Task, steps: &mut usize) {
        let now = self.now;
        // Scripted cancellation preempts whatever the call waits for.
        if task.cancel_at.is_some_and(|c| c <= now) && task.call.is_some() && !task.is_done() {
            task.cancel_at = None;
            self.cancel(task);
            task.wait = Wait::Poll;
        } else {
            match std::mem::replace(&mut task.wait, Wait::Poll) {
                Wait::Start(_) => {
                    let spec = task.spec.take().unwrap_or_else(chat_json);
                    let call = Call::new(&self.config, spec, now, &mut self.shared);
                    self.locks += 1;
                    task.overall = self.config.policy.timeouts.deadline_from(now);
                    task.started_at = self.elapsed();
                    task.call = Some(call);
                    self.record(task, Step::Start);
                    if let Some(bad) = task.invalid_script.take() {
                        self.fault(task, SimFault::InvalidScript(bad));
                        return;
                    }
                }
                Wait::Woken => self.deliver(task, None, Pending::PermitReleased),
                Wait::Until { until, .. } => {
                    // The first arrival at or before `until` wins (an arrival exactly at the
                    // deadline beats it); otherwise the timer fires.
                    match task.next_arrival() {
                        Some((i, at)) if until.is_none_or(|u| at <= u) && at <= now => {
                            let op = &mut task.ops[i];
                            let attempt = op.attempt;
                            if let Some((_, pending)) = op.arrival.take() {
                                self.deliver(task, Some(attempt), pending);
                            }
                        }
                        _ => self.deliver(task, None, Pending::Timeout),
                    }
                }
                Wait::Poll => {}
                w @ (Wait::Never | Wait::Done) => {
                    task.wait = w;
                    return;
                }
            }
        }
        self.drive(task, steps);
    }

    fn deliver(&mut self, task: &mut Task, attempt: Option<AttemptId>, pending: Pending) {
        let now = self.driver_now();
        let (step, event) = match (pending, attempt) {
            (Pending::Timeout, _) => (Step::Timeout, Event::Timeout),
            (Pending::PermitReleased, _) => (Step::PermitReleased, Event::PermitReleased),
            (Pending::Head(head), Some(attempt)) => {
                let status = head.status.as_u16();
                (Step::Response(status), Event::Response { attempt, head })
            }
            (Pending::Transport(kind), Some(attempt)) => (
                Step::TransportError(kind),
                Event::TransportError {
                    attempt,
                    kind,
                    message: format!("simulated {kind:?}"),
                    source: None,
                },
            ),
            (Pending::Chunk(b), Some(attempt)) => {
                (Step::Chunk(b.len()), Event::Chunk { attempt, bytes: b })
            }
            (Pending::BodyEnd, Some(attempt)) => (Step::BodyEnd, Event::BodyEnd { attempt }),
            (pending, None) => {
                let what = format!("{pending:?} without its attempt");
                self.fault(task, SimFault::Unexpected(what));
                return;
            }
        };
        self.record(task, step);
        task.wait_promised = None;
        if let Some(call) = task.call.as_mut() {
            call.handle(now, event);
        }
    }

    /// Polls until the call blocks on something in the future (or ends).
    fn drive(&mut self, task: &mut Task, steps: &mut usize) {
        loop {
            *steps += 1;
            if *steps > self.max_steps {
                self.fault(task, SimFault::StepLimit);
                return;
            }
            let now = self.now;
            if task.cancel_after_polls.is_some_and(|n| task.polls >= n) {
                // The caller drops the call between two polls.
                task.cancel_after_polls = None;
                self.cancel(task);
            }
            task.polls += 1;
            let driver_now = self.driver_now();
            let Some(call) = task.call.as_mut() else {
                return;
            };
            // The production path: the shared state only when the call needs it.
            let locks = &mut self.locks;
            let shared = &mut self.shared;
            let action = call.poll_with(driver_now, || {
                *locks += 1;
                &mut *shared
            });
            if let Some(promised) = task.wait_promised.take() {
                let kept = matches!(
                    &action,
                    Action::Wait { until, waiter: None, reason: WaitReason::Exchange }
                        if *until == promised
                );
                if !kept {
                    task.violations.push(format!(
                        "waits_after_read promised a wait until {:?}, the next poll gave {action:?}",
                        self.off(promised)
                    ));
                }
            }
            match action {
                Action::Emit(ev) => {
                    if task.terminal_emitted {
                        task.violations
                            .push(format!("event emitted after the terminal one: {ev:?}"));
                    }
                    if !task.is_stream {
                        task.violations
                            .push(format!("a non-stream call emitted {ev:?}"));
                    }
                    if ev.is_terminal() && !task.ops.is_empty() {
                        task.violations
                            .push("a terminal event before its attempt was closed".into());
                    }
                    task.terminal_emitted |= ev.is_terminal();
                    self.record(task, Step::Emit(Emitted::of(&ev)));
                    task.events.push(ev);
                }
                Action::Done(r) => {
                    let step = Step::Done(r.as_ref().map(|b| b.len()).map_err(|e| e.to_string()));
                    self.record(task, step);
                    if task.overall.is_some_and(|d| now > d) {
                        task.violations.push(format!(
                            "the call ended at {:?}, after its deadline",
                            self.elapsed()
                        ));
                    }
                    if !task.ops.is_empty() && !task.cancelled() && task.fault.is_none() {
                        task.violations
                            .push("the call ended with attempts it never closed".into());
                    }
                    if task.is_stream && task.fault.is_none() && !task.cancelled() {
                        if !task.events.is_empty() && r.is_err() {
                            task.violations
                                .push("a stream that emitted events ended with Err".into());
                        }
                        if r.is_ok() && !task.terminal_emitted {
                            task.violations
                                .push("a stream ended Ok without a terminal event".into());
                        }
                    }
                    self.check_done_is_sticky(task, &r);
                    task.finish(r, self.elapsed());
                    return;
                }
                Action::Send {
                    attempt,
                    purpose,
                    deadline,
                    connect_timeout,
                    request,
                } => {
                    let host = request.uri().authority().map(|a| a.to_string());
                    let server = host
                        .as_ref()
                        .and_then(|h| self.servers.iter().position(|s| &s.host == h));
                    let resp = match purpose {
                        // A pool's health probe of an endpoint whose ejection is over: answered
                        // by that server's health responder, not counted as an attempt.
                        Purpose::HealthProbe => {
                            self.record(
                                task,
                                Step::Probe {
                                    to: host.unwrap_or_default(),
                                },
                            );
                            let at = self.elapsed();
                            match server {
                                Some(i) => {
                                    let s = &mut self.servers[i];
                                    s.probes += 1;
                                    (s.health)(at)
                                }
                                None => SimResponse::status(200),
                            }
                        }
                        _ => {
                            let hedge = purpose == Purpose::Hedge;
                            if hedge {
                                task.hedges.push(self.elapsed());
                            } else {
                                task.sends.push(self.elapsed());
                            }
                            let n = (task.sends.len() + task.hedges.len()) as u32;
                            self.check_deadline(task, deadline, "send");
                            // Only a resume (the rest of a numbered stream) follows output.
                            if !task.events.is_empty() && purpose != Purpose::Resume {
                                task.violations
                                    .push(format!("send #{n} after a stream event was emitted"));
                            }
                            let max = self.config.policy.retry.max_retries.saturating_add(1);
                            if task.sends.len() as u32 > max {
                                task.violations.push(format!(
                                    "attempt #{} exceeds 1 + max_retries = {max}",
                                    task.sends.len()
                                ));
                            }
                            if task.hedges.len() > 1 {
                                task.violations.push("more than one hedge in a call".into());
                            }
                            let off = self.off(deadline);
                            if server.is_some() {
                                self.check_route(task, host.as_deref().unwrap_or(""));
                            }
                            let to = server.and(host);
                            let step = if hedge {
                                Step::Hedge {
                                    attempt: n,
                                    deadline: off,
                                    to,
                                }
                            } else {
                                Step::Send {
                                    attempt: n,
                                    deadline: off,
                                    to,
                                }
                            };
                            self.record(task, step);
                            match server {
                                Some(i) => {
                                    let at = self.elapsed();
                                    let s = &mut self.servers[i];
                                    s.hits += 1;
                                    (s.respond)(at)
                                }
                                None => match task.script.pop_front() {
                                    Some(resp) => resp,
                                    None => {
                                        self.fault(task, SimFault::ScriptExhausted);
                                        return;
                                    }
                                },
                            }
                        }
                    };
                    self.answer(task, attempt, resp, connect_timeout);
                }
                Action::ReadBody { attempt, deadline } => {
                    if task.call.as_ref().is_some_and(Call::waits_after_read) {
                        task.wait_promised = Some(deadline);
                    }
                    self.check_deadline(task, deadline, "read");
                    let off = self.off(deadline);
                    self.record(task, Step::ReadBody { deadline: off });
                    if !self.read(task, attempt) {
                        return;
                    }
                }
                Action::Close { attempt } => {
                    if !task.ops.iter().any(|o| o.attempt == attempt) {
                        task.violations
                            .push(format!("close of attempt {} twice", attempt.get()));
                    }
                    task.ops.retain(|o| o.attempt != attempt);
                    self.record(task, Step::Close);
                }
                Action::Wait {
                    until,
                    waiter,
                    reason,
                } => {
                    self.check_deadline(task, until, "wait");
                    if task.overall.is_some_and(|d| until.is_some_and(|u| u > d)) {
                        task.violations.push(format!(
                            "a wait ends at {:?}, past the deadline",
                            self.off(until)
                        ));
                    }
                    match (&reason, waiter) {
                        (_, Some(_)) | (WaitReason::Permit, _) => {
                            let off = self.off(until);
                            self.record(task, Step::WaitForPermit { deadline: off });
                        }
                        (WaitReason::Exchange, None) => {}
                        (reason, None) => {
                            let duration =
                                until.map_or(Duration::ZERO, |u| u.saturating_duration_since(now));
                            task.sleeps.push(duration);
                            let retry = matches!(reason, WaitReason::Backoff(_));
                            self.record(task, Step::Sleep { duration, retry });
                        }
                    }
                    let until = until.map(|u| u.max(now));
                    let nothing = until.is_none()
                        && waiter.is_none()
                        && task.ops.iter().all(|o| o.arrival.is_none());
                    task.wait = if nothing {
                        Wait::Never
                    } else {
                        Wait::Until { until, waiter }
                    };
                    return;
                }
            }
        }
    }

    fn check_deadline(&self, task: &mut Task, deadline: Option<Instant>, what: &str) {
        if let (Some(d), Some(overall)) = (deadline, task.overall) {
            if d > overall {
                task.violations.push(format!(
                    "{what} deadline {:?} is past the overall deadline {:?}",
                    self.offset(d),
                    self.offset(overall)
                ));
            }
        }
    }

    /// Schedules the answer to a send: head, transport error, or nothing (a stall).
    fn answer(
        &mut self,
        task: &mut Task,
        attempt: AttemptId,
        resp: SimResponse,
        connect_timeout: Option<Duration>,
    ) {
        let now = self.now;
        let at = |d: Duration| now.checked_add(d);
        let mut op = SimOp {
            attempt,
            body: None,
            arrival: None,
        };
        // Connection phase.
        let connect_timed_out = connect_timeout.filter(|ct| resp.connect_delay > *ct);
        let scheduled: Option<(Option<Instant>, Pending)> = if let Some(ct) = connect_timed_out {
            Some((
                at(ct),
                Pending::Transport(TransportErrorKind::ConnectTimeout),
            ))
        } else {
            match resp.kind {
                Kind::Stall => None,
                Kind::ConnectRefused => Some((
                    at(resp.connect_delay),
                    Pending::Transport(TransportErrorKind::Connect),
                )),
                Kind::ResetBeforeHead => Some((
                    at(resp.connect_delay.saturating_add(resp.head_delay)),
                    Pending::Transport(TransportErrorKind::Io),
                )),
                Kind::Answer => {
                    let when = at(resp.connect_delay.saturating_add(resp.head_delay));
                    let wall = self.wall_origin
                        + when.unwrap_or(now).saturating_duration_since(self.origin);
                    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::OK);
                    let head = ResponseHead::new(status, resp.headers.clone(), wall);
                    op.body = Some(BodyCursor {
                        parts: resp.parts.into_iter().collect(),
                        ready_at: when.unwrap_or(now),
                        end: resp.end,
                    });
                    Some((when, Pending::Head(head)))
                }
            }
        };
        // An arrival whose instant overflows never happens.
        op.arrival = scheduled.and_then(|(t, p)| t.map(|t| (t, p)));
        task.ops.push(op);
    }

    /// Schedules the next body part of `attempt`, the body's end, or nothing (a stall).
    /// `false`: the simulator cannot (no response to read): the call was faulted.
    fn read(&mut self, task: &mut Task, attempt: AttemptId) -> bool {
        let now = self.now;
        let Some(op) = task.ops.iter_mut().find(|o| o.attempt == attempt) else {
            self.fault(
                task,
                SimFault::Unexpected("ReadBody of an attempt that was never sent".into()),
            );
            return false;
        };
        let Some(body) = op.body.as_mut() else {
            self.fault(
                task,
                SimFault::Unexpected("ReadBody without a response".into()),
            );
            return false;
        };
        if body.ready_at < now {
            body.ready_at = now;
        }
        while let Some(SimPart::Wait(w)) = body.parts.front() {
            match body.ready_at.checked_add(*w) {
                Some(t) => {
                    body.ready_at = t;
                    body.parts.pop_front();
                }
                None => {
                    // An absurd wait: nothing more ever arrives.
                    body.parts.clear();
                    body.end = SimEnd::Stall;
                }
            }
        }
        let at = body.ready_at;
        op.arrival = match body.parts.pop_front() {
            Some(SimPart::Data(b)) => Some((at, Pending::Chunk(b))),
            Some(SimPart::Comment) => {
                Some((at, Pending::Chunk(Bytes::from_static(b": keep-alive\n\n"))))
            }
            Some(SimPart::Wait(_)) | None => match body.end {
                SimEnd::Close => Some((at, Pending::BodyEnd)),
                SimEnd::Reset => Some((at, Pending::Transport(TransportErrorKind::Io))),
                SimEnd::Stall => None,
            },
        };
        true
    }
}

// --------------------------------------------------------------------------------------------
// Tasks
// --------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Pending {
    Head(ResponseHead),
    Transport(TransportErrorKind),
    Chunk(Bytes),
    BodyEnd,
    Timeout,
    PermitReleased,
}

#[derive(Debug)]
enum Wait {
    /// Not created yet; starts at this instant.
    Start(Instant),
    /// Ready to be polled now.
    Poll,
    /// Its turn for a slot came: told so now.
    Woken,
    /// Blocked in the core's `Wait`: until `until`, an operation's arrival, or (with a
    /// waiter) its turn for a slot.
    Until {
        until: Option<Instant>,
        waiter: Option<WaiterId>,
    },
    /// Waits for something that never happens.
    Never,
    /// Ended.
    Done,
}

#[derive(Debug)]
struct BodyCursor {
    parts: VecDeque<SimPart>,
    ready_at: Instant,
    end: SimEnd,
}

/// One attempt in flight: its response (once answered) and the next thing that arrives for it.
#[derive(Debug)]
struct SimOp {
    attempt: AttemptId,
    body: Option<BodyCursor>,
    arrival: Option<(Instant, Pending)>,
}

#[derive(Debug)]
struct Task {
    index: usize,
    spec: Option<CallSpec>,
    is_stream: bool,
    script: VecDeque<SimResponse>,
    invalid_script: Option<String>,
    call: Option<Call>,
    wait: Wait,
    cancel_at: Option<Instant>,
    cancel_after_polls: Option<usize>,
    polls: usize,
    was_cancelled: bool,
    /// The attempts in flight.
    ops: Vec<SimOp>,
    overall: Option<Instant>,
    terminal_emitted: bool,
    result: Option<Result<Bytes, VllmError>>,
    events: Vec<StreamEvent>,
    timeline: Vec<TimelineEntry>,
    sleeps: Vec<Duration>,
    sends: Vec<Duration>,
    hedges: Vec<Duration>,
    violations: Vec<String>,
    /// What `Call::waits_after_read` promised the poll after a `ReadBody` returns: a plain
    /// wait until that deadline (contract rule 12, which the runner relies on).
    wait_promised: Option<Option<Instant>>,
    fault: Option<SimFault>,
    started_at: Duration,
    ended_at: Duration,
}

impl Task {
    fn new(index: usize, c: SimCall, run_start: Instant, elapsed: Duration) -> Task {
        let invalid: Vec<String> = c
            .script
            .iter()
            .flat_map(|r| r.invalid.iter().cloned())
            .collect();
        let at = |d: Duration| run_start.checked_add(d).unwrap_or(run_start);
        Task {
            index,
            is_stream: c.spec.stream.is_some(),
            spec: Some(c.spec),
            script: c.script.into_iter().collect(),
            invalid_script: (!invalid.is_empty()).then(|| invalid.join(", ")),
            call: None,
            wait: Wait::Start(at(c.start_after)),
            cancel_at: c.cancel_after.map(at),
            cancel_after_polls: c.cancel_after_polls,
            polls: 0,
            was_cancelled: false,
            ops: Vec::new(),
            overall: None,
            terminal_emitted: false,
            result: None,
            events: Vec::new(),
            timeline: Vec::new(),
            sleeps: Vec::new(),
            sends: Vec::new(),
            hedges: Vec::new(),
            violations: Vec::new(),
            wait_promised: None,
            fault: None,
            started_at: elapsed,
            ended_at: elapsed,
        }
    }

    fn is_done(&self) -> bool {
        matches!(self.wait, Wait::Done)
    }

    fn cancelled(&self) -> bool {
        self.was_cancelled
    }

    /// The attempt in flight whose next arrival comes first, and when (list order on ties).
    fn next_arrival(&self) -> Option<(usize, Instant)> {
        self.ops
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.arrival.as_ref().map(|(t, _)| (*t, i)))
            .min()
            .map(|(t, i)| (i, t))
    }

    /// When this task next acts.
    fn wake(&self, now: Instant) -> Option<Instant> {
        let own = match &self.wait {
            Wait::Start(t) => return Some(*t),
            Wait::Poll | Wait::Woken => Some(now),
            Wait::Until { until, .. } => {
                let arrival = self.next_arrival().map(|(_, t)| t);
                match (*until, arrival) {
                    (Some(u), Some(a)) => Some(u.min(a)),
                    (u, a) => u.or(a),
                }
            }
            Wait::Never | Wait::Done => None,
        };
        if matches!(self.wait, Wait::Done) {
            return None;
        }
        match (own, self.cancel_at) {
            (Some(a), Some(c)) => Some(a.min(c)),
            (a, c) => a.or(c),
        }
    }

    fn finish(&mut self, r: Result<Bytes, VllmError>, at: Duration) {
        if self.result.is_none() {
            self.result = Some(r);
            self.ended_at = at;
        }
        self.wait = Wait::Done;
        self.ops.clear();
    }

    fn into_outcome(mut self) -> SimOutcome {
        let observations = self
            .call
            .as_mut()
            .map(|c| std::iter::from_fn(|| c.poll_observation()).collect())
            .unwrap_or_default();
        let report = self
            .call
            .as_ref()
            .map(|c| c.report().clone())
            .unwrap_or_default();
        SimOutcome {
            result: self.result.unwrap_or_else(|| {
                Err(VllmError::InvalidRequest(
                    "simulator: the call never ended".into(),
                ))
            }),
            events: self.events,
            timeline: self.timeline,
            report,
            sleeps: self.sleeps,
            sends: self.sends,
            hedges: self.hedges,
            violations: self.violations,
            fault: self.fault,
            started_at: self.started_at,
            ended_at: self.ended_at,
            observations,
        }
    }
}
