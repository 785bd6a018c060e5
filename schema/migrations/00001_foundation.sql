-- +goose Up
CREATE TABLE sellers (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE buyers (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A grant lets one buyer see one seller's deals and receive their events.
CREATE TABLE grants (
    seller_id  UUID NOT NULL REFERENCES sellers (id),
    buyer_id   UUID NOT NULL REFERENCES buyers (id),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (seller_id, buyer_id)
);
-- The buyer side of the grant: "which sellers authorised me".
CREATE INDEX grants_by_buyer ON grants (buyer_id, seller_id);

-- Items live in a JSONB column: they are always read and written with their
-- deal, never queried alone, and one row keeps a deal write to one key.
CREATE TABLE deals (
    id              UUID PRIMARY KEY,
    seller_id       UUID NOT NULL REFERENCES sellers (id),
    name            TEXT NOT NULL,
    total_price     BIGINT NOT NULL CHECK (total_price >= 0),
    net_price       BIGINT NOT NULL CHECK (net_price >= 0),
    currency        TEXT NOT NULL,
    -- discount_amount is minor units for 'flat' and hundredths of a percent for 'percentage'.
    discount_type   TEXT CHECK (discount_type IN ('flat', 'percentage')),
    discount_amount BIGINT,
    status          TEXT NOT NULL CHECK (status IN ('available', 'sold')),
    items           JSONB NOT NULL,
    version         BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    CHECK ((discount_type IS NULL) = (discount_amount IS NULL))
);
-- Keyset pagination, newest first, for a seller's own list with and without a status filter.
CREATE INDEX deals_by_seller ON deals (seller_id, created_at DESC, id DESC);
CREATE INDEX deals_by_seller_status ON deals (seller_id, status, created_at DESC, id DESC);

-- The transactional outbox: one row per deal change, written in the same
-- transaction as the change. Delivery reads it; buyers page through it.
CREATE TABLE events (
    id            TEXT PRIMARY KEY,
    type          TEXT NOT NULL,
    deal_id       UUID NOT NULL,
    seller_id     UUID NOT NULL,
    deal_version  BIGINT NOT NULL,
    payload       JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    dispatched_at TIMESTAMPTZ
);
-- The buyers' pull feed: a seller's events, oldest first.
CREATE INDEX events_by_seller ON events (seller_id, created_at, id);
-- The dispatcher's work list stays small: only rows not yet handed to delivery.
CREATE INDEX events_undispatched ON events (created_at) WHERE dispatched_at IS NULL;

-- Idempotency-Key records for POST /v1/deals, kept 24 hours.
CREATE TABLE idempotency_keys (
    seller_id    UUID NOT NULL,
    key          TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    status_code  INT NOT NULL,
    response     JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (seller_id, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE events;
DROP TABLE deals;
DROP TABLE grants;
DROP TABLE buyers;
DROP TABLE sellers;
