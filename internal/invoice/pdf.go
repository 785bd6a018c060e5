package invoice

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"codeberg.org/go-pdf/fpdf"
)

// Parties names an invoice's seller and buyer on its document.
type Parties struct {
	Seller, Buyer string
}

// PDF renders inv as the one-page document a seller sends its buyer:
// number, dates, both parties, the lines and the total in the currency.
func PDF(inv Invoice, p Parties) ([]byte, error) {
	doc := fpdf.New("P", "mm", "A4", "")
	doc.SetTitle("Invoice "+inv.Number, true)
	doc.SetCreator("Dealcast", true)
	doc.SetAutoPageBreak(true, 20)
	tr := doc.UnicodeTranslatorFromDescriptor("") // the core fonts speak cp1252
	doc.AddPage()

	doc.SetFont("Helvetica", "B", 22)
	doc.CellFormat(110, 12, "Invoice", "", 0, "L", false, 0, "")
	doc.SetFont("Helvetica", "", 11)
	doc.CellFormat(0, 6, inv.Number, "", 1, "R", false, 0, "")
	doc.CellFormat(110, 6, "", "", 0, "", false, 0, "")
	doc.CellFormat(0, 6, "Issued "+inv.IssuedAt.Format("2 January 2006"), "", 1, "R", false, 0, "")
	doc.CellFormat(110, 6, "", "", 0, "", false, 0, "")
	doc.CellFormat(0, 6, "Due "+inv.DueAt.Format("2 January 2006"), "", 1, "R", false, 0, "")
	doc.Ln(8)

	party := func(label, name, id string) {
		doc.SetFont("Helvetica", "B", 10)
		doc.CellFormat(0, 5, label, "", 1, "L", false, 0, "")
		doc.SetFont("Helvetica", "", 11)
		doc.CellFormat(0, 6, tr(name), "", 1, "L", false, 0, "")
		doc.SetFont("Helvetica", "", 8)
		doc.CellFormat(0, 4, "Account "+id, "", 1, "L", false, 0, "")
		doc.Ln(4)
	}
	party("From", p.Seller, inv.Seller)
	party("Bill to", p.Buyer, inv.Buyer)

	doc.SetFont("Helvetica", "B", 10)
	doc.SetFillColor(235, 235, 235)
	doc.CellFormat(140, 8, "Description", "B", 0, "L", true, 0, "")
	doc.CellFormat(0, 8, "Amount ("+strings.ToUpper(inv.Currency)+")", "B", 1, "R", true, 0, "")
	doc.SetFont("Helvetica", "", 10)
	for _, l := range inv.Lines {
		doc.CellFormat(140, 7, tr(l.Description), "", 0, "L", false, 0, "")
		doc.CellFormat(0, 7, FormatAmount(l.Amount, inv.Currency), "", 1, "R", false, 0, "")
	}
	doc.SetFont("Helvetica", "B", 11)
	doc.CellFormat(140, 9, "Total", "T", 0, "L", false, 0, "")
	doc.CellFormat(0, 9, FormatAmount(inv.Total, inv.Currency)+" "+strings.ToUpper(inv.Currency), "T", 1, "R", false, 0, "")
	doc.Ln(6)

	doc.SetFont("Helvetica", "", 9)
	doc.MultiCell(0, 5, tr(fmt.Sprintf("Deal %s. Please pay by %s, quoting %s.",
		inv.DealID, inv.DueAt.Format("2 January 2006"), inv.Number)), "", "L", false)
	if inv.Status != StatusOpen {
		doc.Ln(6)
		doc.SetFont("Helvetica", "B", 28)
		doc.SetTextColor(180, 0, 0)
		doc.CellFormat(0, 14, strings.ToUpper(string(inv.Status)), "", 1, "C", false, 0, "")
	}

	var buf bytes.Buffer
	if err := doc.Output(&buf); err != nil {
		return nil, fmt.Errorf("render invoice %s: %w", inv.Number, err)
	}
	return buf.Bytes(), nil
}

// minorDigits are the ISO 4217 currencies whose minor unit is not a
// hundredth; every other currency has two decimals.
var minorDigits = map[string]int{
	"bif": 0, "clp": 0, "djf": 0, "gnf": 0, "isk": 0, "jpy": 0, "kmf": 0, "krw": 0, "pyg": 0,
	"rwf": 0, "ugx": 0, "uyi": 0, "vnd": 0, "vuv": 0, "xaf": 0, "xof": 0, "xpf": 0,
	"bhd": 3, "iqd": 3, "jod": 3, "kwd": 3, "lyd": 3, "omr": 3, "tnd": 3,
	"clf": 4, "uyw": 4,
}

// FormatAmount writes an amount in minor units in the currency's major
// unit with thousands separators: 123456 gbp is "1,234.56".
func FormatAmount(minor int64, currency string) string {
	digits, ok := minorDigits[strings.ToLower(currency)]
	if !ok {
		digits = 2
	}
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	s := strconv.FormatInt(minor, 10)
	if len(s) <= digits {
		s = strings.Repeat("0", digits-len(s)+1) + s
	}
	whole, frac := s[:len(s)-digits], s[len(s)-digits:]
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if digits > 0 {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return sign + b.String()
}
