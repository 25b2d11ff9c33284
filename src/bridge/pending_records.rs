//! Message records written behind the relay: a portal's worker sends its
//! next item while the database writes the previous item's record, so a
//! record does not stand between two sends into a room.
//!
//! Nothing is relayed twice for it: an item sent whose record was lost in a
//! crash is sent again with the same Matrix transaction id, which the
//! homeserver answers with the event it made the first time. Whatever reads
//! the records (a reply's target, an item's reactions, the thread's
//! progress) settles the pending writes first.

use std::panic;

use tokio::task::JoinHandle;

use crate::store::{MessageRecord, Store, StoreError};

/// The record writes a worker started and has not waited for yet.
#[derive(Debug, Default)]
pub struct PendingRecords {
    writes: Vec<JoinHandle<Result<bool, StoreError>>>,
}

impl PendingRecords {
    /// Starts writing `record`.
    pub fn write(&mut self, store: &Store, record: MessageRecord) {
        let store = store.clone();
        self.writes.push(tokio::spawn(
            async move { store.insert_message(&record).await },
        ));
    }

    /// Waits for every write started; the first failure, once all are over.
    pub async fn settle(&mut self) -> Result<(), StoreError> {
        let mut result = Ok(());
        for write in self.writes.drain(..) {
            let written = match write.await {
                Ok(written) => written.map(drop),
                Err(error) if error.is_panic() => panic::resume_unwind(error.into_panic()),
                Err(_) => Err(StoreError::Interrupted {
                    doing: "writing a message record",
                }),
            };
            result = result.and(written);
        }
        result
    }
}
