-- When a poll of the login last succeeded (Unix milliseconds), shown by
-- `ping` and `list-logins`.
ALTER TABLE poll_logins ADD COLUMN last_success_at BIGINT;
