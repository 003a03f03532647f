//! When a command with `restart_on_failure` ends: restart it after an
//! exponential backoff with jitter, forget its failures once it has run
//! healthily for a while, and give up on a crash loop.
//!
//! Policy: delay = min(0.5 s x 2^(n-1), 30 s) x (1 +- 20 %) for the n-th failure
//! in a row; a run of 10 s or more resets n; after 5 failures in a row the
//! command stays failed with the reason recorded. A clean exit (status 0) is
//! never restarted. Time is passed in, so tests control the clock.

use std::time::Duration;

/// The policy's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartPolicy {
    /// Delay after the first failure.
    pub base: Duration,
    /// Growth per failure in a row.
    pub factor: u32,
    /// Longest delay.
    pub cap: Duration,
    /// Relative jitter (0.2 = +-20 %).
    pub jitter: f64,
    /// A run at least this long counts as healthy and resets the count.
    pub healthy_after: Duration,
    /// Failures in a row after which the command stays failed.
    pub crash_loop_limit: u32,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            factor: 2,
            cap: Duration::from_secs(30),
            jitter: 0.2,
            healthy_after: Duration::from_secs(10),
            crash_loop_limit: 5,
        }
    }
}

/// What happens after a run ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Leave it ended (clean exit).
    Done,
    /// Start it again after this delay.
    RestartAfter(Duration),
    /// Crash loop: leave it failed, with this reason.
    GiveUp(String),
}

/// What a command remembers between runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestartState {
    /// Restarts so far.
    pub restarts: u32,
    /// Failures in a row (reset by a healthy run).
    pub failures_in_a_row: u32,
}

impl RestartPolicy {
    /// Decides after a run that lasted `ran_for` and ended successfully or not.
    /// `jitter_unit` is a random number in [-1, 1].
    pub fn decide(
        &self,
        state: &mut RestartState,
        success: bool,
        ran_for: Duration,
        jitter_unit: f64,
    ) -> Decision {
        if success {
            state.failures_in_a_row = 0;
            return Decision::Done;
        }
        if ran_for >= self.healthy_after {
            state.failures_in_a_row = 0;
        }
        state.failures_in_a_row += 1;
        if state.failures_in_a_row > self.crash_loop_limit {
            return Decision::GiveUp(format!(
                "crash loop: failed {} times in a row, each within {} s of starting; not restarted again",
                state.failures_in_a_row,
                self.healthy_after.as_secs()
            ));
        }
        let exp = self.factor.saturating_pow(state.failures_in_a_row - 1);
        let delay = self.base.saturating_mul(exp).min(self.cap);
        let scale = 1.0 + self.jitter * jitter_unit.clamp(-1.0, 1.0);
        state.restarts += 1;
        Decision::RestartAfter(delay.mul_f64(scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: &Decision) -> u128 {
        match d {
            Decision::RestartAfter(d) => d.as_millis(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_without_jitter() {
        let p = RestartPolicy {
            crash_loop_limit: 100,
            ..RestartPolicy::default()
        };
        let mut s = RestartState::default();
        let quick = Duration::from_millis(100);
        let delays: Vec<u128> = (0..9)
            .map(|_| ms(&p.decide(&mut s, false, quick, 0.0)))
            .collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(s.restarts, 9);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let p = RestartPolicy::default();
        let quick = Duration::from_millis(1);
        assert_eq!(
            ms(&p.decide(&mut RestartState::default(), false, quick, 1.0)),
            600
        );
        assert_eq!(
            ms(&p.decide(&mut RestartState::default(), false, quick, -1.0)),
            400
        );
        assert_eq!(
            ms(&p.decide(&mut RestartState::default(), false, quick, 7.0)),
            600,
            "clamped"
        );
    }

    #[test]
    fn a_healthy_run_resets_the_backoff() {
        let p = RestartPolicy::default();
        let mut s = RestartState::default();
        let quick = Duration::from_millis(100);
        p.decide(&mut s, false, quick, 0.0);
        p.decide(&mut s, false, quick, 0.0);
        assert_eq!(ms(&p.decide(&mut s, false, quick, 0.0)), 2000);
        assert_eq!(
            ms(&p.decide(&mut s, false, Duration::from_secs(10), 0.0)),
            500
        );
    }

    #[test]
    fn crash_loop_gives_up_with_a_reason() {
        let p = RestartPolicy::default();
        let mut s = RestartState::default();
        let quick = Duration::from_millis(10);
        for _ in 0..5 {
            assert!(matches!(
                p.decide(&mut s, false, quick, 0.0),
                Decision::RestartAfter(_)
            ));
        }
        match p.decide(&mut s, false, quick, 0.0) {
            Decision::GiveUp(why) => {
                assert!(why.contains("crash loop: failed 6 times in a row"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.restarts, 5);
    }

    #[test]
    fn a_clean_exit_is_not_restarted() {
        let p = RestartPolicy::default();
        let mut s = RestartState {
            restarts: 2,
            failures_in_a_row: 2,
        };
        assert_eq!(p.decide(&mut s, true, Duration::ZERO, 0.0), Decision::Done);
        assert_eq!(s.failures_in_a_row, 0);
    }
}
