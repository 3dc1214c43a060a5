//! What the agent does next, from the engine's swarm state and `berth.swarm`: pure functions.

use berth_config::schema::swarm::{MEMBER, NOT_MEMBER, SwarmConfig, SwarmRole};
use indexmap::IndexMap;
use std::collections::HashMap;
use std::time::Duration;

/// The user engine's own view of its swarm membership (`docker info`'s `Swarm.LocalNodeState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineState {
    /// In no swarm (never joined, left, or removed and told so).
    Inactive,
    /// Joining: the engine keeps trying by itself.
    Pending,
    /// Joining, but the last join failed (the engine stays `pending` after a refused token,
    /// retrying with the token it was given): only a leave and a new join take a new token.
    PendingFailed,
    /// In a swarm.
    Active,
    /// The engine gave up on its swarm (removed while away, certificates refused).
    Error,
    /// The swarm's keys are locked (autolock): an operator must unlock it.
    Locked,
}

/// The next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `berth.swarm.role` is not set, or `enabled: false`: nothing to do (the agent stops).
    Disabled,
    /// Create the swarm (the first manager).
    Init,
    /// Join the configured manager.
    Join,
    /// Leave the failed membership (force), then join again.
    LeaveThenJoin,
    /// Already a member (a reboot keeps the engine's swarm state): only labels to apply.
    Member,
    /// The engine is joining or locked: wait and look again.
    Wait,
}

/// Decide from the engine's state and the configuration.
pub fn decide(engine: EngineState, config: &SwarmConfig) -> Step {
    if !config.active() {
        return Step::Disabled;
    }
    match engine {
        EngineState::Active => Step::Member,
        EngineState::Pending | EngineState::Locked => Step::Wait,
        EngineState::PendingFailed => Step::LeaveThenJoin,
        EngineState::Inactive if config.init => Step::Init,
        EngineState::Inactive => Step::Join,
        // Removed while away, or refused: drop the dead membership, then init or join anew.
        EngineState::Error => Step::LeaveThenJoin,
    }
}

/// What the manager a worker joined says about the worker's node id (`GET /nodes/ID` on its
/// token port, served with `serve_token`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    /// The swarm has the node.
    Member,
    /// The swarm does not have it: removed (`docker node rm --force`) while the engine ran.
    NotMember,
    /// No answer: the manager is down or rebooting, not serving, refuses us, or said anything
    /// else. Never a reason to act.
    Unknown,
}

impl Membership {
    /// The manager's answer (`None`: no answer, or not a 200).
    pub fn from_answer(body: Option<&str>) -> Membership {
        match body.map(str::trim) {
            Some(MEMBER) => Membership::Member,
            Some(NOT_MEMBER) => Membership::NotMember,
            _ => Membership::Unknown,
        }
    }
}

/// Whether a node asks its manager if it is still in the swarm: a worker the engine says is
/// `active`, that joined a manager. A worker removed with `docker node rm --force` while it
/// runs stays `active` in its engine's eyes (its sessions are refused, the engine retries
/// forever): the manager is the only one who knows.
pub fn asks_membership(step: &Step, is_manager: bool, config: &SwarmConfig) -> bool {
    *step == Step::Member && !is_manager && config.join.is_some()
}

/// The step once the manager answered: only a clear "not a member" makes a member leave and
/// join again; no answer (a manager rebooting, cut off, not serving) changes nothing, so
/// that a worker keeps its membership and its running tasks while its manager is away.
pub fn after_asking(step: Step, membership: Membership) -> Step {
    match (step, membership) {
        (Step::Member, Membership::NotMember) => Step::LeaveThenJoin,
        (step, _) => step,
    }
}

/// Whether an `Init` or `Join` is what [`Step::LeaveThenJoin`] continues with.
pub fn after_leave(config: &SwarmConfig) -> Step {
    if config.init { Step::Init } else { Step::Join }
}

/// The labels to write on the node: the node's current ones with the configured ones over
/// them; `None` when nothing changes (no update is sent).
pub fn labels_update(
    current: &HashMap<String, String>,
    wanted: &IndexMap<String, String>,
) -> Option<HashMap<String, String>> {
    let missing = wanted.iter().any(|(k, v)| current.get(k) != Some(v));
    missing.then(|| {
        let mut out = current.clone();
        out.extend(wanted.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    })
}

/// Whether the engine's role matches the configured one (a mismatch is reported: roles are
/// changed with `docker node promote/demote` on a manager, not by this node).
pub fn role_matches(configured: SwarmRole, is_manager: bool) -> bool {
    (configured == SwarmRole::Manager) == is_manager
}

/// Waits between failed attempts: 1 s, doubling, at most 30 s; reset after a success.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_secs(1);
    pub const CAP: Duration = Duration::from_secs(30);

    pub fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    /// The wait before the next attempt.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::CAP);
        wait
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use EngineState::*;

    fn config(role: Option<SwarmRole>, init: bool) -> SwarmConfig {
        SwarmConfig {
            role,
            init,
            ..SwarmConfig::default()
        }
    }

    #[test]
    fn engine_state_and_configuration_decide_the_step() {
        let manager_init = config(Some(SwarmRole::Manager), true);
        let manager = config(Some(SwarmRole::Manager), false);
        let worker = config(Some(SwarmRole::Worker), false);
        let none = config(None, false);
        let left = SwarmConfig {
            enabled: false,
            ..worker.clone()
        };
        let table = [
            (Inactive, &none, Step::Disabled),
            (Active, &none, Step::Disabled),
            // `berth swarm leave` wrote enabled: false: the node stays out.
            (Inactive, &left, Step::Disabled),
            (Inactive, &manager_init, Step::Init),
            (Inactive, &manager, Step::Join),
            (Inactive, &worker, Step::Join),
            // After a reboot the engine is still in its swarm: nothing to do.
            (Active, &manager_init, Step::Member),
            (Active, &worker, Step::Member),
            (Pending, &worker, Step::Wait),
            // A refused join leaves the engine pending with the old token: start over.
            (PendingFailed, &worker, Step::LeaveThenJoin),
            (Locked, &manager, Step::Wait),
            // Removed from the swarm while away: leave the dead membership, join again.
            (Error, &worker, Step::LeaveThenJoin),
            (Error, &manager_init, Step::LeaveThenJoin),
        ];
        for (engine, config, want) in table {
            assert_eq!(decide(engine, config), want, "{engine:?} {config:?}");
        }
        assert_eq!(after_leave(&manager_init), Step::Init);
        assert_eq!(after_leave(&worker), Step::Join);
    }

    #[test]
    fn only_a_managers_clear_no_makes_an_active_worker_rejoin() {
        use Membership::*;
        let worker = SwarmConfig {
            join: Some("198.18.5.10:2377".parse().unwrap()),
            ..config(Some(SwarmRole::Worker), false)
        };
        let manager_init = config(Some(SwarmRole::Manager), true);
        // Who asks: a worker in the swarm with a manager to ask; never a manager (its own
        // engine knows), never a node that is joining or failed (it acts already).
        assert!(asks_membership(&Step::Member, false, &worker));
        assert!(!asks_membership(&Step::Member, true, &worker));
        assert!(!asks_membership(&Step::Member, false, &manager_init));
        assert!(!asks_membership(&Step::Wait, false, &worker));
        assert!(!asks_membership(&Step::LeaveThenJoin, false, &worker));
        // What the answer does: removed → leave and join again; anything else → stay.
        let table = [
            (Step::Member, NotMember, Step::LeaveThenJoin),
            (Step::Member, Member, Step::Member),
            // The manager is rebooting or cut off: the worker keeps its membership and tasks.
            (Step::Member, Unknown, Step::Member),
            (Step::Wait, NotMember, Step::Wait),
        ];
        for (step, answer, want) in table {
            assert_eq!(after_asking(step.clone(), answer), want, "{step:?} {answer:?}");
        }
        // The answer is read strictly: a provisioning service's page is no "no".
        assert_eq!(Membership::from_answer(Some("member\n")), Member);
        assert_eq!(Membership::from_answer(Some("not-member\n")), NotMember);
        assert_eq!(Membership::from_answer(Some("<html>404</html>")), Unknown);
        assert_eq!(Membership::from_answer(Some("")), Unknown);
        assert_eq!(Membership::from_answer(None), Unknown);
    }

    #[test]
    fn labels_are_added_over_the_nodes_own_and_unchanged_labels_send_nothing() {
        let current = HashMap::from([("zone".to_string(), "a".to_string())]);
        let wanted = IndexMap::from([("disk".to_string(), "ssd".to_string())]);
        let update = labels_update(&current, &wanted).unwrap();
        assert_eq!(update.len(), 2);
        assert_eq!(update["disk"], "ssd");
        assert_eq!(labels_update(&update, &wanted), None);
        assert_eq!(labels_update(&current, &IndexMap::new()), None);
    }

    #[test]
    fn roles_match_the_engines_view() {
        assert!(role_matches(SwarmRole::Manager, true));
        assert!(role_matches(SwarmRole::Worker, false));
        assert!(!role_matches(SwarmRole::Worker, true));
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..8).map(|_| b.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        b.reset();
        assert_eq!(b.next_wait(), Backoff::FIRST);
    }
}
