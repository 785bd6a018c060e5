package api_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dealcast/dealcast/internal/deal"
	"github.com/dealcast/dealcast/internal/invoice"
)

// market is a seller with deals and buyers it authorises.
type market struct {
	e           *env
	seller      string
	sellerToken string
	buyers      []string
	tokens      []string
}

func newMarket(t *testing.T, buyers int) *market {
	t.Helper()
	e := setup(t)
	m := &market{e: e}
	m.seller, m.sellerToken = e.seller()
	for range buyers {
		id, tok := e.buyer()
		e.grant(m.seller, m.sellerToken, id)
		m.buyers, m.tokens = append(m.buyers, id), append(m.tokens, tok)
	}
	return m
}

// deal posts a deal of two items with a 10 % discount: 9,000 net of 10,000.
func (m *market) deal() deal.Deal {
	m.e.t.Helper()
	var d deal.Deal
	m.e.do(http.MethodPost, "/v1/deals", m.sellerToken, map[string]any{
		"name": "Winter bundle", "currency": "GBP", "total_price": 10000,
		"items":    []map[string]any{{"id": "sku-1", "name": "Gloves", "price": 4000}, {"id": "sku-2", "name": "Scarf", "price": 6000}},
		"discount": map[string]any{"type": "percentage", "amount": 10},
	}).want(http.StatusCreated).decode(&d)
	return d
}

func (m *market) purchase(dealID, token, key string, headers ...string) *response {
	m.e.t.Helper()
	if key != "" {
		headers = append(headers, "Idempotency-Key", key)
	}
	return m.e.do(http.MethodPost, "/v1/deals/"+dealID+"/purchase", token, nil, headers...)
}

func TestPurchaseIssuesTheInvoice(t *testing.T) {
	m := newMarket(t, 1)
	d := m.deal()
	r := m.purchase(d.ID, m.tokens[0], "buy-1").want(http.StatusCreated)
	var inv invoice.Invoice
	r.decode(&inv)
	if inv.Number != "INV-000001" || inv.Total != 9000 || inv.Seller != m.seller || inv.Buyer != m.buyers[0] ||
		inv.DealID != d.ID || inv.Status != invoice.StatusOpen || inv.Currency != "gbp" || inv.AuctionID != nil {
		t.Fatalf("invoice %+v", inv)
	}
	if r.Header.Get("Location") != "/v1/invoices/"+inv.ID {
		t.Errorf("Location %q", r.Header.Get("Location"))
	}
	wantLines := []invoice.Line{{Description: "Gloves", Amount: 4000}, {Description: "Scarf", Amount: 6000}, {Description: "Discount (10%)", Amount: -1000}}
	if !slices.Equal(inv.Lines, wantLines) {
		t.Errorf("lines %+v, want %+v", inv.Lines, wantLines)
	}
	if got := inv.DueAt.Sub(inv.IssuedAt); got != 336*60*60*1e9 {
		t.Errorf("due %v after issue, want the default terms of 336h", got)
	}
	var after deal.Deal
	m.e.do(http.MethodGet, "/v1/deals/"+d.ID, m.sellerToken, nil).want(http.StatusOK).decode(&after)
	if after.Status != deal.StatusSold || after.Version != d.Version+1 {
		t.Errorf("deal after purchase: status %s version %d", after.Status, after.Version)
	}
	// The same key and deal: the first invoice again, nothing new.
	var again invoice.Invoice
	r = m.purchase(d.ID, m.tokens[0], "buy-1").want(http.StatusCreated)
	r.decode(&again)
	if again.ID != inv.ID || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %+v, Idempotent-Replayed %q", again, r.Header.Get("Idempotent-Replayed"))
	}
	// The same key for another deal is a conflict; a new key for the sold deal too.
	other := m.deal()
	m.purchase(other.ID, m.tokens[0], "buy-1").want(http.StatusConflict)
	m.purchase(d.ID, m.tokens[0], "buy-2").want(http.StatusConflict)
}

func TestPurchaseRules(t *testing.T) {
	m := newMarket(t, 1)
	d := m.deal()
	if p := m.purchase(d.ID, m.tokens[0], "").want(http.StatusBadRequest).problem(); !strings.Contains(p.Detail, "Idempotency-Key") {
		t.Errorf("no key: %+v", p)
	}
	m.purchase(d.ID, m.tokens[0], "k", "If-Match", fmt.Sprintf(`"%d"`, d.Version+1)).want(http.StatusPreconditionFailed)
	m.purchase(d.ID, m.sellerToken, "k").want(http.StatusForbidden)
	m.purchase(d.ID, m.e.operator(), "k").want(http.StatusForbidden)
	_, stranger := m.e.buyer()
	m.purchase(d.ID, stranger, "k").want(http.StatusNotFound)
	m.purchase("00000000-0000-0000-0000-000000000000", m.tokens[0], "k").want(http.StatusNotFound)
	var first, again invoice.Invoice
	m.purchase(d.ID, m.tokens[0], "k", "If-Match", fmt.Sprintf(`"%d"`, d.Version)).want(http.StatusCreated).decode(&first)
	// A replay with the version the buyer saw is not stale: the first invoice again.
	m.purchase(d.ID, m.tokens[0], "k", "If-Match", fmt.Sprintf(`"%d"`, d.Version)).want(http.StatusCreated).decode(&again)
	if again.ID != first.ID {
		t.Errorf("replay with If-Match: invoice %s, first %s", again.ID, first.ID)
	}
	if p := m.purchase(d.ID, m.tokens[0], "k").want(http.StatusConflict).problem(); !strings.Contains(p.Detail, "another purchase") {
		t.Errorf("the same key without If-Match: %+v", p)
	}
	m.purchase(d.ID, m.tokens[0], "k2", "If-Match", "three").want(http.StatusPreconditionFailed)
	m.purchase(d.ID, m.tokens[0], " ").want(http.StatusUnprocessableEntity)
}

// Of ten buyers buying one deal at once exactly one gets it.
func TestConcurrentPurchasesHaveOneWinner(t *testing.T) {
	m := newMarket(t, 10)
	d := m.deal()
	codes := make([]int, len(m.tokens))
	var wg sync.WaitGroup
	for i, tok := range m.tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = m.purchase(d.ID, tok, "race").Status
		}()
	}
	wg.Wait()
	slices.Sort(codes)
	want := append([]int{http.StatusCreated}, slices.Repeat([]int{http.StatusConflict}, 9)...)
	if !slices.Equal(codes, want) {
		t.Fatalf("statuses %v, want one 201 and nine 409", codes)
	}
	var list struct{ Data []invoice.Invoice }
	m.e.do(http.MethodGet, "/v1/invoices", m.sellerToken, nil).want(http.StatusOK).decode(&list)
	if len(list.Data) != 1 {
		t.Fatalf("%d invoices for one deal", len(list.Data))
	}
}

// Twenty concurrent sales of one seller take twenty consecutive numbers.
func TestConcurrentSalesNumberWithoutGaps(t *testing.T) {
	m := newMarket(t, 1)
	deals := make([]deal.Deal, 20)
	for i := range deals {
		deals[i] = m.deal()
	}
	numbers := make([]string, len(deals))
	var wg sync.WaitGroup
	for i, d := range deals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inv invoice.Invoice
			if r := m.purchase(d.ID, m.tokens[0], "k-"+d.ID); r.Status == http.StatusCreated {
				r.decode(&inv)
			}
			numbers[i] = inv.Number
		}()
	}
	wg.Wait()
	slices.Sort(numbers)
	for i, n := range numbers {
		if want := invoice.FormatNumber(int64(i + 1)); n != want {
			t.Fatalf("numbers %v: want %s at %d", numbers, want, i)
		}
	}
}

func TestInvoicesAreSeenOnlyByTheirParties(t *testing.T) {
	m := newMarket(t, 2)
	var inv invoice.Invoice
	m.purchase(m.deal().ID, m.tokens[0], "a").want(http.StatusCreated).decode(&inv)
	for _, tok := range []string{m.sellerToken, m.tokens[0], m.e.operator()} {
		m.e.do(http.MethodGet, "/v1/invoices/"+inv.ID, tok, nil).want(http.StatusOK)
	}
	_, otherSellerToken := m.e.seller()
	for _, tok := range []string{m.tokens[1], otherSellerToken} {
		m.e.do(http.MethodGet, "/v1/invoices/"+inv.ID, tok, nil).want(http.StatusNotFound)
		m.e.do(http.MethodGet, "/v1/invoices/"+inv.ID+"/pdf", tok, nil).want(http.StatusNotFound)
		var list struct{ Data []invoice.Invoice }
		m.e.do(http.MethodGet, "/v1/invoices", tok, nil).want(http.StatusOK).decode(&list)
		if len(list.Data) != 0 {
			t.Errorf("a stranger lists %d invoices", len(list.Data))
		}
	}
	// Invoice events are addressed to the invoice's parties: in the feed
	// of its buyer and its seller, not of the seller's other buyers.
	feedHas := func(tok string) bool {
		r := m.e.do(http.MethodGet, "/v1/events?limit=100", tok, nil).want(http.StatusOK)
		return strings.Contains(string(r.Body), `"type":"invoice.issued"`) && strings.Contains(string(r.Body), inv.ID)
	}
	if !feedHas(m.tokens[0]) || !feedHas(m.sellerToken) {
		t.Error("the invoice's buyer or seller does not find invoice.issued in its feed")
	}
	if feedHas(m.tokens[1]) || feedHas(otherSellerToken) {
		t.Error("another buyer or seller finds the invoice's events in its feed")
	}
	var open, paid struct{ Data []invoice.Invoice }
	m.e.do(http.MethodGet, "/v1/invoices?status=open", m.tokens[0], nil).want(http.StatusOK).decode(&open)
	m.e.do(http.MethodGet, "/v1/invoices?status=paid", m.tokens[0], nil).want(http.StatusOK).decode(&paid)
	if len(open.Data) != 1 || len(paid.Data) != 0 {
		t.Errorf("filters: %d open, %d paid", len(open.Data), len(paid.Data))
	}
	m.e.do(http.MethodGet, "/v1/invoices?status=late", m.tokens[0], nil).want(http.StatusUnprocessableEntity)
}

func TestPaymentAndVoid(t *testing.T) {
	m := newMarket(t, 2)
	d := m.deal()
	var inv invoice.Invoice
	m.purchase(d.ID, m.tokens[0], "a").want(http.StatusCreated).decode(&inv)
	pay := func(id, token string, amount int64) *response {
		return m.e.do(http.MethodPost, "/v1/invoices/"+id+"/payments", token, map[string]any{"amount": amount, "reference": "BACS 42"})
	}
	pay(inv.ID, m.tokens[0], inv.Total).want(http.StatusForbidden)
	if p := pay(inv.ID, m.sellerToken, inv.Total-1).want(http.StatusUnprocessableEntity).problem(); !slices.Contains(p.locations(), "body.amount") {
		t.Errorf("wrong amount: %+v", p)
	}
	// Void gives the deal back; the next sale takes the next number.
	m.e.do(http.MethodPost, "/v1/invoices/"+inv.ID+"/void", m.tokens[0], nil).want(http.StatusForbidden)
	var voided invoice.Invoice
	m.e.do(http.MethodPost, "/v1/invoices/"+inv.ID+"/void", m.sellerToken, nil).want(http.StatusOK).decode(&voided)
	if voided.Status != invoice.StatusVoid || voided.VoidedAt == nil || voided.Version != 2 {
		t.Errorf("voided %+v", voided)
	}
	m.e.do(http.MethodPost, "/v1/invoices/"+inv.ID+"/void", m.sellerToken, nil).want(http.StatusConflict)
	pay(inv.ID, m.sellerToken, inv.Total).want(http.StatusConflict)
	var back deal.Deal
	m.e.do(http.MethodGet, "/v1/deals/"+d.ID, m.sellerToken, nil).want(http.StatusOK).decode(&back)
	if back.Status != deal.StatusAvailable {
		t.Fatalf("deal after void: %s", back.Status)
	}
	var second invoice.Invoice
	m.purchase(d.ID, m.tokens[1], "b").want(http.StatusCreated).decode(&second)
	if second.Number != "INV-000002" {
		t.Errorf("second sale numbered %s", second.Number)
	}
	var paid invoice.Invoice
	pay(second.ID, m.e.operator(), second.Total).want(http.StatusOK).decode(&paid)
	if paid.Status != invoice.StatusPaid || paid.PaidAt == nil {
		t.Errorf("paid %+v", paid)
	}
	pay(second.ID, m.sellerToken, second.Total).want(http.StatusConflict)
	m.e.do(http.MethodPost, "/v1/invoices/"+second.ID+"/void", m.sellerToken, nil).want(http.StatusConflict)
}

// The PDF is one page that names the invoice's number, parties and total.
func TestInvoicePDF(t *testing.T) {
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Fatal("pdftotext (poppler-utils) is needed to read the invoice back; .ci/run installs it")
	}
	m := newMarket(t, 1)
	var inv invoice.Invoice
	m.purchase(m.deal().ID, m.tokens[0], "pdf").want(http.StatusCreated).decode(&inv)
	r := m.e.do(http.MethodGet, "/v1/invoices/"+inv.ID+"/pdf", m.tokens[0], nil).want(http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "application/pdf" {
		t.Fatalf("Content-Type %q", ct)
	}
	path := filepath.Join(t.TempDir(), "invoice.pdf")
	if err := os.WriteFile(path, r.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := exec.Command("pdfinfo", path).Output()
	if err != nil {
		t.Fatalf("pdfinfo: %v", err)
	}
	if !regexp.MustCompile(`(?m)^Pages:\s+1$`).Match(info) {
		t.Errorf("pdfinfo:\n%s", info)
	}
	text, err := exec.Command("pdftotext", "-layout", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	for _, want := range []string{"Invoice", "INV-000001", "acct seller", "acct buyer", "Gloves", "Discount (10%)", "90.00 GBP"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("the PDF's text lacks %q:\n%s", want, text)
		}
	}
}
