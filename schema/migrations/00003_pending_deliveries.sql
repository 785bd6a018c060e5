-- +goose Up
-- Pending deliveries are few next to the log, and are what retry rounds and
-- the retry-queue gauge look for.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (event_id, endpoint_id) WHERE status = 'pending';

-- +goose Down
DROP INDEX webhook_deliveries_pending;
