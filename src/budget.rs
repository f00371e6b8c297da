//! A chain budget shared out among the sends of one run, so that a chain's
//! whole tree of runs never exceeds the budget it started with, whatever its
//! fan-out, without any shared state between runs.
//!
//! A message carries the runs left to the subtree it starts (its own run
//! included). A run consumes one; what is left, `R`, is shared out among its
//! sends:
//!
//! * **declared sends** ([`declare_sends`](crate::chain::declare_sends)`(n)`):
//!   each of the next `n` messages gets `R / n`, the first `R % n` of them one
//!   more;
//! * **undeclared sends** get half of what is left, rounded up (`R = 1` gives
//!   the one run to the first send); one call that sends several messages
//!   (`SendMessageBatch`, `PublishBatch`, `PutEvents`) splits its half evenly
//!   among them.
//!
//! Every share comes out of `R`, so the shares of one run never add up to
//! more than `R`, and by induction a tree never runs more than its budget. A
//! message whose share is 0 is dropped by its receiver (reason
//! `ChainBudget`).

use std::sync::Mutex;

/// What is left of one run's budget for its sends.
#[derive(Debug)]
pub(crate) struct Shares {
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    remaining: u32,
    // Declared sends not made yet, the share of each, and how many of the
    // first of them get one more.
    declared: u32,
    share: u32,
    extra: u32,
}

impl Shares {
    /// `remaining` runs to share out among a run's sends.
    pub(crate) fn new(remaining: u32) -> Self {
        Shares {
            state: Mutex::new(State {
                remaining,
                declared: 0,
                share: 0,
                extra: 0,
            }),
        }
    }

    /// The next `sends` messages are the rest of this run's sends: what is
    /// left is shared equally among them.
    pub(crate) fn declare(&self, sends: u32) {
        let mut state = self.lock();
        if sends == 0 {
            state.declared = 0;
            return;
        }
        state.declared = sends;
        state.share = state.remaining / sends;
        state.extra = state.remaining % sends;
    }

    /// The budget of each of the `messages` messages one call sends (the
    /// same for all of them), taken out of what is left.
    pub(crate) fn take(&self, messages: u32) -> u32 {
        let mut state = self.lock();
        if messages == 0 {
            return 0;
        }
        let share = if state.declared >= messages {
            // One extra run per message while extras last, for a call
            // of one message; a batch gets the plain share (under the
            // extras: never more than declared).
            let one_more = u32::from(messages == 1 && state.extra > 0);
            state.extra -= one_more;
            state.declared -= messages;
            state.share + one_more
        } else {
            state.declared = 0;
            state.remaining.div_ceil(2) / messages
        };
        let taken = share.saturating_mul(messages).min(state.remaining);
        state.remaining -= taken;
        share.min(taken / messages.max(1))
    }

    /// What is left, not given to any send yet.
    pub(crate) fn remaining(&self) -> u32 {
        self.lock().remaining
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn declared_sends_share_equally_and_undeclared_ones_halve() {
        let shares = Shares::new(10);
        shares.declare(3);
        assert_eq!([shares.take(1), shares.take(1), shares.take(1)], [4, 3, 3]);
        assert_eq!(shares.remaining(), 0);
        assert_eq!(shares.take(1), 0);

        let shares = Shares::new(10);
        assert_eq!(
            [
                shares.take(1),
                shares.take(1),
                shares.take(1),
                shares.take(1)
            ],
            [5, 3, 1, 1]
        );
        assert_eq!(shares.remaining(), 0);

        // A batch of 4 messages splits the half it takes: 8 of 16, 2 each.
        let shares = Shares::new(16);
        assert_eq!(shares.take(4), 2);
        assert_eq!(shares.remaining(), 8);
        // One left: the next send gets it.
        assert_eq!(Shares::new(1).take(1), 1);
        assert_eq!(Shares::new(0).take(1), 0);
    }

    /// One node of a simulated tree of runs: what each of its calls sends.
    #[derive(Debug, Clone)]
    struct Node {
        declare: Option<u32>,
        calls: Vec<u32>,
    }

    fn node() -> impl Strategy<Value = Node> {
        (
            proptest::option::of(0u32..6),
            proptest::collection::vec(1u32..5, 0..4),
        )
            .prop_map(|(declare, calls)| Node { declare, calls })
    }

    proptest! {
        /// The property the budget exists for: however each run shares out
        /// its budget (declared or not, one message or a batch per call),
        /// the tree never runs more than the budget it started with; and a
        /// budget of at least 1 always runs the root.
        #[test]
        fn a_tree_never_runs_more_than_its_budget(
            budget in 0u32..200,
            nodes in proptest::collection::vec(node(), 1..64),
        ) {
            // Breadth first: each message received carries its share; a run
            // takes its behaviour from `nodes`, cycling.
            let mut inbox = std::collections::VecDeque::from([budget]);
            let mut runs = 0u32;
            let mut next = 0usize;
            while let Some(share) = inbox.pop_front() {
                if share == 0 {
                    continue; // dropped by the receiver
                }
                runs += 1;
                let node = &nodes[next % nodes.len()];
                next += 1;
                let shares = Shares::new(share - 1);
                if let Some(n) = node.declare {
                    shares.declare(n);
                }
                for &messages in &node.calls {
                    let each = shares.take(messages);
                    for _ in 0..messages {
                        inbox.push_back(each);
                    }
                }
                prop_assert!(runs <= budget.max(1));
            }
            prop_assert!(runs <= budget, "{runs} runs for a budget of {budget}");
            prop_assert_eq!(runs >= 1, budget >= 1);
        }
    }
}
