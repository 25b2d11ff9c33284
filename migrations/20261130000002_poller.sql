-- What the poller knows of each Instagram thread of a login: how far it was
-- relayed (the newest handled item and the thread's activity time), the items
-- of its newest page (a missing one was unsent) and the read receipts relayed.
CREATE TABLE poll_threads (
    login_mxid TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    -- 1 once the thread has (or is getting) a portal; 0 for threads seen on a
    -- first sync beyond the newest ones, bridged at their next activity.
    bridged BIGINT NOT NULL DEFAULT 0,
    -- 1 while the thread is a message request (pending inbox).
    request BIGINT NOT NULL DEFAULT 0,
    last_item_id TEXT,
    -- Unix microseconds of last_item_id.
    last_item_at BIGINT,
    -- Unix microseconds of the thread's activity when it was last relayed.
    activity_at BIGINT,
    -- JSON [[item_id, unix_us], ...]: the newest page, newest first.
    newest_page TEXT NOT NULL DEFAULT '[]',
    -- JSON {ig_user_id: item_id}: read receipts relayed.
    seen TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (login_mxid, thread_id)
);

-- A login the poller has synced once (its first sync chose the portals), and
-- the newest activity (Unix microseconds) a successful poll saw: after a
-- restart the inbox is read back to it.
CREATE TABLE poll_logins (
    login_mxid TEXT NOT NULL PRIMARY KEY,
    watermark BIGINT
);
