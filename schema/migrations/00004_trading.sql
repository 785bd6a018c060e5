-- +goose NO TRANSACTION
-- Each statement commits on its own: CockroachDB does not allow a schema
-- change and writes that depend on it in one transaction.

-- +goose Up
-- An event either goes to every buyer its seller authorises (named false,
-- the deal.* events) or only to the accounts listed in event_recipients
-- (named true: an invoice's buyer and seller).
ALTER TABLE events ADD COLUMN named BOOL NOT NULL DEFAULT false;
-- Only deal.* events record the deal's version.
ALTER TABLE events ALTER COLUMN deal_version DROP NOT NULL;

-- The named recipients of an event, keyed for each account's pull feed
-- (oldest first) and for delivery. account_id is a seller's or a buyer's ID.
CREATE TABLE event_recipients (
    account_id UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    event_id   TEXT NOT NULL,
    PRIMARY KEY (account_id, created_at, event_id)
);
CREATE INDEX event_recipients_by_event ON event_recipients (event_id);

-- The last invoice number each seller issued. The row is read and bumped
-- in the transaction that issues the invoice, so numbers are consecutive
-- with no gaps; a sequence would leave gaps on rollback.
CREATE TABLE invoice_counters (
    seller_id   UUID PRIMARY KEY REFERENCES sellers (id),
    last_number BIGINT NOT NULL
);

CREATE TABLE invoices (
    id                UUID PRIMARY KEY,
    seller_id         UUID NOT NULL REFERENCES sellers (id),
    buyer_id          UUID NOT NULL REFERENCES buyers (id),
    number            BIGINT NOT NULL CHECK (number > 0),
    deal_id           UUID NOT NULL REFERENCES deals (id),
    auction_id        UUID,
    currency          TEXT NOT NULL,
    lines             JSONB NOT NULL,
    total             BIGINT NOT NULL CHECK (total >= 0),
    status            TEXT NOT NULL CHECK (status IN ('open', 'paid', 'void')),
    payment_reference TEXT,
    issued_at         TIMESTAMPTZ NOT NULL,
    due_at            TIMESTAMPTZ NOT NULL,
    paid_at           TIMESTAMPTZ,
    voided_at         TIMESTAMPTZ,
    -- When invoice.overdue was written: it is sent once.
    overdue_at        TIMESTAMPTZ,
    version           BIGINT NOT NULL,
    UNIQUE (seller_id, number)
);
-- Keyset pagination, newest first, for the seller's issued and the buyer's received invoices.
CREATE INDEX invoices_by_seller ON invoices (seller_id, issued_at DESC, id DESC);
CREATE INDEX invoices_by_buyer ON invoices (buyer_id, issued_at DESC, id DESC);
-- A deal is sold to one buyer at a time: at most one invoice that is not void.
CREATE UNIQUE INDEX invoices_one_sale_per_deal ON invoices (deal_id) WHERE status <> 'void';

-- +goose Down
DROP TABLE invoices;
DROP TABLE invoice_counters;
DROP TABLE event_recipients;
ALTER TABLE events DROP COLUMN named;
