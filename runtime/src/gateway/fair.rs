//! Fair admission of every agent's calls to the runtime: an agent that floods its gateway
//! cannot starve a quiet one.
//!
//! A token bucket per agent bounds what each may ask, but a hundred agents each within its rate
//! can still ask more than the machine does: then whoever waits longest behind the others is
//! whoever asks least. So calls are admitted to the backend through one [`Fair`] per process:
//! at most as many run at once as the machine has cores (more would only share the same cores
//! and the same locks), and when calls wait, the one whose agent has used the least of the
//! runtime lately goes first — start-time fair queueing over the time each call took:
//!
//! - the runtime keeps a virtual clock `V`, the start tag of the last call it admitted;
//! - a call of agent `a` arriving gets the start tag `max(V, F[a])`, where `F[a]` is where
//!   `a`'s previous call finished on that clock (its start tag plus the time it took);
//! - waiting calls are admitted in order of their start tags.
//!
//! A call's time is the CPU time its thread spent on it ([`Admitted::done`]), not the time it
//! was held: a call preempted by the OS, or waiting for a lock another agent's append holds, costs
//! its agent nothing for the wait (charging it would push that agent far behind a clock that
//! advances by a two-hundredth of real time when two hundred agents are busy).
//!
//! A call the backend answers at once on the connection's task (a read of the world, see
//! `Backend::call_now`) takes no place: it runs on a worker thread, of which there are only as
//! many as cores, and holds no lock another call waits for. Its time is charged to its agent all
//! the same ([`Fair::charge`]), so an agent that floods reads waits longer for its next call
//! that does take a place.
//!
//! An agent that floods keeps pushing its `F` ahead of `V` by the time its calls take; a quiet
//! agent's tag is `V` itself, so its call is admitted as soon as a running one ends, however
//! many of the flood's wait. An agent idle for a while does not bank credit: its tag is never
//! below `V`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use roster_core::id::AgentId;
use tokio::sync::oneshot;

/// An estimate of a call's cost before it has run (a `whoami`, roughly): the tag of an agent's
/// second waiting call must be after its first one's.
const FIRST_ESTIMATE_NS: u64 = 50_000;

/// The admission of this process's gateways.
#[derive(Debug)]
pub struct Fair {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Calls that may still be admitted at once.
    free: usize,
    /// The virtual clock (nanoseconds of calls), the start tag of the last call admitted.
    clock: u64,
    /// Each agent's virtual finish and the time its last call took.
    agents: HashMap<AgentId, Usage>,
    /// Waiting calls' wake-ups, by start tag, then arrival.
    waiting: BTreeMap<(u64, u64), oneshot::Sender<()>>,
    /// Arrivals so far.
    arrivals: u64,
}

#[derive(Debug, Clone, Copy)]
struct Usage {
    finish: u64,
    last_cost: u64,
}

impl State {
    /// `agent`'s usage; an agent not seen yet has used nothing and is reckoned to cost
    /// [`FIRST_ESTIMATE_NS`] a call.
    fn usage(&mut self, agent: AgentId) -> &mut Usage {
        self.agents.entry(agent).or_insert(Usage {
            finish: 0,
            last_cost: FIRST_ESTIMATE_NS,
        })
    }
}

impl Fair {
    /// Admission for `slots` calls at once.
    pub fn new(slots: usize) -> Self {
        Self {
            state: Mutex::new(State {
                free: slots.max(1),
                clock: 0,
                agents: HashMap::new(),
                waiting: BTreeMap::new(),
                arrivals: 0,
            }),
        }
    }

    /// The admission every gateway of this process shares: one call per core at once.
    pub fn global() -> &'static Fair {
        static FAIR: OnceLock<Fair> = OnceLock::new();
        FAIR.get_or_init(|| {
            Fair::new(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2),
            )
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing is left half-done under this lock by a panic: it only moves numbers.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for `agent`'s turn; the returned [`Admitted`] holds a place until dropped, and
    /// charges `agent` for the time it was held.
    pub async fn admit(&self, agent: AgentId) -> Admitted<'_> {
        let (tag, estimate, woken) = {
            let mut s = self.state();
            let clock = s.clock;
            let usage = s.usage(agent);
            let tag = usage.finish.max(clock);
            // Until it has run, the call is reckoned to cost what the agent's last one did.
            let estimate = usage.last_cost;
            usage.finish = tag.saturating_add(estimate);
            if s.free > 0 && s.waiting.is_empty() {
                s.free -= 1;
                s.clock = s.clock.max(tag);
                (tag, estimate, None)
            } else {
                let arrival = s.arrivals;
                s.arrivals += 1;
                let (wake, woken) = oneshot::channel();
                s.waiting.insert((tag, arrival), wake);
                (tag, estimate, Some(woken))
            }
        };
        if let Some(woken) = woken {
            let mut waiting = Waiting {
                fair: self,
                woken,
                admitted: false,
            };
            // The sender stays in `waiting` until it sends: it is never dropped unsent while
            // this future waits, so the only answer is our turn.
            waiting.admitted = (&mut waiting.woken).await.is_ok();
        }
        Admitted {
            fair: self,
            agent,
            tag,
            estimate,
            since: Instant::now(),
            cost: None,
        }
    }

    /// Charges `agent` for `cost` of the runtime's time spent on a call that needed no place
    /// (answered on the connection's own task): it waits that much longer for its next call
    /// that does.
    pub fn charge(&self, agent: AgentId, cost: std::time::Duration) {
        let cost = u64::try_from(cost.as_nanos()).unwrap_or(u64::MAX);
        let mut s = self.state();
        let clock = s.clock;
        let usage = s.usage(agent);
        usage.finish = usage.finish.max(clock).saturating_add(cost);
    }

    /// A place was given back: admit the next waiting call, or keep the place free.
    fn release(&self) {
        loop {
            let wake = {
                let mut s = self.state();
                let Some(((tag, _), wake)) = s.waiting.pop_first() else {
                    s.free += 1;
                    return;
                };
                s.clock = s.clock.max(tag);
                wake
            };
            // A waiter that has gone (its connection closed) cannot take the place: next.
            if wake.send(()).is_ok() {
                return;
            }
        }
    }

    /// Calls waiting now (some may have left, not yet noticed), and the places free.
    #[cfg(test)]
    fn load(&self) -> (usize, usize) {
        let s = self.state();
        (s.waiting.len(), s.free)
    }
}

/// A call waiting for its turn. Dropped before its turn came (the connection closed), it gives
/// back a place it was given meanwhile.
struct Waiting<'a> {
    fair: &'a Fair,
    woken: oneshot::Receiver<()>,
    admitted: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.admitted {
            return;
        }
        self.woken.close();
        if self.woken.try_recv().is_ok() {
            self.fair.release();
        }
    }
}

/// A call admitted: holds its place until dropped.
#[derive(Debug)]
pub struct Admitted<'a> {
    fair: &'a Fair,
    agent: AgentId,
    tag: u64,
    /// What the call was reckoned to cost when it arrived.
    estimate: u64,
    since: Instant,
    /// What it cost, when its caller measured it.
    cost: Option<u64>,
}

impl Admitted<'_> {
    /// Ends the call, charging its agent `cost` (the CPU time it took) instead of the time the
    /// place was held.
    pub fn done(mut self, cost: std::time::Duration) {
        self.cost = Some(u64::try_from(cost.as_nanos()).unwrap_or(u64::MAX));
    }
}

/// CPU time this thread has used so far (for [`Admitted::done`]).
pub fn thread_cpu() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let cost = self
            .cost
            .unwrap_or_else(|| u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX));
        {
            let mut s = self.fair.state();
            if let Some(u) = s.agents.get_mut(&self.agent) {
                // The estimate made at arrival is replaced by what the call took.
                u.finish = u
                    .finish
                    .saturating_sub(self.estimate)
                    .saturating_add(cost)
                    .max(self.tag.saturating_add(cost));
                u.last_cost = cost.max(1);
            }
            // Agents that have fallen behind the clock are no different from new ones.
            if s.agents.len() > 4096 {
                let clock = s.clock;
                s.agents.retain(|_, u| u.finish > clock);
            }
        }
        self.fair.release();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use roster_core::id::CountingEntropy;
    use roster_core::time::Timestamp;

    use super::*;

    fn agents(n: usize) -> Vec<AgentId> {
        let mut e = CountingEntropy::new(7);
        (0..n)
            .map(|_| AgentId::mint(Timestamp::from_millis(1), &mut e))
            .collect()
    }

    /// Polls `f` once: whether it is ready.
    fn ready<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        match std::pin::Pin::new(f).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn no_more_run_at_once_than_there_are_places() {
        let fair = Fair::new(2);
        let [a, b, c]: [AgentId; 3] = agents(3).try_into().unwrap();
        let first = ready(&mut Box::pin(fair.admit(a))).unwrap();
        let second = ready(&mut Box::pin(fair.admit(b))).unwrap();
        let mut third = Box::pin(fair.admit(c));
        assert!(ready(&mut third).is_none(), "a third ran beside two");
        drop(first);
        assert!(ready(&mut third).is_some(), "a freed place was not given");
        drop(second);
    }

    #[test]
    fn a_quiet_agent_goes_before_the_calls_a_flood_left_waiting() {
        let fair = Fair::new(1);
        let [flood, quiet]: [AgentId; 2] = agents(2).try_into().unwrap();
        // The flood holds the place, having already run a long call.
        let running = ready(&mut Box::pin(fair.admit(flood))).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        drop(running);
        let running = ready(&mut Box::pin(fair.admit(flood))).unwrap();
        let mut flooded: Vec<_> = (0..10).map(|_| Box::pin(fair.admit(flood))).collect();
        for f in &mut flooded {
            assert!(ready(f).is_none());
        }
        let mut calm = Box::pin(fair.admit(quiet));
        assert!(ready(&mut calm).is_none());
        drop(running);
        // The place goes to the quiet agent, not to the flood's next call.
        let calm = ready(&mut calm).expect("the quiet agent waited behind the flood");
        assert!(flooded.iter_mut().all(|f| ready(f).is_none()));
        drop(calm);
        let next = ready(&mut flooded[0]).expect("the flood is served after it");
        drop(next);
    }

    #[test]
    fn reads_answered_without_a_place_still_count_against_their_agent() {
        let fair = Fair::new(1);
        let [reader, other, holder]: [AgentId; 3] = agents(3).try_into().unwrap();
        // `reader` has had many reads answered on its connection's task, `other` none.
        fair.charge(reader, Duration::from_millis(50));
        let running = ready(&mut Box::pin(fair.admit(holder))).unwrap();
        let mut heavy = Box::pin(fair.admit(reader));
        assert!(ready(&mut heavy).is_none());
        let mut light = Box::pin(fair.admit(other));
        assert!(ready(&mut light).is_none());
        drop(running);
        // Though it asked first, the agent that used the runtime more waits.
        let light = ready(&mut light).expect("the lighter agent waited behind the heavy one");
        assert!(ready(&mut heavy).is_none());
        drop(light);
        assert!(ready(&mut heavy).is_some());
    }

    #[test]
    fn a_waiter_that_leaves_gives_back_the_place_it_was_given() {
        let fair = Fair::new(1);
        let [a, b, c]: [AgentId; 3] = agents(3).try_into().unwrap();
        let running = ready(&mut Box::pin(fair.admit(a))).unwrap();
        let mut leaving = Box::pin(fair.admit(b));
        assert!(ready(&mut leaving).is_none());
        let mut staying = Box::pin(fair.admit(c));
        assert!(ready(&mut staying).is_none());
        // Its turn comes, but it has gone before it looked: the place passes on.
        drop(running);
        drop(leaving);
        let held = ready(&mut staying).expect("the place was lost");
        // One that leaves before its turn came takes nothing with it.
        let mut gone = Box::pin(fair.admit(a));
        assert!(ready(&mut gone).is_none());
        drop(gone);
        drop(held);
        assert_eq!(
            fair.load(),
            (0, 1),
            "a place was lost to a waiter that left"
        );
        assert!(ready(&mut Box::pin(fair.admit(b))).is_some());
    }
}
