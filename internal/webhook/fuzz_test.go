package webhook_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dealcast/dealcast/internal/webhook"
)

// verifyStandard is a receiver's check against referenceSignature, the
// independent one: the signature of "{id}.{timestamp}.{body}" under key
// must be one of the header's space-separated entries. It also fails the
// test unless webhook.Verify gives the same answer.
func verifyStandard(t *testing.T, key []byte, id, timestamp string, body []byte, header string) bool {
	t.Helper()
	ok := slices.Contains(strings.Split(header, " "), referenceSignature(key, id, timestamp, body))
	if got := webhook.Verify(id, timestamp, body, header, key); got != ok {
		t.Fatalf("webhook.Verify = %v, the reference says %v", got, ok)
	}
	return ok
}

// FuzzSignVerify: what Sign produces verifies with an independent
// verifier under each secret (two during a rotation), and no longer
// verifies once any byte of the id, the timestamp or the body changes;
// webhook.Verify agrees with the independent verifier throughout.
func FuzzSignVerify(f *testing.F) {
	secret, _ := webhook.DecodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	f.Add("msg_p5jXN8AQM9LWM0D4loKWxJek", int64(1614265330), []byte(`{"test": 2432232314}`), secret, []byte("previous-secret-of-24-bytes"), uint64(0))
	f.Add("evt_3jx5bq2zvzq4b7m2ihdj5n6w4a", int64(1764133200), []byte(`{"id":"evt"}`), make([]byte, 64), make([]byte, 65), uint64(7))
	f.Add("", int64(0), []byte{}, []byte{}, []byte{}, uint64(1))
	f.Add("a.b.c", int64(-1), []byte("x.y"), []byte{0x36, 0x5c}, make([]byte, 200), uint64(1<<40))
	f.Add("évt\x00", int64(-9223372036854775808), []byte("\xff\x00"), []byte("k"), []byte("k"), uint64(12345))
	f.Fuzz(func(t *testing.T, id string, unix int64, body, key, previous []byte, flip uint64) {
		ts := time.Unix(unix, 0)
		header := webhook.Sign(id, ts, body, key, previous)
		stamp := strconv.FormatInt(unix, 10)
		entries := strings.Split(header, " ")
		if len(entries) != 2 {
			t.Fatalf("header %q: want two space-separated signatures", header)
		}
		for _, e := range entries {
			sig, ok := strings.CutPrefix(e, "v1,")
			if raw, err := base64.StdEncoding.DecodeString(sig); !ok || err != nil || len(raw) != sha256.Size {
				t.Fatalf("entry %q is not v1,<base64 of 32 bytes>", e)
			}
		}
		for _, k := range [][]byte{key, previous} {
			if !verifyStandard(t, k, id, stamp, body, header) {
				t.Fatalf("the signature does not verify under a signing key")
			}
		}
		if h := webhook.Sign(id, ts, body, key); h != entries[0] {
			t.Fatalf("one secret signs %q, two sign %q first", h, entries[0])
		}

		// Change one byte of one part of the signed message.
		parts := [][]byte{[]byte(id), []byte(stamp), append([]byte(nil), body...)}
		part := parts[flip%3]
		if len(part) == 0 {
			return
		}
		part[(flip/3)%uint64(len(part))] ^= byte(flip>>32)%255 + 1
		for _, k := range [][]byte{key, previous} {
			if verifyStandard(t, k, string(parts[0]), string(parts[1]), parts[2], header) {
				t.Fatalf("the signature still verifies after changing part %d to %q", flip%3, part)
			}
		}
	})
}

// inetAton parses host as C's inet_aton does: one to four parts, each
// decimal, octal (leading 0) or hex (0x), the last filling the remaining
// bytes. Resolvers that fall back to it turn such hosts into addresses.
func inetAton(host string) (netip.Addr, bool) {
	parts := strings.Split(host, ".")
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		base := 10
		switch {
		case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
			base, p = 16, p[2:]
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		if p == "" || strings.ContainsAny(p, "+-_") {
			if base == 16 && p == "" {
				continue // "0x" is zero
			}
			return netip.Addr{}, false
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var v uint64
	for i, p := range vals[:len(vals)-1] {
		if p > 0xff {
			return netip.Addr{}, false
		}
		v |= p << (8 * (3 - i))
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// notPublic is the standard library's view of addresses a webhook must
// never reach, independent of IsPublicIP.
func notPublic(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	return !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsUnspecified() || a.IsLinkLocalUnicast() ||
		a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() || a.IsMulticast() ||
		netip.MustParsePrefix("100.64.0.0/10").Contains(a) || netip.MustParsePrefix("0.0.0.0/8").Contains(a)
}

// FuzzCheckURL: CheckURL never panics, and never accepts (in production
// mode) a URL that is not https, carries credentials or a fragment, or
// whose host any common parser reads as a non-public address.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://hooks.example.com/dealcast", "https://93.184.215.14:8443/h?x=1", "https://[2606:4700::1111]/h",
		"http://hooks.example.com/", "https://127.0.0.1/", "https://127.1/", "https://2130706433/", "https://0x7f000001/",
		"https://0177.0.0.1/", "https://0x7f.0.0.1/", "https://127.0.0.1./", "https://127.000.000.001/", "https://0/",
		"https://0.0.0.0/", "https://169.254.169.254/latest/meta-data/", "https://[::1]/", "https://[::]/",
		"https://[::ffff:127.0.0.1]/", "https://[::ffff:7f00:1]/", "https://[fe80::1%25eth0]/", "https://[fd00::1]/",
		"https://[64:ff9b::a9fe:a9fe]/", "https://[2002:a9fe:a9fe::]/", "https://[2001::1]/", "https://10.0.0.1/",
		"https://172.16.0.1/", "https://192.168.1.1/", "https://100.64.0.1/", "https://localhost/", "https://LOCALHOST./",
		"https://a.localhost/", "https://user:pw@hooks.example.com/", "https://hooks.example.com/#frag", "https://hooks.example.com/#",
		"https://hooks.example.com:0/", "https://hooks.example.com:65536/", "ftp://hooks.example.com/", "//hooks.example.com/",
		"https:hooks.example.com", "https://１２７.０.０.１/", "https://xn--nxasmq6b.example/", "https://1.0.0.0b1/",
		"https://127.0.0.0x1/", "https://256.0.0.1/", "https://0x100000000/", "https://[::ffff:0:127.0.0.1]/",
		"javascript:alert(1)", "https://%31%32%37.0.0.1/", "https://127%2e0%2e0%2e1/", "https:///path", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		_ = webhook.CheckURL(raw, true)
		if webhook.CheckURL(raw, false) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted an unparsable URL: %v", err)
		}
		if u.Scheme != "https" || u.User != nil || strings.Contains(raw, "#") || u.Opaque != "" {
			t.Fatalf("accepted %q: scheme %q, userinfo %v", raw, u.Scheme, u.User)
		}
		host := u.Hostname()
		if host == "" {
			t.Fatalf("accepted %q without a host", raw)
		}
		lower := strings.ToLower(strings.TrimSuffix(host, "."))
		if lower == "localhost" || strings.HasSuffix(lower, ".localhost") {
			t.Fatalf("accepted %q: a localhost name", raw)
		}
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(host); err == nil {
			addrs = append(addrs, a)
		}
		if ip := net.ParseIP(host); ip != nil {
			a, _ := netip.AddrFromSlice(ip)
			addrs = append(addrs, a)
		}
		for _, h := range []string{host, strings.TrimSuffix(host, ".")} {
			if a, ok := inetAton(h); ok {
				addrs = append(addrs, a)
			}
		}
		for _, a := range addrs {
			if notPublic(a) {
				t.Fatalf("accepted %q, whose host %q is the non-public address %s", raw, host, a)
			}
		}
	})
}
