package bench

import (
	"strings"
	"testing"
)

// TestChangeOf: the scan finds the deal's ID and version in the body as
// PostgreSQL stores and prints it (JSONB: keys by length, spaced) and in
// compact JSON, and never takes the previous values or an item's text for
// the deal's; bodies it cannot read are decoded in full, or refused.
func TestChangeOf(t *testing.T) {
	// Printed by PostgreSQL from the stored payload (SELECT payload::text):
	// an item named "version" and the previous version must not confuse it.
	stored := `{"id": "evt_jm6h7zk2vcakbusxpu7uu5qzva", "data": {"deal": {"id": "8721c0f5-460b-4b40-9074-fd089c7a158b", "name": "Winter bundle", "items": [{"id": "sku-1", "name": "version\": 9, \"", "price": 3000}], "seller": "6370061b-e408-4987-9e78-3f5b86a9af26", "status": "available", "version": 2, "currency": "gbp", "discount": {"type": "percentage", "amount": 12.5}, "net_price": 7875, "created_at": "2026-11-26T04:57:35.825568Z", "updated_at": "2026-11-26T04:57:40.143103Z", "total_price": 9000}, "previous": {"version": 1, "total_price": 10000}}, "type": "deal.updated", "created_at": "2026-11-26T04:57:40.143103Z"}`
	compact := strings.NewReplacer(`": `, `":`, `, "`, `,"`).Replace(stored)
	for name, body := range map[string]string{"stored": stored, "compact": compact} {
		id, v, ok := scanChange([]byte(body))
		if !ok || id != "8721c0f5-460b-4b40-9074-fd089c7a158b" || v != 2 {
			t.Errorf("%s: scan gave %q, %d, %v; want the deal's id, 2, true", name, id, v, ok)
		}
	}

	// Another key order: not scanned, decoded.
	reordered := `{"data": {"deal": {"version": 7, "id": "d1"}}}`
	if _, _, ok := scanChange([]byte(reordered)); ok {
		t.Error("scan accepted a deal whose first key is not its id")
	}
	if id, v, ok := changeOf([]byte(reordered)); !ok || id != "d1" || v != 7 {
		t.Errorf("decoded %q, %d, %v; want d1, 7, true", id, v, ok)
	}
	for _, bad := range []string{``, `{}`, `not json`, `{"data": {"deal": {"id": "d1", "version": x}}}`} {
		if id, _, ok := changeOf([]byte(bad)); ok {
			t.Errorf("%q: read as a change of %q", bad, id)
		}
	}
}
