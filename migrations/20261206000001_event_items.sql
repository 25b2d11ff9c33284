-- A Matrix event may stand for more than one Instagram item: a photo sent from
-- Matrix with a caption becomes the photo and a text after it. The table is
-- rebuilt without UNIQUE (room_id, event_id), which SQLite cannot drop in place;
-- a plain index keeps the lookup by event.
CREATE TABLE messages_by_item (
    login_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    part_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    timestamp BIGINT NOT NULL,
    client_context TEXT,
    content_hash TEXT,
    PRIMARY KEY (login_id, thread_id, item_id, part_id)
);
INSERT INTO messages_by_item
    (login_id, thread_id, item_id, part_id, room_id, event_id, sender, timestamp,
     client_context, content_hash)
    SELECT login_id, thread_id, item_id, part_id, room_id, event_id, sender, timestamp,
           client_context, content_hash
    FROM messages;
DROP TABLE messages;
ALTER TABLE messages_by_item RENAME TO messages;
CREATE INDEX messages_by_time ON messages (login_id, thread_id, timestamp);
CREATE INDEX messages_by_event ON messages (room_id, event_id);
