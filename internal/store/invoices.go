package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dealcast/dealcast/internal/account"
	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/invoice"
)

// Errors of trading; callers match them with errors.Is.
var (
	// ErrNotForSale means the deal is already sold (or being sold).
	ErrNotForSale = errors.New("the deal is not for sale")
	// ErrAuctionLive means the deal has a scheduled or open auction.
	ErrAuctionLive = errors.New("the deal has a scheduled or open auction")
	// ErrInvoiceNotOpen means the invoice is already paid or void.
	ErrInvoiceNotOpen = errors.New("the invoice is not open")
	// ErrWrongAmount means a payment's amount is not the invoice's total.
	ErrWrongAmount = errors.New("the amount does not equal the invoice's total")
)

// Viewer is the account a read or a change is made for.
type Viewer struct {
	Role account.Role
	ID   string
}

// Purchase is a buyer's request to buy a deal at its price.
type Purchase struct {
	DealID string
	Buyer  string
	// IfMatch, when set, is the deal version the buyer saw.
	IfMatch *int64
	Idem    Idempotency
	// Terms is how long the buyer has to pay.
	Terms time.Duration
}

// Sale is what a committed sale wrote: the invoice and the events to hand
// to delivery (nil on a replay, which wrote nothing).
type Sale struct {
	Invoice  invoice.Invoice
	Replayed bool
	Events   []EventRef
}

var invoiceColumns = invoiceColumnsOf("invoices")

// scanInvoice reads the columns of invoiceColumns, then any extra ones into extra.
func scanInvoice(row pgx.Row, extra ...any) (invoice.Invoice, error) {
	var (
		inv    invoice.Invoice
		number int64
	)
	err := row.Scan(append([]any{&inv.ID, &number, &inv.Seller, &inv.Buyer, &inv.DealID, &inv.AuctionID,
		&inv.Currency, &inv.Lines, &inv.Total, &inv.Status, &inv.IssuedAt, &inv.DueAt, &inv.PaidAt, &inv.VoidedAt, &inv.Version}, extra...)...)
	inv.Number = invoice.FormatNumber(number)
	inv.IssuedAt, inv.DueAt = inv.IssuedAt.UTC(), inv.DueAt.UTC()
	for _, t := range []**time.Time{&inv.PaidAt, &inv.VoidedAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	return inv, err
}

// Purchase sells a deal to a buyer its seller authorises at the deal's net
// price, in one serializable transaction: the deal becomes sold (a
// deal.updated event to the authorised buyers), the invoice takes the
// seller's next number, and invoice.issued goes to the buyer and the
// seller. Of concurrent purchases of one deal exactly one commits; the
// others get ErrNotForSale. A repeat with the same Idempotency-Key and
// request returns the first invoice.
func (s *Store) Purchase(ctx context.Context, p Purchase) (Sale, error) {
	defer s.lockSales(ctx, "deals", p.DealID)()
	var sale Sale
	err := s.inSerializableTx(ctx, func(tx pgx.Tx) error {
		sale = Sale{}
		now := s.timestamp()
		first, claimed, err := claimIdempotencyKey(ctx, tx, p.Buyer, &p.Idem, []byte("{}"), now)
		if err != nil {
			return err
		}
		if !claimed {
			sale.Replayed = true
			return json.Unmarshal(first, &sale.Invoice)
		}
		var live bool
		cur, err := scanDeal(tx.QueryRow(ctx, `
			SELECT `+dealColumns+`, d.live_auction_id IS NOT NULL FROM deals d
			WHERE d.id = $1 AND EXISTS (SELECT 1 FROM grants g WHERE g.seller_id = d.seller_id AND g.buyer_id = $2)
			FOR UPDATE`, p.DealID, p.Buyer), &live)
		if err != nil {
			return err
		}
		if p.IfMatch != nil && *p.IfMatch != cur.Version {
			return ErrVersionMismatch
		}
		if cur.Status != deal.StatusAvailable {
			return ErrNotForSale
		}
		if live {
			return ErrAuctionLive
		}
		inv, events, err := s.sell(ctx, tx, cur, p.Buyer, cur.NetPrice, nil, now, p.Terms)
		if err != nil {
			return err
		}
		response, err := json.Marshal(inv)
		if err != nil {
			return err
		}
		if err := setIdempotentResponse(ctx, tx, p.Buyer, &p.Idem, response); err != nil {
			return err
		}
		sale.Invoice, sale.Events = inv, events
		return nil
	})
	if isUniqueViolation(err) {
		// Another sale of the deal holds its one live invoice: the seller
		// set it available again while the invoice is not void.
		return Sale{}, ErrNotForSale
	}
	return sale, err
}

// sell sells the deal cur, locked by tx, to buyer at price (through
// auctionID when an auction sold it): the deal becomes sold, the invoice
// takes the seller's next number, and invoice.issued goes to the buyer and
// the seller. It returns the invoice and the events to hand to delivery.
func (s *Store) sell(ctx context.Context, tx pgx.Tx, cur deal.Deal, buyer string, price int64, auctionID *string,
	now time.Time, terms time.Duration) (invoice.Invoice, []EventRef, error) {
	dealEvent, err := s.setDealStatus(ctx, tx, cur, deal.StatusSold, now)
	if err != nil {
		return invoice.Invoice{}, nil, err
	}
	number, err := nextInvoiceNumber(ctx, tx, cur.Seller)
	if err != nil {
		return invoice.Invoice{}, nil, err
	}
	inv := invoice.New(uuid.NewString(), number, cur, buyer, price, now, terms)
	if auctionID != nil {
		inv.AuctionID, inv.Lines = auctionID, invoice.AuctionLines(cur, price)
	}
	if err := insertInvoice(ctx, tx, inv, number); err != nil {
		return invoice.Invoice{}, nil, err
	}
	issued := invoice.NewEvent(invoice.EventIssued, inv, now)
	if err := insertNamedEvent(ctx, tx, issued, inv, inv.Buyer, inv.Seller); err != nil {
		return invoice.Invoice{}, nil, err
	}
	return inv, []EventRef{dealEvent, invoiceRef(issued, inv)}, nil
}

// setDealStatus moves cur to status as a new version with its
// deal.updated event, within tx.
func (s *Store) setDealStatus(ctx context.Context, tx pgx.Tx, cur deal.Deal, status deal.Status, now time.Time) (EventRef, error) {
	change, err := deal.Apply(cur, deal.Patch{Status: &status})
	if err != nil {
		return EventRef{}, err
	}
	next := change.Deal
	next.Version = cur.Version + 1
	next.UpdatedAt = now
	change.Deal = next
	ev := deal.Updated(change)
	applied, err := updateDeal(ctx, tx, cur.Version, next, ev, true)
	if err != nil {
		return EventRef{}, err
	}
	if !applied {
		return EventRef{}, fmt.Errorf("deal %s changed under its row lock", cur.ID)
	}
	return *refOf(ev), nil
}

// nextInvoiceNumber takes seller's next invoice number. The counter row is
// written in the sale's transaction: a sale that rolls back gives its
// number back, and concurrent sales queue on the row.
func nextInvoiceNumber(ctx context.Context, tx pgx.Tx, seller string) (int64, error) {
	var n int64
	err := tx.QueryRow(ctx, `
		INSERT INTO invoice_counters (seller_id, last_number) VALUES ($1, 1)
		ON CONFLICT (seller_id) DO UPDATE SET last_number = invoice_counters.last_number + 1
		RETURNING last_number`, seller).Scan(&n)
	return n, err
}

func insertInvoice(ctx context.Context, tx pgx.Tx, inv invoice.Invoice, number int64) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO invoices (id, seller_id, buyer_id, number, deal_id, auction_id, currency, lines, total, status,
		                      issued_at, due_at, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		inv.ID, inv.Seller, inv.Buyer, number, inv.DealID, inv.AuctionID, inv.Currency, inv.Lines, inv.Total,
		string(inv.Status), inv.IssuedAt, inv.DueAt, inv.Version)
	return err
}

// insertNamedEvent writes an invoice event to the outbox for the named
// accounts only.
func insertNamedEvent(ctx context.Context, tx pgx.Tx, ev invoice.Event, inv invoice.Invoice, recipients ...string) error {
	return insertEvent(ctx, tx, outboxEvent{ID: ev.ID, Type: string(ev.Type), DealID: inv.DealID, SellerID: inv.Seller,
		Payload: ev, CreatedAt: ev.CreatedAt}, recipients...)
}

// outboxEvent is an event that is not a deal's own (those record the
// deal's version and are written with the deal).
type outboxEvent struct {
	ID, Type, DealID, SellerID string
	Payload                    any
	CreatedAt                  time.Time
}

// insertEvent writes ev to the outbox in one statement: for the named
// recipients only, or, with none, for every buyer the seller authorises.
func insertEvent(ctx context.Context, tx execer, ev outboxEvent, recipients ...string) error {
	_, err := tx.Exec(ctx, `
		WITH ev AS (
			INSERT INTO events (id, type, deal_id, seller_id, payload, created_at, named)
			VALUES ($1, $2, $3, $4, $5, $6, $8)
			RETURNING id, created_at
		)
		INSERT INTO event_recipients (account_id, created_at, event_id)
		SELECT r, ev.created_at, ev.id FROM ev, unnest($7::UUID[]) AS r`,
		ev.ID, ev.Type, ev.DealID, ev.SellerID, ev.Payload, ev.CreatedAt, recipients, len(recipients) > 0)
	return err
}

func invoiceRef(ev invoice.Event, inv invoice.Invoice) EventRef {
	return EventRef{ID: ev.ID, Type: string(ev.Type), DealID: inv.DealID, InvoiceID: inv.ID}
}

// viewerCondition limits invoices (alias i) to those v may see, adding its
// argument to args.
func viewerCondition(v Viewer, args *[]any) string {
	switch v.Role {
	case account.RoleSeller:
		*args = append(*args, v.ID)
		return fmt.Sprintf("i.seller_id = $%d", len(*args))
	case account.RoleBuyer:
		*args = append(*args, v.ID)
		return fmt.Sprintf("i.buyer_id = $%d", len(*args))
	case account.RoleOperator:
		return "true"
	}
	return "false"
}

// Invoice returns an invoice v may see: its seller's, its buyer's, or any
// for an operator.
func (s *Store) Invoice(ctx context.Context, v Viewer, id string) (invoice.Invoice, error) {
	args := []any{id}
	cond := viewerCondition(v, &args)
	inv, err := scanInvoice(s.pool.QueryRow(ctx, `SELECT `+invoiceColumnsOf("i")+` FROM invoices i WHERE i.id = $1 AND `+cond, args...))
	return inv, translate(err)
}

// InvoiceWithParties returns an invoice v may see with both parties' names.
func (s *Store) InvoiceWithParties(ctx context.Context, v Viewer, id string) (invoice.Invoice, invoice.Parties, error) {
	args := []any{id}
	cond := viewerCondition(v, &args)
	var parties invoice.Parties
	inv, err := scanInvoice(s.pool.QueryRow(ctx, `
		SELECT `+invoiceColumnsOf("i")+`, s.name, b.name FROM invoices i
		JOIN sellers s ON s.id = i.seller_id JOIN buyers b ON b.id = i.buyer_id
		WHERE i.id = $1 AND `+cond, args...), &parties.Seller, &parties.Buyer)
	return inv, parties, translate(err)
}

// Invoices lists the invoices v may see, newest first: a seller's issued,
// a buyer's received, every one for an operator; status narrows it.
func (s *Store) Invoices(ctx context.Context, v Viewer, status invoice.Status, cursor string, limit int) (Page[invoice.Invoice], error) {
	pos, err := decodeCursor(cursor)
	if err != nil {
		return Page[invoice.Invoice]{}, err
	}
	var args []any
	where := viewerCondition(v, &args)
	if status != "" {
		args = append(args, string(status))
		where += fmt.Sprintf(" AND i.status = $%d", len(args))
	}
	if pos != nil {
		args = append(args, pos.At, pos.ID)
		where += fmt.Sprintf(" AND (i.issued_at, i.id) < ($%d, $%d)", len(args)-1, len(args))
	}
	args = append(args, limit+1)
	rows, err := s.pool.Query(ctx, fmt.Sprintf(`SELECT %s FROM invoices i WHERE %s
		ORDER BY i.issued_at DESC, i.id DESC LIMIT $%d`, invoiceColumnsOf("i"), where, len(args)), args...)
	if err != nil {
		return Page[invoice.Invoice]{}, translate(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (invoice.Invoice, error) { return scanInvoice(r) })
	if err != nil {
		return Page[invoice.Invoice]{}, translate(err)
	}
	return pageOf(list, limit, func(inv invoice.Invoice) position { return position{At: inv.IssuedAt, ID: inv.ID} }), nil
}

// invoiceColumnsOf is the columns scanInvoice reads, of table or alias t.
func invoiceColumnsOf(t string) string {
	cols := []string{"id::TEXT", "number", "seller_id::TEXT", "buyer_id::TEXT", "deal_id::TEXT", "auction_id::TEXT",
		"currency", "lines", "total", "status", "issued_at", "due_at", "paid_at", "voided_at", "version"}
	for i, c := range cols {
		cols[i] = t + "." + c
	}
	return strings.Join(cols, ", ")
}

// Payment records that an invoice was paid.
type Payment struct {
	Amount    int64
	Reference string
}

// InvoiceChange is an invoice after a change and the events it wrote.
type InvoiceChange struct {
	Invoice invoice.Invoice
	Events  []EventRef
}

// PayInvoice records the payment of an open invoice of v's (its seller, or
// any for an operator): ErrInvoiceNotOpen unless it is open,
// ErrWrongAmount unless the amount is its total. invoice.paid goes to the
// buyer and the seller.
func (s *Store) PayInvoice(ctx context.Context, v Viewer, id string, p Payment) (InvoiceChange, error) {
	var out InvoiceChange
	err := s.inSerializableTx(ctx, func(tx pgx.Tx) error {
		cur, err := lockOpenInvoice(ctx, tx, v, id)
		if err != nil {
			return err
		}
		if p.Amount != cur.Total {
			return ErrWrongAmount
		}
		now := s.timestamp()
		next := cur
		next.Status, next.PaidAt, next.Version = invoice.StatusPaid, &now, cur.Version+1
		if _, err := tx.Exec(ctx, `
			UPDATE invoices SET status = $2, paid_at = $3, payment_reference = $4, version = $5 WHERE id = $1`,
			id, string(next.Status), now, p.Reference, next.Version); err != nil {
			return err
		}
		ev := invoice.NewEvent(invoice.EventPaid, next, now)
		if err := insertNamedEvent(ctx, tx, ev, next, next.Buyer, next.Seller); err != nil {
			return err
		}
		out = InvoiceChange{Invoice: next, Events: []EventRef{invoiceRef(ev, next)}}
		return nil
	})
	return out, err
}

// VoidInvoice voids an open invoice of v's (its seller, or any for an
// operator) and returns its deal to available, so it can be sold again:
// invoice.voided goes to the buyer and the seller, deal.updated to the
// authorised buyers.
func (s *Store) VoidInvoice(ctx context.Context, v Viewer, id string) (InvoiceChange, error) {
	var out InvoiceChange
	err := s.inSerializableTx(ctx, func(tx pgx.Tx) error {
		cur, err := lockOpenInvoice(ctx, tx, v, id)
		if err != nil {
			return err
		}
		now := s.timestamp()
		next := cur
		next.Status, next.VoidedAt, next.Version = invoice.StatusVoid, &now, cur.Version+1
		if _, err := tx.Exec(ctx, `UPDATE invoices SET status = $2, voided_at = $3, version = $4 WHERE id = $1`,
			id, string(next.Status), now, next.Version); err != nil {
			return err
		}
		d, err := scanDeal(tx.QueryRow(ctx, `SELECT `+dealColumns+` FROM deals WHERE id = $1 FOR UPDATE`, cur.DealID))
		if err != nil {
			return err
		}
		out = InvoiceChange{Invoice: next}
		if d.Status != deal.StatusAvailable {
			dealEvent, err := s.setDealStatus(ctx, tx, d, deal.StatusAvailable, now)
			if err != nil {
				return err
			}
			out.Events = append(out.Events, dealEvent)
		}
		ev := invoice.NewEvent(invoice.EventVoided, next, now)
		if err := insertNamedEvent(ctx, tx, ev, next, next.Buyer, next.Seller); err != nil {
			return err
		}
		out.Events = append(out.Events, invoiceRef(ev, next))
		return nil
	})
	return out, err
}

// lockOpenInvoice reads an invoice v may change, locked for the rest of
// tx: ErrNotFound when v may not see it, ErrInvoiceNotOpen when it is
// paid or void. A buyer may change none.
func lockOpenInvoice(ctx context.Context, tx pgx.Tx, v Viewer, id string) (invoice.Invoice, error) {
	if v.Role == account.RoleBuyer {
		return invoice.Invoice{}, ErrNotFound
	}
	args := []any{id}
	cond := viewerCondition(v, &args)
	cur, err := scanInvoice(tx.QueryRow(ctx, `SELECT `+invoiceColumnsOf("i")+` FROM invoices i WHERE i.id = $1 AND `+cond+` FOR UPDATE`, args...))
	if err != nil {
		return invoice.Invoice{}, err
	}
	if cur.Status != invoice.StatusOpen {
		return invoice.Invoice{}, ErrInvoiceNotOpen
	}
	return cur, nil
}

// MarkOverdue writes the one invoice.overdue event of an invoice still
// open at its due date, and returns it; nil when the invoice is paid,
// void, not yet due, or was already marked. Safe to repeat.
func (s *Store) MarkOverdue(ctx context.Context, id string) (*EventRef, error) {
	var ref *EventRef
	err := s.inSerializableTx(ctx, func(tx pgx.Tx) error {
		ref = nil
		now := s.timestamp()
		cur, err := scanInvoice(tx.QueryRow(ctx, `
			SELECT `+invoiceColumns+` FROM invoices
			WHERE id = $1 AND status = 'open' AND overdue_at IS NULL AND due_at <= $2 FOR UPDATE`, id, now))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE invoices SET overdue_at = $2 WHERE id = $1`, id, now); err != nil {
			return err
		}
		ev := invoice.NewEvent(invoice.EventOverdue, cur, now)
		if err := insertNamedEvent(ctx, tx, ev, cur, cur.Buyer, cur.Seller); err != nil {
			return err
		}
		r := invoiceRef(ev, cur)
		ref = &r
		return nil
	})
	return ref, err
}

// InvoiceState is what the invoice workflow needs to know of an invoice.
type InvoiceState struct {
	Status invoice.Status
	DueAt  time.Time
	// Overdue reports whether its invoice.overdue was written.
	Overdue bool
}

// InvoiceStateOf returns an invoice's status, due date and whether it was
// marked overdue.
func (s *Store) InvoiceStateOf(ctx context.Context, id string) (InvoiceState, error) {
	var st InvoiceState
	err := s.pool.QueryRow(ctx, `SELECT status, due_at, overdue_at IS NOT NULL FROM invoices WHERE id = $1`, id).
		Scan(&st.Status, &st.DueAt, &st.Overdue)
	st.DueAt = st.DueAt.UTC()
	return st, translate(err)
}
