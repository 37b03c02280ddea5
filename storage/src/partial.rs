//! Reads that answer without part of their data, and say so.
//!
//! A single node's stores answer whole or fail. In cluster mode a read asks
//! the owners of every partition, and a partition can be briefly without
//! one (a node died and its lease has not run out yet): the read then
//! answers with what the others had, and notes which partitions are
//! missing here. Whoever made the read on this thread takes the notes
//! afterwards and shows them (`warnings` in the Prometheus API), or refuses
//! to act on a partial answer (the ruler: an alert resolved for want of
//! data would be a lie).
//!
//! The notes are per thread: storage's reads are synchronous and made on
//! the caller's thread. [`take`] before a read clears what an earlier one
//! left unclaimed.

use std::cell::RefCell;

thread_local! {
    static NOTES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Notes that the read being made on this thread lacks part of its data,
/// and why.
pub fn note(message: String) {
    NOTES.with(|notes| {
        let mut notes = notes.borrow_mut();
        if !notes.contains(&message) {
            notes.push(message);
        }
    });
}

/// What reads on this thread noted since the last call.
pub fn take() -> Vec<String> {
    NOTES.with(|notes| std::mem::take(&mut *notes.borrow_mut()))
}

/// Runs `read` and returns its result with what it noted.
pub fn noting<T>(read: impl FnOnce() -> T) -> (T, Vec<String>) {
    let _stale = take();
    let result = read();
    (result, take())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_stay_on_their_thread_and_are_taken_once() {
        note("partition 3 missing".into());
        note("partition 3 missing".into());
        std::thread::spawn(|| assert!(take().is_empty()))
            .join()
            .unwrap();
        assert_eq!(take(), vec!["partition 3 missing".to_owned()]);
        assert!(take().is_empty());
        let ((), noted) = noting(|| note("x".into()));
        assert_eq!(noted, vec!["x".to_owned()]);
    }
}
