//! Workers that die, hang or stall: noticing them, blaming the task that was running, and
//! sending the others they held to the queue again.
//!
//! - A worker whose channel closes (it crashed, exited, was killed) is reaped; the task its
//!   control block says was running gets [`PoolError::Crashed`] with the signal or exit
//!   status.
//! - A task that runs longer than the task timeout gets [`PoolError::TimedOut`]; its worker
//!   is killed.
//! - A worker that holds tasks but neither runs nor finishes any of them for the task
//!   timeout (stopped by SIGSTOP or a debugger, frozen, stuck outside a task) is killed; no
//!   task is blamed, and what it held runs elsewhere.
//! - A worker that breaks the protocol is killed and the operation fails with
//!   [`PoolError::Protocol`].
//!
//! Every task a dead worker held and did not answer goes back to the queue (it may run
//! twice: at-least-once), at most [`MAX_TRIES`] times, after which it is reported with the
//! cause.

use super::scheduler::Engine;
use super::task::{InlineBytes, Item, Op, Payload};
use super::worker_handle::{WorkerEnd, WorkerHandle};
use crate::control::now_ns;
use crate::error::{PoolError, WorkerExit};
use crate::protocol::Outcome;
use std::time::{Duration, Instant};

/// How long a worker that closed its channel gets to finish exiting.
pub(super) const HANGUP_GRACE: Duration = Duration::from_secs(2);
/// Times a task goes back to the queue because the worker holding it died running
/// another task; after that it is reported with the cause.
const MAX_TRIES: u8 = 3;
/// Consecutive workers that die before being ready before the pool gives up.
const MAX_START_FAILURES: u32 = 3;

/// When the worker's progress deadline falls (CLOCK_MONOTONIC ns), with the task timeout
/// `t_ns`: the running task's start plus the timeout, or, when it runs nothing, the last
/// sign of progress plus the timeout, from `current`, a reading of its control block.
/// `None` when it holds nothing.
pub(super) fn deadline_ns(
    w: &WorkerHandle,
    (cur, running, started, exact): (u64, bool, u64, bool),
    t_ns: u64,
) -> Option<u64> {
    if !w.busy() {
        return None;
    }
    if running && w.holds(cur) {
        // A start the worker did not read (in a run of tiny tasks) may lie well before
        // the real one, after a long task: the timeout then counts from when the pool
        // first saw the task running, which is after its start.
        let started = if exact {
            started
        } else {
            started.max(w.progress.1)
        };
        Some(started.saturating_add(t_ns))
    } else {
        Some(w.progress.1.saturating_add(t_ns))
    }
}

impl Engine {
    /// Kill workers whose running task has overrun the timeout, workers that hold tasks
    /// and make no progress on them for as long, and workers started to replace others
    /// that are not ready within the start timeout (tasks wait in them).
    pub(super) fn check_timeouts(&mut self) {
        let start_timeout = self.cfg.start_timeout;
        let t_ns = self
            .cfg
            .timeout
            .map(|t| t.as_nanos().min(u64::MAX as u128) as u64);
        let now = now_ns();
        for w in self.slots.iter_mut().flatten() {
            if w.end.is_some() {
                continue;
            }
            if !w.ready && w.born.elapsed() >= start_timeout {
                w.kill();
                w.end = Some(WorkerEnd::NotReady);
                continue;
            }
            // One reading of the control block for all that follows: a task that starts
            // between two readings would be judged by the last one's deadline.
            let current = w.control.current();
            note_progress(w, current, now);
            let Some(t_ns) = t_ns else { continue };
            let Some(deadline) = deadline_ns(w, current, t_ns) else {
                continue;
            };
            if now >= deadline {
                let (cur, running, ..) = current;
                w.kill();
                w.end = Some(if running && w.holds(cur) {
                    WorkerEnd::TaskTimedOut { id: cur }
                } else {
                    WorkerEnd::Stalled
                });
            }
        }
    }

    /// Replace the workers marked as ended.
    ///
    /// # Errors
    /// A protocol violation, or too many workers in a row that died before being ready.
    pub(super) fn replace_ended(&mut self, op: &mut Op) -> Result<(), PoolError> {
        for i in 0..self.slots.len() {
            if self.slots[i].as_ref().is_some_and(|w| w.end.is_some()) {
                let w = self.slots[i].take().expect("checked above");
                self.handle_ended(w, op)?;
            }
        }
        Ok(())
    }

    /// Reap an ended worker, give its running task the error, queue its other tasks again.
    fn handle_ended(&mut self, w: WorkerHandle, op: &mut Op) -> Result<(), PoolError> {
        let WorkerHandle {
            mut child,
            pid,
            channel,
            control,
            sent,
            ready,
            end,
            ..
        } = w;
        drop(channel);
        let end = end.unwrap_or(WorkerEnd::ChannelClosed);
        let status = child.reap(Instant::now() + HANGUP_GRACE);
        let cause = status.map_or(WorkerExit::Unknown, WorkerExit::from_status);
        let (cur, running, ..) = control.current();
        let culprit = match end {
            WorkerEnd::TaskTimedOut { id } => Some(id),
            WorkerEnd::ChannelClosed if running => Some(cur),
            _ => None,
        };
        let timeout = self.cfg.timeout.unwrap_or_default();
        let stalled = matches!(end, WorkerEnd::Stalled);
        let mut requeue = Vec::new();
        for f in sent.into_tasks() {
            if f.generation != op.generation {
                continue;
            }
            op.outstanding -= 1;
            if Some(f.id) == culprit {
                let err = match end {
                    WorkerEnd::TaskTimedOut { .. } => PoolError::TimedOut {
                        task: f.idx,
                        chunk: None,
                        pid,
                        timeout,
                    },
                    _ => PoolError::Crashed {
                        task: f.idx,
                        chunk: None,
                        pid,
                        cause,
                    },
                };
                op.ready.push_back((f.idx, Err(err)));
            } else if op.stop {
                // The operation has failed already; the task is not needed.
            } else if !ready {
                // The worker never ran anything: no try is used up (repeated start
                // failures end the operation below).
                requeue.push(Item {
                    idx: f.idx,
                    data: f.data,
                    tries: f.tries,
                    arrays: f.arrays,
                });
            } else if f.tries + 1 >= MAX_TRIES {
                let err = if stalled {
                    PoolError::TimedOut {
                        task: f.idx,
                        chunk: None,
                        pid,
                        timeout,
                    }
                } else {
                    PoolError::Crashed {
                        task: f.idx,
                        chunk: None,
                        pid,
                        cause,
                    }
                };
                op.ready.push_back((f.idx, Err(err)));
            } else {
                requeue.push(Item {
                    idx: f.idx,
                    data: f.data,
                    tries: f.tries + 1,
                    arrays: f.arrays,
                });
            }
        }
        for item in requeue.into_iter().rev() {
            op.pending.push_front(item);
        }
        match end {
            WorkerEnd::ProtocolViolation(message) => {
                return Err(PoolError::Protocol { pid, message });
            }
            // It would fail the same way in every replacement.
            WorkerEnd::InitFailed(message) => {
                return Err(super::scheduler::init_failed(
                    self.program(),
                    message,
                    Some(cause),
                ));
            }
            _ => {}
        }
        if !ready {
            self.start_failures += 1;
            if self.start_failures >= MAX_START_FAILURES {
                return Err(PoolError::Start {
                    program: self.program(),
                    reason: format!(
                        "{MAX_START_FAILURES} workers in a row died or were not ready within \
                         {:?}",
                        self.cfg.start_timeout
                    ),
                    exit: Some(cause),
                });
            }
        }
        Ok(())
    }
}

/// Record a change of the worker's control block (a task started or finished) as progress.
fn note_progress(w: &mut WorkerHandle, (cur, running, ..): (u64, bool, u64, bool), now: u64) {
    let mark = (2 * cur + running as u64, w.control.totals().1);
    if mark != w.progress.0 {
        w.progress = (mark, now);
    }
}

/// A worker's outcome as the caller sees it.
pub(super) fn convert(outcome: Outcome<'_>, task: usize, pid: u32) -> Result<Payload, PoolError> {
    match outcome {
        Outcome::Value(b) => {
            Ok(InlineBytes::new(b.0).map_or_else(|| Payload::Bytes(b.0.to_vec()), Payload::Inline))
        }
        Outcome::Sealed { .. } => Err(PoolError::Protocol {
            pid,
            message: "a sealed result without its descriptor".into(),
        }),
        Outcome::Partial(p) => Ok(Payload::Partial(p)),
        Outcome::KernelFailed { code } => Ok(Payload::KernelFailed(code)),
        Outcome::Panicked(m) => Err(PoolError::Panicked {
            task,
            chunk: None,
            message: m.into_owned(),
        }),
        Outcome::Failed(m) => Err(PoolError::Remote {
            task,
            chunk: None,
            message: m.into_owned(),
        }),
        // (The answers to tasks taken back belong to no operation and never come here.)
        Outcome::TakenBack => Err(PoolError::Protocol {
            pid,
            message: format!("task {task} was skipped as taken back, which it was not"),
        }),
    }
}
