//! A memory of the records the relay reads for every thread update and
//! item (puppets, portals), so a burst does not queue for the database to
//! read what it just read. The bridge's process is the only writer of its
//! database; every write forgets what it touched, and a read that raced a
//! write is not remembered, so a remembered record is what the database holds.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::StoreError;

/// Records by key, filled by reads and emptied by writes.
#[derive(Debug)]
pub(super) struct RecordCache<K, V> {
    inner: Mutex<Inner<K, V>>,
}

#[derive(Debug)]
struct Inner<K, V> {
    records: HashMap<K, V>,
    /// Moves on every write, so a read that began before a write finished
    /// cannot bring back what the write replaced.
    generation: u64,
}

/// Where the cache stood when a database read began.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadStart(u64);

impl<K: Eq + Hash, V: Clone> RecordCache<K, V> {
    pub(super) fn new() -> Self {
        RecordCache {
            inner: Mutex::new(Inner {
                records: HashMap::new(),
                generation: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The remembered record of `key`, if any.
    pub(super) fn get(&self, key: &K) -> Option<V> {
        self.lock().records.get(key).cloned()
    }

    /// To be taken before reading the database for a record to remember.
    pub(super) fn read_start(&self) -> ReadStart {
        ReadStart(self.lock().generation)
    }

    /// Remembers what a read that began at `start` found, unless a write
    /// finished since.
    pub(super) fn remember(&self, start: ReadStart, key: K, record: V) {
        let mut inner = self.lock();
        if inner.generation == start.0 {
            inner.records.insert(key, record);
        }
    }

    /// Forgets `key`; called once a write of its record is over (also a failed one).
    pub(super) fn forget(&self, key: &K) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.records.remove(key);
    }

    /// Forgets every record the predicate matches (a deleted login's portals).
    pub(super) fn forget_where(&self, matches: impl Fn(&K) -> bool) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.records.retain(|key, _| !matches(key));
    }
}

/// The record of `key`: remembered, else read by `read` (and then
/// remembered). Without a cache, simply `read`.
pub(super) async fn read_through<K: Eq + Hash, V: Clone>(
    cache: Option<&RecordCache<K, V>>,
    key: K,
    read: impl Future<Output = Result<Option<V>, StoreError>>,
) -> Result<Option<V>, StoreError> {
    let Some(cache) = cache else {
        return read.await;
    };
    if let Some(record) = cache.get(&key) {
        return Ok(Some(record));
    }
    let start = cache.read_start();
    let found = read.await?;
    if let Some(record) = &found {
        cache.remember(start, key, record.clone());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_remembered_until_a_write_forgets_it() {
        let cache = RecordCache::new();
        let start = cache.read_start();
        cache.remember(start, "a", 1);
        assert_eq!(cache.get(&"a"), Some(1));
        cache.forget(&"a");
        assert_eq!(cache.get(&"a"), None);
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_remembered() {
        let cache = RecordCache::new();
        let start = cache.read_start();
        cache.forget(&"b");
        cache.remember(start, "a", 1);
        assert_eq!(
            cache.get(&"a"),
            None,
            "the write may have changed what was read"
        );
        let start = cache.read_start();
        cache.remember(start, "a", 2);
        assert_eq!(cache.get(&"a"), Some(2));
    }

    #[test]
    fn forgetting_by_predicate_keeps_the_rest() {
        let cache = RecordCache::new();
        let start = cache.read_start();
        cache.remember(start, ("l1", "t1"), 1);
        cache.remember(start, ("l2", "t1"), 2);
        cache.forget_where(|(login, _)| *login == "l1");
        assert_eq!(cache.get(&("l1", "t1")), None);
        assert_eq!(cache.get(&("l2", "t1")), Some(2));
    }
}
