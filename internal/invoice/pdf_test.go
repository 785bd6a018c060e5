package invoice

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// read renders inv and returns the PDF's page count and its text, as
// poppler reads them.
func read(t *testing.T, inv Invoice, p Parties) (pages int, text string) {
	t.Helper()
	for _, tool := range []string{"pdfinfo", "pdftotext"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s (poppler-utils) is needed to read the invoice back; .ci/run installs it", tool)
		}
	}
	doc, err := PDF(inv, p)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "invoice.pdf")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := exec.Command("pdfinfo", path).Output()
	if err != nil {
		t.Fatalf("pdfinfo: %v", err)
	}
	m := regexp.MustCompile(`(?m)^Pages:\s+(\d+)$`).FindSubmatch(info)
	if m == nil {
		t.Fatalf("pdfinfo without a page count:\n%s", info)
	}
	pages, _ = strconv.Atoi(string(m[1]))
	out, err := exec.Command("pdftotext", "-layout", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return pages, string(out)
}

type word struct {
	xMin, xMax float64
	text       string
}

// words are the positions of the PDF's words equal to text.
func words(t *testing.T, inv Invoice, p Parties, text string) []word {
	t.Helper()
	doc, err := PDF(inv, p)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "invoice.pdf")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-bbox", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext -bbox: %v", err)
	}
	var found []word
	re := regexp.MustCompile(`<word xMin="([0-9.]+)" yMin="[0-9.]+" xMax="([0-9.]+)" yMax="[0-9.]+">([^<]*)</word>`)
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		if m[3] == text {
			lo, _ := strconv.ParseFloat(m[1], 64)
			hi, _ := strconv.ParseFloat(m[2], 64)
			found = append(found, word{lo, hi, m[3]})
		}
	}
	if len(found) == 0 {
		t.Fatalf("no word %q in the PDF", text)
	}
	return found
}

func sample() Invoice {
	return Invoice{
		ID: "5f0c6b2e-1d3a-4c55-9a43-1f7a0f6f2b10", Number: "INV-000042",
		Seller: "0b6f1c0e-8f3e-4d7a-9a57-2c1f4f0d9e11", Buyer: "7c2d4a9b-3e5f-4b1c-8d6e-9f0a1b2c3d4e",
		DealID: "e3b0c442-98fc-4c14-9afb-f4c8996fb924", Currency: "gbp",
		Lines: []Line{{"Gloves", 4000}, {"Scarf", 6000}, {"Discount (10%)", -1000}},
		Total: 9000, Status: StatusOpen, Version: 1,
		IssuedAt: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), DueAt: time.Date(2026, 12, 18, 10, 0, 0, 0, time.UTC),
	}
}

func TestPDFOfAnOpenInvoice(t *testing.T) {
	pages, text := read(t, sample(), Parties{Seller: "Acme Supplies Ltd", Buyer: "Northwind Traders"})
	if pages != 1 {
		t.Errorf("%d pages, want 1", pages)
	}
	for _, want := range []string{"Invoice", "INV-000042", "Issued 4 December 2026", "Due 18 December 2026",
		"Acme Supplies Ltd", "Northwind Traders", "Amount (GBP)", "Gloves", "40.00", "Discount (10%)", "-10.00",
		"90.00 GBP", "Please pay by 18 December 2026", "Page 1 of 1"} {
		if !strings.Contains(text, want) {
			t.Errorf("the text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "PAID") || strings.Contains(text, "VOID") {
		t.Errorf("an open invoice carries a stamp:\n%s", text)
	}
}

func TestPDFStampsASettledInvoice(t *testing.T) {
	paid := sample()
	paid.Status = StatusPaid
	at := time.Date(2026, 12, 9, 15, 0, 0, 0, time.UTC)
	paid.PaidAt = &at
	// A currency without minor digits, and one with three.
	paid.Currency, paid.Lines, paid.Total = "jpy", []Line{{"Tea set", 1234567}}, 1234567
	_, text := read(t, paid, Parties{Seller: "S", Buyer: "B"})
	for _, want := range []string{"PAID 9 December 2026", "1,234,567 JPY"} {
		if !strings.Contains(text, want) {
			t.Errorf("the paid invoice lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Please pay") {
		t.Errorf("a paid invoice asks for payment:\n%s", text)
	}

	void := sample()
	void.Status = StatusVoid
	void.VoidedAt = &at
	void.Currency, void.Lines, void.Total = "kwd", []Line{{"Lamp", 12345}}, 12345
	_, text = read(t, void, Parties{Seller: "S", Buyer: "B"})
	for _, want := range []string{"VOID 9 December 2026", "12.345 KWD"} {
		if !strings.Contains(text, want) {
			t.Errorf("the void invoice lacks %q:\n%s", want, text)
		}
	}
}

// Names are not only cp1252: they are drawn as given, and what no font
// can draw does not break the document.
func TestPDFWritesNamesInAnyScript(t *testing.T) {
	inv := sample()
	inv.Lines[0].Description = "Ręczniki 😀 \x07bell"
	_, text := read(t, inv, Parties{Seller: "Müller GmbH — Köln", Buyer: "Łódź Handel sp. z o.o. · Привет · Ωμέγα"})
	for _, want := range []string{"Müller GmbH — Köln", "Łódź Handel sp. z o.o.", "Привет", "Ωμέγα", "Ręczniki"} {
		if !strings.Contains(text, want) {
			t.Errorf("the text lacks %q:\n%s", want, text)
		}
	}
}

// The largest deal (1,000 items with names of 200 characters) runs onto
// further pages: every line's name and amount is there, wrapped inside its
// column, and each page counts the pages.
func TestPDFOfALongInvoice(t *testing.T) {
	inv := sample()
	inv.Lines, inv.Total = nil, 0
	for i := range 1000 {
		name := fmt.Sprintf("Item %04d ", i) + strings.Repeat("woollen ", 24)[:190]
		inv.Lines = append(inv.Lines, Line{name, 123456789})
		inv.Total += 123456789
	}
	pages, text := read(t, inv, Parties{Seller: strings.Repeat("Long Seller Name ", 12)[:200], Buyer: "B"})
	if pages < 2 {
		t.Fatalf("%d pages for 1,000 lines", pages)
	}
	for n := 1; n <= pages; n++ {
		if want := fmt.Sprintf("INV-000042 · Page %d of %d", n, pages); !strings.Contains(text, want) {
			t.Errorf("no %q", want)
		}
	}
	if got := strings.Count(text, "Amount (GBP)"); got != pages {
		t.Errorf("the table's header is on %d of %d pages", got, pages)
	}
	if got := strings.Count(text, "1,234,567.89"); got != 1000 {
		t.Errorf("%d line amounts, want 1000", got)
	}
	// Every word of a description ends inside its column, left of the amounts.
	column := (margin + descWidth) * 72 / 25.4 // in points, as poppler measures
	for _, w := range words(t, inv, Parties{Seller: "S", Buyer: "B"}, "woollen") {
		if w.xMax > column {
			t.Fatalf("a description runs into the amount column: %+v, the column ends at %.1f pt", w, column)
		}
	}
	for _, i := range []int{0, 499, 999} {
		if !strings.Contains(text, fmt.Sprintf("Item %04d woollen", i)) {
			t.Errorf("line %d is missing", i)
		}
	}
	if !strings.Contains(text, FormatAmount(inv.Total, "gbp")+" GBP") {
		t.Errorf("the total is missing")
	}
}

func TestFormatAmountExtremes(t *testing.T) {
	if got := FormatAmount(-9223372036854775808, "gbp"); got != "-92,233,720,368,547,758.08" {
		t.Errorf("most negative: %q", got)
	}
	if got := FormatAmount(9223372036854775807, "jpy"); got != "9,223,372,036,854,775,807" {
		t.Errorf("largest: %q", got)
	}
}
