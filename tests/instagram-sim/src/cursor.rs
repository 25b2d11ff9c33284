//! Opaque pagination cursors, as Instagram hands them out: a token means nothing to the
//! client, works only for the session that got it, and goes stale after a while (or when the
//! server drops it). A client must then start again from the newest page.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::world::random_token;

/// What a cursor points at: the boundary of the page it continues from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CursorTarget {
    /// Threads of an inbox folder strictly older than (last activity µs, thread_v2_id).
    Inbox {
        folder: &'static str,
        bound: (u64, u64),
    },
    /// Items of a thread older (or newer) than this item id.
    Thread { thread_id: String, item_id: u128 },
}

/// Why a cursor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CursorRefusal {
    /// Never issued, or dropped (`invalidate_cursors`, session expired).
    Unknown,
    /// Issued to another session.
    Foreign,
    /// Older than the cursor lifetime.
    Expired,
    /// Issued for another thread or inbox folder.
    Elsewhere,
}

impl CursorRefusal {
    pub fn reason(self) -> &'static str {
        match self {
            CursorRefusal::Unknown => "unknown or dropped",
            CursorRefusal::Foreign => "issued to another session",
            CursorRefusal::Expired => "expired",
            CursorRefusal::Elsewhere => "issued elsewhere",
        }
    }
}

struct Issued {
    session: String,
    at: Instant,
    target: CursorTarget,
}

/// From this many cursors on, expired ones are dropped before a new one is issued.
const PRUNE_AT: usize = 4096;

pub(crate) struct CursorStore {
    issued: HashMap<String, Issued>,
    /// The size at which expired cursors are dropped next (doubles while they are all live).
    prune_at: usize,
}

impl Default for CursorStore {
    fn default() -> Self {
        CursorStore {
            issued: HashMap::new(),
            prune_at: PRUNE_AT,
        }
    }
}

impl CursorStore {
    /// A new opaque cursor for `session`.
    pub fn issue(&mut self, session: &str, target: CursorTarget, lifetime: Duration) -> String {
        if self.issued.len() >= self.prune_at {
            self.issued
                .retain(|_, cursor| cursor.at.elapsed() < lifetime);
            self.prune_at = (self.issued.len() * 2).max(PRUNE_AT);
        }
        // Base64-looking like Instagram's, and long enough that guessing one is hopeless.
        let token = format!("QVFI{}", random_token(44));
        self.issued.insert(
            token.clone(),
            Issued {
                session: session.to_owned(),
                at: Instant::now(),
                target,
            },
        );
        token
    }

    /// The target of `token` when `session` may use it now.
    pub fn resolve(
        &self,
        session: &str,
        token: &str,
        lifetime: Duration,
    ) -> Result<&CursorTarget, CursorRefusal> {
        let cursor = self.issued.get(token).ok_or(CursorRefusal::Unknown)?;
        if cursor.session != session {
            return Err(CursorRefusal::Foreign);
        }
        if cursor.at.elapsed() >= lifetime {
            return Err(CursorRefusal::Expired);
        }
        Ok(&cursor.target)
    }

    /// Drops the cursors of sessions that no longer exist.
    pub fn forget_sessions(&mut self, alive: impl Fn(&str) -> bool) {
        self.issued.retain(|_, cursor| alive(&cursor.session));
    }

    pub fn clear(&mut self) {
        self.issued.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> CursorTarget {
        CursorTarget::Thread {
            thread_id: "1".into(),
            item_id: 5,
        }
    }

    #[test]
    fn a_cursor_works_for_its_session_only_and_until_its_lifetime_ends() {
        let mut store = CursorStore::default();
        let hour = Duration::from_secs(3600);
        let token = store.issue("s1", target(), hour);
        assert_eq!(store.resolve("s1", &token, hour), Ok(&target()));
        assert_eq!(
            store.resolve("s2", &token, hour),
            Err(CursorRefusal::Foreign)
        );
        assert_eq!(
            store.resolve("s1", &token, Duration::ZERO),
            Err(CursorRefusal::Expired)
        );
        assert_eq!(
            store.resolve("s1", "QVFIguess", hour),
            Err(CursorRefusal::Unknown)
        );
        store.forget_sessions(|session| session != "s1");
        assert_eq!(
            store.resolve("s1", &token, hour),
            Err(CursorRefusal::Unknown)
        );
    }
}
