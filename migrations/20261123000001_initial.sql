-- The bridge's tables. Portable SQL: runs unchanged on SQLite and PostgreSQL
-- (TEXT and BIGINT only; booleans are BIGINT 0/1; times are Unix milliseconds;
-- binary values such as encrypted credentials are base64 TEXT).

-- A Matrix user's Instagram login; `credentials` is sealed by the credential key.
CREATE TABLE logins (
    mxid TEXT NOT NULL PRIMARY KEY,
    ig_user_id TEXT,
    username TEXT,
    credentials TEXT NOT NULL,
    device_uuid TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The room where a Matrix user talks to the bridge bot.
CREATE TABLE management_rooms (
    mxid TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL UNIQUE
);

-- An Instagram thread of one login, bridged into one Matrix room.
CREATE TABLE portals (
    login_mxid TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    room_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    name TEXT,
    avatar_url TEXT,
    encrypted BIGINT NOT NULL DEFAULT 0,
    last_item_id TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (login_mxid, thread_id)
);

-- An Instagram user's Matrix ghost.
CREATE TABLE puppets (
    ig_user_id TEXT NOT NULL PRIMARY KEY,
    mxid TEXT NOT NULL UNIQUE,
    displayname TEXT,
    avatar_url TEXT,
    name_set BIGINT NOT NULL DEFAULT 0,
    avatar_set BIGINT NOT NULL DEFAULT 0,
    registered BIGINT NOT NULL DEFAULT 0
);

-- Instagram item to Matrix event, both ways: the exactly-once record.
CREATE TABLE messages (
    login_mxid TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    timestamp BIGINT NOT NULL,
    client_context TEXT,
    PRIMARY KEY (login_mxid, thread_id, item_id),
    UNIQUE (room_id, event_id)
);

-- One reaction per sender per Instagram item, and its Matrix event.
CREATE TABLE reactions (
    login_mxid TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    emoji TEXT NOT NULL,
    PRIMARY KEY (login_mxid, thread_id, item_id, sender)
);
CREATE INDEX reactions_by_event ON reactions (room_id, event_id);

-- Matrix events waiting to be, or already, carried out on Instagram.
CREATE TABLE outbox (
    event_id TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    login_mxid TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    client_context TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    item_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX outbox_by_state ON outbox (state, created_at);
CREATE INDEX outbox_by_client_context ON outbox (client_context);

-- Homeserver transactions already processed (a retried txnId is a no-op).
CREATE TABLE processed_transactions (
    txn_id TEXT NOT NULL PRIMARY KEY,
    processed_at BIGINT NOT NULL
);

-- Small bridge state, such as the inbox sequence id of each login.
CREATE TABLE kv (
    key TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
