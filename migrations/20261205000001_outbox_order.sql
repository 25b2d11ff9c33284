-- The order Matrix events arrived in: the outbox carries a room's events out
-- in this order (created_at alone ties within a millisecond).
ALTER TABLE outbox ADD COLUMN position BIGINT NOT NULL DEFAULT 0;
CREATE INDEX outbox_by_room ON outbox (room_id, state, position);
