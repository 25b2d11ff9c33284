//! Fetching a thread's items for relaying: the newest page, then older pages
//! (following the opaque cursor) back to the last relayed item, or back to a
//! number of items for a new portal's history. A burst bigger than a page or
//! hours of downtime are fetched whole (up to a cap); the result is oldest
//! first, ready to relay in order.

use std::collections::HashSet;

use crate::connector::auth::Credentials;
use crate::connector::http::Connector;
use crate::connector::session::ConnectorError;
use crate::model::Message;
use crate::store::PageItem;

/// How far back a fetch goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Back to this item (exclusive), or to the first item older than
    /// `at` (Unix microseconds) when the item itself is gone; the whole
    /// newest page is always fetched, so changes to recent items are seen.
    Since { item_id: String, at: Option<i64> },
    /// The newest `count` items (a new portal's history).
    Newest { count: usize },
}

/// What a fetch found.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// Oldest first.
    pub messages: Vec<Message>,
    /// The newest page as Instagram returned it, newest first.
    pub newest_page: Vec<PageItem>,
    /// False when the cap stopped the fetch before it reached its goal.
    pub complete: bool,
}

/// Unix microseconds of a message, when it has a time.
pub fn micros(message: &Message) -> Option<i64> {
    message.timestamp.map(|at| at.timestamp_micros())
}

/// Fetches `thread_id`'s items back to `reach`, at most `cap` of them
/// (besides the newest page).
pub async fn fetch_thread(
    connector: &Connector,
    creds: &mut Credentials,
    thread_id: &str,
    reach: &Reach,
    cap: usize,
) -> Result<Fetched, ConnectorError> {
    let mut newest_first: Vec<Message> = Vec::new();
    let mut ids = HashSet::new();
    let mut newest_page = None;
    let mut cursor: Option<String> = None;
    let complete = loop {
        let page = connector
            .list_messages_page(creds, thread_id, cursor.as_deref())
            .await?;
        let first_page = newest_page.is_none();
        if first_page {
            newest_page = Some(
                page.messages
                    .iter()
                    .map(|m| (m.id.clone(), micros(m).unwrap_or_default()))
                    .collect::<Vec<_>>(),
            );
        }
        let mut reached = false;
        for message in page.messages {
            if reached_goal(reach, &message, newest_first.len()) {
                reached = true;
                if !first_page {
                    break;
                }
            } else if !first_page && newest_first.len() >= cap {
                break;
            }
            if ids.insert(message.id.clone()) {
                newest_first.push(message);
            }
        }
        if reached {
            break true;
        }
        if newest_first.len() >= cap {
            break false;
        }
        match page
            .cursor
            .filter(|next| page.has_older && Some(next) != cursor.as_ref())
        {
            Some(next) => cursor = Some(next),
            // The start of the thread.
            None => break true,
        }
    };
    if let Reach::Newest { count } = reach {
        newest_first.truncate(*count);
    }
    newest_first.reverse();
    Ok(Fetched {
        messages: newest_first,
        newest_page: newest_page.unwrap_or_default(),
        complete,
    })
}

/// Whether `message` (and everything older) is at or beyond the goal.
fn reached_goal(reach: &Reach, message: &Message, collected: usize) -> bool {
    match reach {
        Reach::Since { item_id, at } => {
            message.id == *item_id
                || matches!((micros(message), at), (Some(time), Some(at)) if time < *at)
        }
        Reach::Newest { count } => collected >= *count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::instagram::load_connector;
    use crate::config::Config;
    use instagram_sim::Simulator;

    /// A simulator with a thread, and the connector logged in as its owner.
    struct Thread {
        sim: Simulator,
        connector: Connector,
        creds: Credentials,
        thread_id: String,
        friend: u64,
    }

    async fn thread() -> Thread {
        let sim = Simulator::start().await;
        let me = sim.create_account("me.myself", "Me").unwrap();
        let friend = sim.create_account("the.friend", "Friend").unwrap();
        let thread_id = sim.create_thread(me.pk, &[friend.pk], None).unwrap();
        let mut config = Config::example();
        config.instagram.api_base_url = Some(sim.api_base_url());
        let config_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.yaml");
        let connector = load_connector(&config, &config_path).unwrap();
        Thread {
            creds: Credentials::from_cookies(me.cookies.clone()),
            sim,
            connector,
            thread_id,
            friend: friend.pk,
        }
    }

    impl Thread {
        fn post(&self, count: usize, label: &str) -> Vec<String> {
            (0..count)
                .map(|n| {
                    self.sim
                        .post_text(&self.thread_id, self.friend, &format!("{label} {n}"))
                        .unwrap()
                })
                .collect()
        }

        async fn fetch(&mut self, reach: Reach, cap: usize) -> Fetched {
            fetch_thread(
                &self.connector,
                &mut self.creds,
                &self.thread_id,
                &reach,
                cap,
            )
            .await
            .unwrap()
        }
    }

    fn texts(fetched: &Fetched) -> Vec<String> {
        fetched
            .messages
            .iter()
            .map(|m| m.content.clone().unwrap_or_default())
            .collect()
    }

    #[tokio::test]
    async fn follows_pages_back_to_the_last_relayed_item() {
        let mut thread = thread().await;
        let old = thread.post(5, "old");
        let last = old.last().unwrap().clone();
        let new = thread.post(65, "new");
        let fetched = thread
            .fetch(
                Reach::Since {
                    item_id: last,
                    at: None,
                },
                1000,
            )
            .await;
        assert!(fetched.complete);
        let expected: Vec<String> = (0..65).map(|n| format!("new {n}")).collect();
        assert_eq!(
            texts(&fetched),
            expected,
            "every new item, oldest first, once"
        );
        assert_eq!(fetched.newest_page[0].0, *new.last().unwrap());
        assert!(
            thread
                .sim
                .request_count("GET", &format!("direct_v2/threads/{}/", thread.thread_id))
                >= 4,
            "65 items take several pages"
        );
    }

    #[tokio::test]
    async fn the_whole_newest_page_is_fetched_to_see_changes() {
        let mut thread = thread().await;
        let ids = thread.post(5, "m");
        let fetched = thread
            .fetch(
                Reach::Since {
                    item_id: ids[4].clone(),
                    at: None,
                },
                1000,
            )
            .await;
        assert_eq!(texts(&fetched), ["m 0", "m 1", "m 2", "m 3", "m 4"]);
    }

    #[tokio::test]
    async fn an_unsent_last_item_is_passed_by_time() {
        let mut thread = thread().await;
        let old = thread.post(25, "old");
        let at = thread
            .fetch(Reach::Newest { count: 1 }, 1000)
            .await
            .newest_page[0]
            .1;
        thread.sim.unsend(&thread.thread_id, &old[24]).unwrap();
        thread.post(25, "new");
        let fetched = thread
            .fetch(
                Reach::Since {
                    item_id: old[24].clone(),
                    at: Some(at),
                },
                1000,
            )
            .await;
        let texts = texts(&fetched);
        let expected: Vec<String> = (0..25).map(|n| format!("new {n}")).collect();
        // Items of the same microsecond as the gone one are fetched again
        // (relaying is idempotent); nothing older is.
        let old_ones = texts.len() - 25;
        assert_eq!(texts[old_ones..], expected[..], "{texts:?}");
        assert!(old_ones < 24, "{texts:?}");
    }

    #[tokio::test]
    async fn history_of_a_new_portal_is_the_newest_items_oldest_first() {
        let mut thread = thread().await;
        thread.post(70, "m");
        let fetched = thread.fetch(Reach::Newest { count: 50 }, 1000).await;
        let expected: Vec<String> = (20..70).map(|n| format!("m {n}")).collect();
        assert_eq!(texts(&fetched), expected);
        let all = thread.fetch(Reach::Newest { count: 500 }, 1000).await;
        assert_eq!(all.messages.len(), 70);
        assert!(all.complete);
    }

    #[tokio::test]
    async fn the_cap_stops_a_long_catch_up() {
        let mut thread = thread().await;
        let first = thread.post(1, "first");
        thread.post(80, "m");
        let fetched = thread
            .fetch(
                Reach::Since {
                    item_id: first[0].clone(),
                    at: None,
                },
                30,
            )
            .await;
        assert!(!fetched.complete);
        assert!(fetched.messages.len() >= 30 && fetched.messages.len() < 80);
        assert_eq!(
            fetched.messages.last().unwrap().content.as_deref(),
            Some("m 79")
        );
    }
}
