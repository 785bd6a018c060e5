package invoice

import (
	"bytes"
	"compress/gzip"
	"embed"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"codeberg.org/go-pdf/fpdf"
)

// Parties names an invoice's seller and buyer on its document.
type Parties struct {
	Seller, Buyer string
}

// DejaVu Sans, because the PDF core fonts only speak cp1252 and names such
// as "Łódź" or "Привет" are everyday text for sellers and buyers.
//
//go:embed font/DejaVuSans.ttf.gz font/DejaVuSans-Bold.ttf.gz
var fontFiles embed.FS

const family = "DejaVu"

// fonts are the regular and bold faces, unpacked once per process.
var fonts = sync.OnceValues(func() ([2][]byte, error) {
	var faces [2][]byte
	for i, name := range []string{"font/DejaVuSans.ttf.gz", "font/DejaVuSans-Bold.ttf.gz"} {
		f, err := fontFiles.Open(name)
		if err != nil {
			return faces, err
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			return faces, fmt.Errorf("font %s: %w", name, err)
		}
		if faces[i], err = io.ReadAll(zr); err != nil {
			return faces, fmt.Errorf("font %s: %w", name, err)
		}
	}
	return faces, nil
})

// Page geometry of the document, in millimetres (A4).
const (
	margin    = 20.0
	descWidth = 120.0 // the description column; the amount takes the rest
	lineH     = 5.5
)

// PDF renders inv as the document a seller sends its buyer: number, dates,
// both parties, the lines and the total in the currency, and a stamp when
// it is paid or void. Long invoices run onto further pages, each with the
// table's header and a page count.
func PDF(inv Invoice, p Parties) ([]byte, error) {
	faces, err := fonts()
	if err != nil {
		return nil, fmt.Errorf("render invoice %s: %w", inv.Number, err)
	}
	doc := fpdf.New("P", "mm", "A4", "")
	doc.AddUTF8FontFromBytes(family, "", faces[0])
	doc.AddUTF8FontFromBytes(family, "B", faces[1])
	doc.SetTitle("Invoice "+inv.Number, true)
	doc.SetCreator("Dealcast", true)
	doc.SetMargins(margin, margin, margin)
	doc.SetAutoPageBreak(true, margin)
	doc.AliasNbPages("")
	doc.SetFooterFunc(func() {
		doc.SetY(-margin + 6)
		doc.SetFont(family, "", 8)
		doc.SetTextColor(110, 110, 110)
		doc.CellFormat(0, 4, fmt.Sprintf("%s · Page %d of {nb}", inv.Number, doc.PageNo()), "", 0, "C", false, 0, "")
		doc.SetTextColor(0, 0, 0)
	})
	doc.AddPage()
	width, _ := doc.GetPageSize()
	content := width - 2*margin
	currency := strings.ToUpper(inv.Currency)

	// Title on the left; number and dates on the right.
	top := doc.GetY()
	doc.SetFont(family, "B", 24)
	doc.CellFormat(content/2, 12, "Invoice", "", 0, "L", false, 0, "")
	doc.SetXY(margin+content/2, top)
	doc.SetFont(family, "B", 11)
	doc.CellFormat(content/2, 6, inv.Number, "", 2, "R", false, 0, "")
	doc.SetFont(family, "", 10)
	doc.CellFormat(content/2, 5, "Issued "+longDate(inv.IssuedAt), "", 2, "R", false, 0, "")
	doc.CellFormat(content/2, 5, "Due "+longDate(inv.DueAt), "", 2, "R", false, 0, "")
	doc.SetX(margin)
	doc.Ln(4)

	// Settled invoices say so where the reader looks first.
	if stamp, ok := stampOf(inv); ok {
		doc.SetFont(family, "B", 14)
		doc.SetTextColor(170, 0, 0)
		doc.SetDrawColor(170, 0, 0)
		doc.SetLineWidth(0.6)
		doc.CellFormat(doc.GetStringWidth(stamp)+8, 9, stamp, "1", 1, "C", false, 0, "")
		doc.SetTextColor(0, 0, 0)
		doc.SetDrawColor(0, 0, 0)
		doc.SetLineWidth(0.2)
		doc.Ln(4)
	}

	// The parties side by side; long names wrap within their column.
	col := content/2 - 5
	top = doc.GetY()
	bottom := top
	for i, party := range []struct{ label, name, id string }{
		{"From", p.Seller, inv.Seller}, {"Bill to", p.Buyer, inv.Buyer},
	} {
		doc.SetXY(margin+float64(i)*(content/2+5), top)
		left := doc.GetX()
		doc.SetFont(family, "B", 9)
		doc.CellFormat(col, 5, party.label, "", 2, "L", false, 0, "")
		doc.SetFont(family, "", 11)
		doc.MultiCell(col, 5.5, printable(party.name), "", "L", false)
		doc.SetX(left)
		doc.SetFont(family, "", 7.5)
		doc.SetTextColor(110, 110, 110)
		doc.CellFormat(col, 4, "Account "+party.id, "", 2, "L", false, 0, "")
		doc.SetTextColor(0, 0, 0)
		bottom = max(bottom, doc.GetY())
	}
	doc.SetXY(margin, bottom)
	doc.Ln(8)

	amountWidth := content - descWidth
	_, height := doc.GetPageSize()
	limit := height - margin
	header := func() {
		doc.SetFont(family, "B", 9.5)
		doc.SetFillColor(235, 235, 235)
		doc.CellFormat(descWidth, 8, "Description", "B", 0, "L", true, 0, "")
		doc.CellFormat(amountWidth, 8, "Amount ("+currency+")", "B", 1, "R", true, 0, "")
		doc.SetFont(family, "", 9.5)
	}
	header()
	for _, l := range inv.Lines {
		wrapped := doc.SplitText(printable(l.Description), descWidth)
		if len(wrapped) == 0 {
			wrapped = []string{""}
		}
		rowH := float64(len(wrapped))*lineH + 1.5
		// A row is never split across pages, and each page has its header.
		if doc.GetY()+rowH > limit {
			doc.AddPage()
			header()
		}
		y := doc.GetY()
		for i, text := range wrapped {
			doc.SetXY(margin, y+0.75+float64(i)*lineH)
			doc.CellFormat(descWidth, lineH, text, "", 0, "L", false, 0, "")
		}
		doc.SetXY(margin+descWidth, y+0.75)
		doc.CellFormat(amountWidth, lineH, FormatAmount(l.Amount, inv.Currency), "", 0, "R", false, 0, "")
		doc.SetXY(margin, y+rowH)
	}

	// The total and the note stay together.
	if doc.GetY()+26 > limit {
		doc.AddPage()
	}
	doc.SetFont(family, "B", 11)
	doc.CellFormat(descWidth, 10, "Total", "T", 0, "L", false, 0, "")
	doc.CellFormat(amountWidth, 10, FormatAmount(inv.Total, inv.Currency)+" "+currency, "T", 1, "R", false, 0, "")
	doc.Ln(6)
	doc.SetFont(family, "", 9)
	if inv.Status == StatusOpen {
		doc.CellFormat(0, 5, fmt.Sprintf("Please pay by %s, quoting %s.", longDate(inv.DueAt), inv.Number), "", 1, "L", false, 0, "")
	}
	doc.CellFormat(0, 5, "Deal "+inv.DealID, "", 1, "L", false, 0, "")

	var buf bytes.Buffer
	if err := doc.Output(&buf); err != nil {
		return nil, fmt.Errorf("render invoice %s: %w", inv.Number, err)
	}
	return buf.Bytes(), nil
}

// stampOf is the mark of a settled invoice: PAID or VOID with its date.
func stampOf(inv Invoice) (string, bool) {
	switch {
	case inv.Status == StatusPaid && inv.PaidAt != nil:
		return "PAID " + longDate(*inv.PaidAt), true
	case inv.Status == StatusVoid && inv.VoidedAt != nil:
		return "VOID " + longDate(*inv.VoidedAt), true
	case inv.Status != StatusOpen:
		return strings.ToUpper(string(inv.Status)), true
	}
	return "", false
}

func longDate(t time.Time) string { return t.Format("2 January 2006") }

// printable keeps text the fonts can draw: characters beyond the Basic
// Multilingual Plane (emoji and the like) and control characters become
// U+FFFD, since the PDF writer indexes its width tables by 16-bit code.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r > 0xFFFF || unicode.IsControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
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
	// Through uint64, so that the most negative int64 has a magnitude.
	magnitude := uint64(minor)
	if minor < 0 {
		sign, magnitude = "-", -magnitude
	}
	s := strconv.FormatUint(magnitude, 10)
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
