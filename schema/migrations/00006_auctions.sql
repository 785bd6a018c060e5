-- +goose NO TRANSACTION
-- Each statement commits on its own: CockroachDB does not allow a schema
-- change and later statements that depend on it in one transaction.

-- +goose Up
CREATE TABLE auctions (
    id             UUID PRIMARY KEY,
    deal_id        UUID NOT NULL REFERENCES deals (id),
    seller_id      UUID NOT NULL REFERENCES sellers (id),
    currency       TEXT NOT NULL,
    start_price    BIGINT NOT NULL CHECK (start_price > 0),
    min_increment  BIGINT NOT NULL CHECK (min_increment > 0),
    reserve_price  BIGINT CHECK (reserve_price >= start_price),
    opens_at       TIMESTAMPTZ NOT NULL,
    closes_at      TIMESTAMPTZ NOT NULL CHECK (closes_at > opens_at),
    extend_seconds INT NOT NULL CHECK (extend_seconds BETWEEN 0 AND 3600),
    status         TEXT NOT NULL CHECK (status IN ('scheduled', 'open', 'closed', 'cancelled')),
    outcome        TEXT CHECK (outcome IN ('won', 'reserve_not_met', 'no_bids')),
    bid_count      BIGINT NOT NULL DEFAULT 0,
    best_bid       BIGINT,
    -- The buyer holding best_bid; shown to the seller as winner once won.
    leader_id      UUID REFERENCES buyers (id),
    invoice_id     UUID,
    version        BIGINT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
-- A deal has at most one auction that is scheduled or open.
CREATE UNIQUE INDEX auctions_one_live_per_deal ON auctions (deal_id) WHERE status IN ('scheduled', 'open');
-- Keyset pagination, newest first: a seller's own, and the auctions of the sellers a buyer sees.
CREATE INDEX auctions_by_seller ON auctions (seller_id, created_at DESC, id DESC);

-- Accepted bids only: a refused bid leaves no row. seq is the bid's place
-- in commit order (bid_count after it), so the order is the database's.
CREATE TABLE bids (
    id         UUID PRIMARY KEY,
    auction_id UUID NOT NULL REFERENCES auctions (id),
    buyer_id   UUID NOT NULL REFERENCES buyers (id),
    seq        BIGINT NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount > 0),
    placed_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (auction_id, seq)
);
CREATE INDEX bids_by_buyer ON bids (buyer_id, auction_id, seq);

-- The deal's live auction, set and cleared in the auction's transactions:
-- a deal PATCH that changes more than the name requires it NULL in its
-- UPDATE, so a PATCH racing an auction's creation cannot slip through.
ALTER TABLE deals ADD COLUMN live_auction_id UUID;

-- +goose Down
ALTER TABLE deals DROP COLUMN live_auction_id;
DROP TABLE bids;
DROP TABLE auctions;
