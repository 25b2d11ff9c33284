//! What every private-API answer goes through last: thread cursors become opaque tokens of
//! the asking session, media URLs are signed with a fresh expiry, and in drift mode the
//! body drifts.

use serde_json::{json, Value};

use crate::cursor::CursorTarget;
use crate::drift;
use crate::signing;
use crate::world::{now_ms, parse_item_id, World};

impl World {
    pub(crate) fn finish_response(&mut self, session: &str, body: &mut Value) {
        self.opaque_thread_cursors(session, body);
        if let Some(threads) = body
            .get_mut("inbox")
            .and_then(|inbox| inbox.get_mut("threads"))
            .and_then(Value::as_array_mut)
        {
            for thread in threads {
                self.opaque_thread_cursors(session, thread);
            }
        }
        if let Some(thread) = body.get_mut("thread") {
            self.opaque_thread_cursors(session, thread);
        }
        if self.settings.drift {
            drift::apply(body);
        }
        self.sign_media_urls(body);
    }

    /// Signs every `/media/` URL in `body` to expire after the media URL lifetime.
    pub(crate) fn sign_media_urls(&self, body: &mut Value) {
        let expires = (now_ms() / 1000).saturating_add(self.settings.media_url_ttl.as_secs());
        let prefix = format!("{}/media/", self.base_url);
        signing::sign_all(body, &prefix, self.media_secret, expires);
    }

    /// A rendered thread's `oldest_cursor`/`newest_cursor` (item ids) become cursors bound to
    /// `session`; `prev_cursor`/`next_cursor` carry them when there is an older/newer page.
    fn opaque_thread_cursors(&mut self, session: &str, thread: &mut Value) {
        let Some(thread_id) = thread
            .get("thread_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return;
        };
        let ttl = self.settings.cursor_ttl;
        let mut issue = |key: &str, thread: &mut Value| {
            let item_id = thread
                .get(key)
                .and_then(Value::as_str)
                .and_then(parse_item_id)?;
            let target = CursorTarget::Thread {
                thread_id: thread_id.clone(),
                item_id,
            };
            let token = self.cursors.issue(session, target, ttl);
            thread[key] = json!(token);
            Some(token)
        };
        let oldest = issue("oldest_cursor", thread);
        let newest = issue("newest_cursor", thread);
        let flag = |key: &str| thread.get(key).and_then(Value::as_bool).unwrap_or(false);
        let (has_older, has_newer) = (flag("has_older"), flag("has_newer"));
        if let (true, Some(oldest)) = (has_older, oldest) {
            thread["prev_cursor"] = json!(oldest);
        }
        if let (true, Some(newest)) = (has_newer, newest) {
            thread["next_cursor"] = json!(newest);
        }
    }
}
