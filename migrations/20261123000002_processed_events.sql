-- Timeline events already handled, so a homeserver transaction retried after a
-- failure part-way through does not handle its earlier events twice.
CREATE TABLE processed_events (
    event_id TEXT NOT NULL PRIMARY KEY,
    processed_at BIGINT NOT NULL
);
