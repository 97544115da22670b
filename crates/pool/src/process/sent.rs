//! The tasks a worker holds: sent to it and not yet answered, in the order it runs them
//! (and answers them). Tasks whose arguments are in their operation's store go as runs of
//! consecutive tasks, and are kept as one record per run.

use super::task::ItemData;
use crate::shm::ShmInner;
use std::collections::VecDeque;
use std::sync::Arc;

/// The operation of a step's task that the pool took back from its worker before it
/// started ([`Control::take_back`](crate::control::Control::take_back)): it belongs to no
/// operation any more, so its answer is ignored and it is never sent again.
pub(super) const TAKEN_BACK: u64 = u64::MAX - 1;

/// A task sent to a worker and not yet answered.
#[derive(Debug)]
pub(super) struct SentTask {
    /// Wire id (ids of one worker's tasks increase along its queue).
    pub id: u64,
    /// The operation it belongs to.
    pub generation: u64,
    /// Index of the task in its operation.
    pub idx: usize,
    pub data: ItemData,
    /// Times it went back to the queue because its worker died running another task.
    pub tries: u8,
    /// Shared arrays its arguments name.
    pub arrays: Vec<Arc<ShmInner>>,
}

/// `count` consecutive tasks of one operation whose arguments are in its store, never
/// sent before: ids `first_id..`, task indices `first_idx..`, store positions
/// `first_pos..`.
#[derive(Debug, Clone, Copy)]
pub(super) struct SentRun {
    pub first_id: u64,
    pub generation: u64,
    pub first_idx: usize,
    pub first_pos: usize,
    pub count: usize,
}

/// One record of a [`SentQueue`].
#[derive(Debug)]
pub(super) enum Sent {
    Task(SentTask),
    Run(SentRun),
}

impl Sent {
    fn tasks(&self) -> usize {
        match self {
            Sent::Task(_) => 1,
            Sent::Run(r) => r.count,
        }
    }

    fn generation(&self) -> u64 {
        match self {
            Sent::Task(t) => t.generation,
            Sent::Run(r) => r.generation,
        }
    }

    fn first_id(&self) -> u64 {
        match self {
            Sent::Task(t) => t.id,
            Sent::Run(r) => r.first_id,
        }
    }
}

/// The tasks a worker holds, in the order it runs them.
#[derive(Debug, Default)]
pub(super) struct SentQueue {
    records: VecDeque<Sent>,
    /// Tasks in `records`.
    tasks: usize,
}

impl SentQueue {
    /// Tasks held.
    pub(super) fn len(&self) -> usize {
        self.tasks
    }

    pub(super) fn is_empty(&self) -> bool {
        self.tasks == 0
    }

    /// Records held (a mark for [`SentQueue::records_from`] and [`SentQueue::truncate`]).
    pub(super) fn records(&self) -> usize {
        self.records.len()
    }

    /// The records from mark `from` on.
    pub(super) fn records_from(&self, from: usize) -> impl Iterator<Item = &Sent> {
        self.records.range(from..)
    }

    /// Drop the records from mark `from` on (tasks that could not be sent after all).
    pub(super) fn truncate(&mut self, from: usize) {
        for r in self.records.drain(from..) {
            self.tasks -= r.tasks();
        }
    }

    pub(super) fn push(&mut self, record: Sent) {
        self.tasks += record.tasks();
        self.records.push_back(record);
    }

    /// Number the tasks of the records from mark `from` on `first`, `first + 1`, ...
    pub(super) fn number_from(&mut self, from: usize, first: u64) {
        let mut id = first;
        for r in self.records.range_mut(from..) {
            match r {
                Sent::Task(t) => t.id = id,
                Sent::Run(run) => run.first_id = id,
            }
            id += r.tasks() as u64;
        }
    }

    /// The ids of the first and the last task held.
    pub(super) fn id_range(&self) -> Option<(u64, u64)> {
        let first = self.records.front()?.first_id();
        let last = self.records.back()?;
        Some((first, last.first_id() + last.tasks() as u64 - 1))
    }

    /// The last task held, when it is a task of its own (not of a run).
    pub(super) fn last_task_mut(&mut self) -> Option<&mut SentTask> {
        match self.records.back_mut()? {
            Sent::Task(t) => Some(t),
            Sent::Run(_) => None,
        }
    }

    /// Holds a task of operation `generation`.
    pub(super) fn holds_generation(&self, generation: u64) -> bool {
        self.records.iter().any(|r| r.generation() == generation)
    }

    /// The task that comes next, if its id is `id`: its operation and index, and it is
    /// no longer held. `None` (and nothing changes) for any other id.
    pub(super) fn answer(&mut self, id: u64) -> Option<(u64, usize)> {
        match self.records.front_mut()? {
            Sent::Task(t) if t.id == id => {}
            Sent::Run(r) if r.first_id == id => {
                let answered = (r.generation, r.first_idx);
                r.count -= 1;
                if r.count == 0 {
                    self.records.pop_front();
                } else {
                    r.first_id += 1;
                    r.first_idx += 1;
                    r.first_pos += 1;
                }
                self.tasks -= 1;
                return Some(answered);
            }
            _ => return None,
        }
        let Some(Sent::Task(t)) = self.records.pop_front() else {
            unreachable!("matched above")
        };
        self.tasks -= 1;
        Some((t.generation, t.idx))
    }

    /// (operation, index) of every task held, in order.
    pub(super) fn indices(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        self.records.iter().flat_map(|r| {
            let (generation, first, count) = match r {
                Sent::Task(t) => (t.generation, t.idx, 1),
                Sent::Run(run) => (run.generation, run.first_idx, run.count),
            };
            (first..first + count).map(move |idx| (generation, idx))
        })
    }

    /// Every task held, in order; those of runs with their arguments named by store
    /// position ([`ItemData::Stored`]).
    pub(super) fn into_tasks(self) -> impl Iterator<Item = SentTask> {
        self.records.into_iter().flat_map(|r| {
            let (one, run) = match r {
                Sent::Task(t) => (Some(t), None),
                Sent::Run(run) => (None, Some(run)),
            };
            one.into_iter().chain(run.into_iter().flat_map(|run| {
                (0..run.count).map(move |k| SentTask {
                    id: run.first_id + k as u64,
                    generation: run.generation,
                    idx: run.first_idx + k,
                    data: ItemData::Stored(run.first_pos + k),
                    tries: 0,
                    arrays: Vec::new(),
                })
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(generation: u64, idx: usize) -> Sent {
        Sent::Task(SentTask {
            id: 0,
            generation,
            idx,
            data: ItemData::Range(0, 1),
            tries: 0,
            arrays: Vec::new(),
        })
    }

    fn run(generation: u64, first_idx: usize, first_pos: usize, count: usize) -> Sent {
        Sent::Run(SentRun {
            first_id: 0,
            generation,
            first_idx,
            first_pos,
            count,
        })
    }

    #[test]
    fn tasks_and_runs_are_numbered_answered_and_given_back_in_order() {
        let mut q = SentQueue::default();
        assert_eq!((q.len(), q.id_range()), (0, None));
        q.push(task(1, 7));
        q.number_from(0, 10);
        let mark = q.records();
        q.push(run(2, 20, 5, 3));
        q.push(task(2, 9));
        q.number_from(mark, 11);
        assert_eq!((q.len(), q.id_range()), (5, Some((10, 14))));
        assert!(q.holds_generation(1) && q.holds_generation(2) && !q.holds_generation(3));
        let all: Vec<_> = q.indices().collect();
        assert_eq!(all, [(1, 7), (2, 20), (2, 21), (2, 22), (2, 9)]);
        // Only the next id is an answer.
        assert_eq!(q.answer(11), None);
        assert_eq!(q.answer(10), Some((1, 7)));
        assert_eq!(q.answer(12), None);
        assert_eq!(q.answer(11), Some((2, 20)));
        assert_eq!((q.len(), q.id_range()), (3, Some((12, 14))));
        let left: Vec<_> = q
            .into_tasks()
            .map(|t| {
                let pos = match t.data {
                    ItemData::Stored(p) => Some(p),
                    _ => None,
                };
                (t.id, t.idx, pos)
            })
            .collect();
        assert_eq!(left, [(12, 21, Some(6)), (13, 22, Some(7)), (14, 9, None)]);
    }

    #[test]
    fn a_truncated_queue_forgets_its_last_records() {
        let mut q = SentQueue::default();
        q.push(run(1, 0, 0, 4));
        let mark = q.records();
        q.push(run(1, 4, 4, 4));
        q.push(task(1, 8));
        q.truncate(mark);
        assert_eq!(q.len(), 4);
        q.number_from(0, 1);
        assert_eq!(q.id_range(), Some((1, 4)));
        for id in 1..=4 {
            assert_eq!(q.answer(id), Some((1, id as usize - 1)));
        }
        assert!(q.is_empty());
        assert_eq!(q.id_range(), None);
    }
}
