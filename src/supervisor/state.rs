//! The worker state machine as one pure function: which state an input
//! moves a worker to, or `None` when the input does not apply in that
//! state (it is then ignored). [`Task::set_state`](super::task::Task) is
//! the only caller, and the only place a worker's state changes.

use crate::health::WorkerState;

/// What can move a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Input {
    /// Its hello arrived (with our protocol version).
    Hello,
    /// It said `Ready` (and its readiness probe, if any, passed); for a
    /// plain program, which says nothing, its probe passed.
    Ready,
    /// It said `Busy`.
    Busy,
    /// The supervisor takes no more work to it (soft kill, resize, retirement).
    Drain,
    /// The supervisor asked it to exit (or it hung up, or is being killed).
    Stop,
}

/// The transition function. See [`WorkerState`] for the picture.
pub(super) fn next(from: WorkerState, input: Input) -> Option<WorkerState> {
    use Input as I;
    use WorkerState as S;
    match (from, input) {
        (S::Spawning, I::Hello) => Some(S::Starting),
        // Only a plain program skips `Starting`: a protocol worker's frames
        // before its hello never get here.
        (S::Spawning | S::Starting | S::Busy, I::Ready) => Some(S::Ready),
        (S::Ready, I::Busy) => Some(S::Busy),
        (S::Ready | S::Busy, I::Drain) => Some(S::Draining),
        (S::Stopping, I::Stop) => None,
        (_, I::Stop) => Some(S::Stopping),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkerState as S;

    const STATES: [S; 6] = [
        S::Spawning,
        S::Starting,
        S::Ready,
        S::Busy,
        S::Draining,
        S::Stopping,
    ];
    const INPUTS: [Input; 5] = [Input::Hello, Input::Ready, Input::Busy, Input::Drain, Input::Stop];

    #[test]
    fn every_pair_is_decided_and_matches_the_picture() {
        let mut moves = Vec::new();
        for from in STATES {
            for input in INPUTS {
                if let Some(to) = next(from, input) {
                    moves.push((from, input, to));
                }
            }
        }
        assert_eq!(
            moves,
            vec![
                (S::Spawning, Input::Hello, S::Starting),
                (S::Spawning, Input::Ready, S::Ready),
                (S::Spawning, Input::Stop, S::Stopping),
                (S::Starting, Input::Ready, S::Ready),
                (S::Starting, Input::Stop, S::Stopping),
                (S::Ready, Input::Busy, S::Busy),
                (S::Ready, Input::Drain, S::Draining),
                (S::Ready, Input::Stop, S::Stopping),
                (S::Busy, Input::Ready, S::Ready),
                (S::Busy, Input::Drain, S::Draining),
                (S::Busy, Input::Stop, S::Stopping),
                (S::Draining, Input::Stop, S::Stopping),
            ]
        );
    }

    #[test]
    fn stopping_is_final_and_nothing_returns_to_spawning() {
        for input in INPUTS {
            assert_eq!(next(S::Stopping, input), None);
        }
        for from in STATES {
            for input in INPUTS {
                assert_ne!(next(from, input), Some(S::Spawning));
            }
        }
    }

    #[test]
    fn a_draining_worker_never_takes_work_again() {
        for input in [Input::Hello, Input::Ready, Input::Busy, Input::Drain] {
            assert_eq!(next(S::Draining, input), None);
        }
    }
}
