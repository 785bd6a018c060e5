-- +goose NO TRANSACTION

-- +goose Up
-- The live auctions of a seller by deadline: a close takes every other one
-- already due with it (store.CloseDueAuctions).
CREATE INDEX auctions_due ON auctions (seller_id, closes_at) WHERE status IN ('scheduled', 'open');

-- +goose Down
DROP INDEX auctions_due;
