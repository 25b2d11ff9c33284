-- Instagram -> Matrix relaying. Portable SQL (SQLite and PostgreSQL), as in
-- the initial migration.

-- One row per Matrix event of an item: a share and its preview picture are
-- two parts. `part_id` is '' for the main part. `content_hash` (main part
-- only) is a hash of the item's text, to notice edits.
CREATE TABLE message_parts (
    login_mxid TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    part_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    timestamp BIGINT NOT NULL,
    client_context TEXT,
    content_hash TEXT,
    PRIMARY KEY (login_mxid, thread_id, item_id, part_id),
    UNIQUE (room_id, event_id)
);
INSERT INTO message_parts
    (login_mxid, thread_id, item_id, part_id, room_id, event_id, sender, timestamp, client_context)
    SELECT login_mxid, thread_id, item_id, '', room_id, event_id, sender, timestamp, client_context
    FROM messages;
DROP TABLE messages;
ALTER TABLE message_parts RENAME TO messages;
CREATE INDEX messages_by_time ON messages (login_mxid, thread_id, timestamp);

-- A portal that is a message request (pending inbox) and whether its notice
-- was posted; the picture id (URL path without the signed query) of the room
-- avatar, so a picture is uploaded once; whether it is in the login's space;
-- a hash of the participants whose puppets were last made the members.
ALTER TABLE portals ADD COLUMN request BIGINT NOT NULL DEFAULT 0;
ALTER TABLE portals ADD COLUMN request_notice_sent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE portals ADD COLUMN avatar_id TEXT;
ALTER TABLE portals ADD COLUMN in_space BIGINT NOT NULL DEFAULT 0;
ALTER TABLE portals ADD COLUMN members_hash TEXT;

-- Rooms being created (a portal, or the login's space when thread_id is ''):
-- after a crash between createRoom and saving its id, the room is found
-- again instead of created twice.
CREATE TABLE room_creations (
    login_mxid TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    PRIMARY KEY (login_mxid, thread_id)
);

-- The Matrix space holding a login's portals.
CREATE TABLE login_spaces (
    login_mxid TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL UNIQUE
);

-- The puppet's Instagram username (mention pills) and its picture: id (URL
-- path without the signed query) and SHA-256, to upload each picture once.
ALTER TABLE puppets ADD COLUMN username TEXT;
ALTER TABLE puppets ADD COLUMN avatar_id TEXT;
ALTER TABLE puppets ADD COLUMN avatar_hash TEXT;
CREATE INDEX puppets_by_username ON puppets (username);

-- The event each participant's read receipt was last sent for.
CREATE TABLE read_receipts (
    login_mxid TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    ig_user_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (login_mxid, thread_id, ig_user_id)
);
