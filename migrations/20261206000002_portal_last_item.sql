-- The newest bridged item is the poller's to keep (poll_threads.last_item_id);
-- the portal's own copy was never advanced.
ALTER TABLE portals DROP COLUMN last_item_id;
