-- Several Instagram logins per Matrix user: a login has an id of its own and
-- `mxid` is its owner. A login stored before keeps its owner's id as its
-- login id, so what was bridged through it (keyed by that value) stays its.
CREATE TABLE logins_by_id (
    id TEXT NOT NULL PRIMARY KEY,
    mxid TEXT NOT NULL,
    ig_user_id TEXT,
    username TEXT,
    credentials TEXT NOT NULL,
    device_uuid TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO logins_by_id
    (id, mxid, ig_user_id, username, credentials, device_uuid, state, created_at, updated_at)
    SELECT mxid, mxid, ig_user_id, username, credentials, device_uuid, state, created_at, updated_at
    FROM logins;
DROP TABLE logins;
ALTER TABLE logins_by_id RENAME TO logins;
CREATE INDEX logins_by_owner ON logins (mxid);
-- One login per Instagram account per Matrix user: logging in again to the
-- same account is that login again (same portals).
CREATE UNIQUE INDEX logins_by_account ON logins (mxid, ig_user_id);

ALTER TABLE portals RENAME COLUMN login_mxid TO login_id;
ALTER TABLE messages RENAME COLUMN login_mxid TO login_id;
ALTER TABLE reactions RENAME COLUMN login_mxid TO login_id;
ALTER TABLE outbox RENAME COLUMN login_mxid TO login_id;
ALTER TABLE room_creations RENAME COLUMN login_mxid TO login_id;
ALTER TABLE login_spaces RENAME COLUMN login_mxid TO login_id;
ALTER TABLE read_receipts RENAME COLUMN login_mxid TO login_id;
ALTER TABLE poll_threads RENAME COLUMN login_mxid TO login_id;
ALTER TABLE poll_logins RENAME COLUMN login_mxid TO login_id;

-- The Matrix user who owns a portal's login (the user of its room); for the
-- logins stored before, their id is that user.
ALTER TABLE portals ADD COLUMN owner TEXT NOT NULL DEFAULT '';
UPDATE portals SET owner = login_id;
