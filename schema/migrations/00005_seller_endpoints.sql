-- +goose NO TRANSACTION
-- Each statement commits on its own: CockroachDB does not allow a schema
-- change and later statements that depend on it in one transaction.

-- +goose Up
-- An endpoint, and each of its deliveries, belongs to a buyer or, since
-- trading, to a seller: exactly one of the two columns is set.
ALTER TABLE webhook_endpoints ADD COLUMN seller_id UUID REFERENCES sellers (id);
ALTER TABLE webhook_endpoints ALTER COLUMN buyer_id DROP NOT NULL;
ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_endpoints_one_owner CHECK ((buyer_id IS NULL) <> (seller_id IS NULL));
CREATE INDEX webhook_endpoints_by_seller ON webhook_endpoints (seller_id, id);
ALTER TABLE webhook_deliveries ADD COLUMN seller_id UUID;
ALTER TABLE webhook_deliveries ALTER COLUMN buyer_id DROP NOT NULL;
-- The seller's delivery log, newest first.
CREATE INDEX webhook_deliveries_by_seller ON webhook_deliveries (seller_id, created_at DESC, id DESC);

-- +goose Down
DROP INDEX webhook_deliveries_by_seller;
ALTER TABLE webhook_deliveries DROP COLUMN seller_id;
DROP INDEX webhook_endpoints_by_seller;
ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_one_owner;
ALTER TABLE webhook_endpoints DROP COLUMN seller_id;
