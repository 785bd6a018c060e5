-- +goose Up
-- A buyer's webhook endpoint. Secrets are sealed (AES-GCM) by the
-- application before they reach the database; the previous secret keeps
-- signing for a grace period after a rotation.
CREATE TABLE webhook_endpoints (
    id                         UUID PRIMARY KEY,
    buyer_id                   UUID NOT NULL REFERENCES buyers (id),
    url                        TEXT NOT NULL,
    description                TEXT NOT NULL DEFAULT '',
    event_types                TEXT[] NOT NULL,
    enabled                    BOOL NOT NULL DEFAULT true,
    disabled_reason            TEXT,
    secret                     BYTEA NOT NULL,
    previous_secret            BYTEA,
    previous_secret_expires_at TIMESTAMPTZ,
    created_at                 TIMESTAMPTZ NOT NULL,
    updated_at                 TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_endpoints_by_buyer ON webhook_endpoints (buyer_id, id);

-- One row per (event, endpoint): the latest outcome of delivering that
-- event there. Written in batches by the delivery activity.
CREATE TABLE webhook_deliveries (
    id               UUID PRIMARY KEY,
    event_id         TEXT NOT NULL,
    endpoint_id      UUID NOT NULL,
    buyer_id         UUID NOT NULL,
    event_type       TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         INT NOT NULL,
    last_status_code INT,
    last_error       TEXT,
    next_attempt_at  TIMESTAMPTZ,
    delivered_at     TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (event_id, endpoint_id)
);
-- The buyer's delivery log, newest first.
CREATE INDEX webhook_deliveries_by_buyer ON webhook_deliveries (buyer_id, created_at DESC, id DESC);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
