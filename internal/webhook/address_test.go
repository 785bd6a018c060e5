package webhook_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/dealcast/dealcast/internal/webhook"
)

func TestCheckURL(t *testing.T) {
	t.Parallel()
	type verdict int
	const (
		ok        verdict = iota // allowed with and without allowPrivate
		private                  // refused in production, allowed with allowPrivate
		malformed                // refused either way
	)
	cases := []struct {
		url  string
		want verdict
	}{
		// Fine.
		{"https://hooks.example.com/dealcast", ok},
		{"https://hooks.example.com:8443/a/b?token=x", ok},
		{"https://HOOKS.Example.COM/", ok},
		{"https://93.184.215.14/hook", ok},
		{"https://[2606:4700:4700::1111]/hook", ok},
		{"https://1.1.1.1./", ok},
		{"https://xn--bcher-kva.example/", ok},
		{"https://example.com./", ok},

		// Plain http: only for development.
		{"http://hooks.example.com/", private},
		{"http://127.0.0.1:8080/hook", private},

		// IPv4 loopback in every spelling.
		{"https://127.0.0.1/", private},
		{"https://127.1.2.3/", private},
		{"https://127.0.0.1./", private},
		{"https://2130706433/", private},   // decimal
		{"https://017700000001/", private}, // octal whole
		{"https://0177.0.0.1/", private},   // octal part
		{"https://0177.1/", private},       // octal, short form
		{"https://0x7f.1/", private},       // hex, short form
		{"https://0x7f000001/", private},   // hex whole
		{"https://0X7F.0.0.1/", private},
		{"https://127.1/", private},
		{"https://127.0.1/", private},
		{"https://0x7f.0x0.0x0.0x1/", private},
		{"https://localhost/", private},
		{"https://LOCALHOST./", private},
		{"https://api.localhost/", private},

		// Private, link-local, CGNAT, unspecified, multicast, broadcast.
		{"https://10.0.0.1/", private},
		{"https://10.255.255.255/", private},
		{"https://167772161/", private}, // 10.0.0.1 as decimal
		{"https://172.16.0.1/", private},
		{"https://172.31.255.254/", private},
		{"https://192.168.1.1/", private},
		{"https://0xc0.0xa8.1.1/", private}, // 192.168.1.1 in hex
		{"https://169.254.169.254/latest/meta-data/", private},
		{"https://0xa9fea9fe/", private}, // 169.254.169.254 in hex
		{"https://169.254.0.1/", private},
		{"https://100.64.0.1/", private},
		{"https://100.127.255.255/", private},
		{"https://0.0.0.0/", private},
		{"https://0/", private},
		{"https://0x0/", private},
		{"https://0.1.2.3/", private},
		{"https://224.0.0.1/", private},
		{"https://239.255.255.250/", private},
		{"https://255.255.255.255/", private},
		{"https://4294967295/", private},
		{"https://240.0.0.1/", private},
		{"https://192.0.2.1/", private},

		// IPv6.
		{"https://[::1]/", private},
		{"https://[0:0:0:0:0:0:0:1]/", private},
		{"https://[::]/", private},
		{"https://[fe80::1]/", private},
		{"https://[fe80::1%25eth0]/", private},
		{"https://[febf::1]/", private},
		{"https://[fc00::1]/", private},
		{"https://[fd12:3456::1]/", private},
		{"https://[ff02::1]/", private},
		{"https://[::ffff:127.0.0.1]/", private},
		{"https://[::ffff:7f00:1]/", private},
		{"https://[::ffff:10.0.0.1]/", private},
		{"https://[::ffff:169.254.169.254]/", private},
		{"https://[::ffff:192.168.0.1]/", private},
		{"https://[::ffff:0.0.0.0]/", private},
		{"https://[::127.0.0.1]/", private}, // deprecated IPv4-compatible
		{"https://[64:ff9b::7f00:1]/", private},
		{"https://[2002:7f00:1::1]/", private}, // 6to4 of 127.0.0.1
		{"https://[2001:db8::1]/", private},
		{"https://[2001:0::1]/", private}, // Teredo
		{"https://[::ffff:1.1.1.1]/", ok},
		{"https://[64:ff9b::101:101]/", ok}, // NAT64 of 1.1.1.1

		// Malformed or never acceptable.
		{"ftp://hooks.example.com/", malformed},
		{"file:///etc/passwd", malformed},
		{"javascript:alert(1)", malformed},
		{"gopher://hooks.example.com/", malformed},
		{"//hooks.example.com/", malformed},
		{"hooks.example.com/path", malformed},
		{"", malformed},
		{"https:hooks.example.com", malformed},
		{"https:///path", malformed},
		{"https://:443/", malformed},
		{"https://user:pass@hooks.example.com/", malformed},
		{"https://user@hooks.example.com/", malformed},
		{"https://@hooks.example.com/", malformed},
		{"https://hooks.example.com/#frag", malformed},
		{"https://hooks.example.com/#", malformed},
		{"https://hooks.example.com:0/", malformed},
		{"https://hooks.example.com:65536/", malformed},
		{"https://hooks example.com/", malformed},
		{"https://１２７.０.０.１/", malformed}, // full-width digits
		{"https://bücher.example/", malformed},
		{"https://256.0.0.1/", malformed},
		{"https://1.2.3.4.5/", malformed},
		{"https://1.2.3.256/", malformed},
		{"https://4294967296/", malformed},
		{"https://08.0.0.1/", malformed}, // 8 is not an octal digit
		{"https://0xg.0.0.1/", malformed},
		{"https://1..1/", malformed},
		{"https://example.123/", malformed},
		{"https://[::1/", malformed},
		{"https://[zz::1]/", malformed},
		{"https://%31%32%37.0.0.1/", malformed},
	}
	for _, tc := range cases {
		errProd := webhook.CheckURL(tc.url, false)
		errDev := webhook.CheckURL(tc.url, true)
		switch tc.want {
		case ok:
			if errProd != nil || errDev != nil {
				t.Errorf("%q: want allowed, got production %v, development %v", tc.url, errProd, errDev)
			}
		case private:
			if errProd == nil {
				t.Errorf("%q: allowed in production", tc.url)
			}
			if errDev != nil {
				t.Errorf("%q: refused with allowPrivate: %v", tc.url, errDev)
			}
		case malformed:
			if errProd == nil || errDev == nil {
				t.Errorf("%q: want refused, got production %v, development %v", tc.url, errProd, errDev)
			}
		}
	}
}

func TestCheckURLMessages(t *testing.T) {
	t.Parallel()
	for url, want := range map[string]string{
		"http://hooks.example.com/":  "https",
		"https://0x7f.1/":            "127.0.0.1 is not a public address",
		"https://[::ffff:7f00:1]/":   "not a public address",
		"https://u:p@example.com/":   "credentials",
		"ftp://example.com/":         `"ftp"`,
		"https://example.com/#x":     "fragment",
		"https://bücher.example/":    "punycode",
		"https://example.com:99999/": "port",
	} {
		err := webhook.CheckURL(url, false)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckURL(%q) = %v, want an error mentioning %q", url, err, want)
		}
	}
}

func TestIsPublicIP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr   string
		public bool
	}{
		{"1.1.1.1", true},
		{"8.8.8.8", true},
		{"93.184.215.14", true},
		{"100.63.255.255", true},
		{"100.128.0.0", true},
		{"172.15.255.255", true},
		{"172.32.0.0", true},
		{"169.253.255.255", true},
		{"223.255.255.255", true},
		{"2606:4700:4700::1111", true},
		{"2a00:1450:4009:81d::200e", true},
		{"::ffff:8.8.8.8", true},

		{"127.0.0.1", false},
		{"10.1.2.3", false},
		{"172.16.0.0", false},
		{"192.168.255.255", false},
		{"169.254.169.254", false},
		{"100.64.0.0", false},
		{"0.0.0.0", false},
		{"255.255.255.255", false},
		{"224.0.0.251", false},
		{"198.18.0.1", false},
		{"::", false},
		{"::1", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"fc00::1", false},
		{"fdff::1", false},
		{"ff02::fb", false},
		{"ff0e::1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"64:ff9b::a00:1", false},
		{"2002:a9fe:a9fe::", false},
		{"2001:db8::1", false},
		{"3fff::1", false},
		{"4000::1", false}, // outside 2000::/3, unallocated
	} {
		if got := webhook.IsPublicIP(netip.MustParseAddr(tc.addr)); got != tc.public {
			t.Errorf("IsPublicIP(%s) = %v, want %v", tc.addr, got, tc.public)
		}
	}
	if webhook.IsPublicIP(netip.Addr{}) {
		t.Error("the zero Addr is public")
	}
}
