package webhook

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrNotPublic is wrapped by the error a dial returns when the address a
// webhook host resolved to is not a public one. It is how the sender tells
// "this configuration is refused" from an ordinary connection failure.
var ErrNotPublic = errors.New("not a public address")

// CheckURL reports whether raw may be registered as a webhook endpoint.
//
// Without allowPrivate (production) the URL must be https, carry no
// credentials or fragment, and name a host; a host written as an IP address
// must be public (see IsPublicIP) and "localhost" names are refused.
// IPv4 addresses are recognised in every spelling a browser or inet_aton
// accepts (2130706433, 0177.0.0.1, 0x7f.1, a trailing dot), because the
// resolver of whatever eventually dials may accept them too.
//
// With allowPrivate (local development and tests) plain http and private
// addresses are accepted; the other rules still hold.
//
// A hostname that passes may still resolve to a private address, now or
// later (DNS rebinding); the client from NewClient checks the resolved
// address again when it dials.
func CheckURL(raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook URL is not a valid URL: %v", err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowPrivate {
			return errors.New("webhook URL must use https")
		}
	case "":
		return errors.New("webhook URL must be absolute, starting with https://")
	default:
		return fmt.Errorf("webhook URL scheme %q is not allowed: use https", u.Scheme)
	}
	if u.Opaque != "" {
		return errors.New("webhook URL must be of the form https://host/path")
	}
	if u.User != nil {
		return errors.New("webhook URL must not contain credentials (user:password@)")
	}
	// url.Parse drops an empty trailing "#", so look at the raw string too.
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("webhook URL must not contain a fragment (#...)")
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("webhook URL must name a host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("webhook URL port %q is out of range", p)
		}
	}
	// Browsers and IDNA-aware resolvers map non-ASCII hosts (including
	// full-width digits such as "１２７.０.０.１") to ASCII; Go's url package
	// does not. Rather than guess how a host will be mapped, require the
	// mapped (punycode) form, which every international domain has.
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return errors.New("webhook URL host must be ASCII: use the punycode (xn--) form of an international domain name")
		}
	}

	addr, isIP, err := parseHostIP(host)
	if err != nil {
		return err
	}
	if allowPrivate {
		return nil
	}
	if isIP {
		if !IsPublicIP(addr) {
			return fmt.Errorf("webhook URL host %s is %s", addr, ErrNotPublic)
		}
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		// RFC 6761: these names always mean the local machine.
		return fmt.Errorf("webhook URL host %s is %s", host, ErrNotPublic)
	}
	return nil
}

// parseHostIP reports whether host (as returned by url.URL.Hostname) is an
// IP address and, if so, which. A host whose last label is numeric must be
// a valid IPv4 address: that is how the WHATWG URL standard decides, and
// no real domain has a numeric top-level label.
func parseHostIP(host string) (netip.Addr, bool, error) {
	if strings.Contains(host, ":") {
		a, err := netip.ParseAddr(host)
		if err != nil {
			return netip.Addr{}, false, fmt.Errorf("webhook URL host %q is not a valid IPv6 address", host)
		}
		return a, true, nil
	}
	if !endsInNumber(host) {
		return netip.Addr{}, false, nil
	}
	a, ok := parseIPv4Loose(host)
	if !ok {
		return netip.Addr{}, false, fmt.Errorf("webhook URL host %q is neither a domain name nor a valid IPv4 address", host)
	}
	return a, true, nil
}

// endsInNumber implements the WHATWG "ends in a number" check: the last
// dot-separated label (ignoring one trailing dot) is all decimal digits or
// a 0x-prefixed hexadecimal number.
func endsInNumber(host string) bool {
	labels := strings.Split(host, ".")
	if labels[len(labels)-1] == "" {
		if len(labels) == 1 {
			return false
		}
		labels = labels[:len(labels)-1]
	}
	last := labels[len(labels)-1]
	if last == "" {
		return false
	}
	if strings.Trim(last, "0123456789") == "" {
		return true
	}
	_, ok := parseIPv4Part(last)
	return ok
}

// parseIPv4Loose parses IPv4 the way inet_aton and browsers do: one to four
// dot-separated parts, each decimal, octal (leading 0) or hexadecimal (0x);
// the last part fills all remaining bytes, so "127.1" is 127.0.0.1 and
// "2130706433" is 127.0.0.1. One trailing dot is allowed.
func parseIPv4Loose(host string) (netip.Addr, bool) {
	parts := strings.Split(host, ".")
	if len(parts) > 1 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, p := range parts {
		n, ok := parseIPv4Part(p)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if n > 0xff {
				return netip.Addr{}, false
			}
			v |= n << (8 * (3 - i))
			continue
		}
		// The last part covers the remaining 5-len(parts) bytes.
		if n >= 1<<(8*(5-len(parts))) {
			return netip.Addr{}, false
		}
		v |= n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// parseIPv4Part parses one part of a loosely written IPv4 address.
func parseIPv4Part(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := 10
	switch {
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
	case len(s) >= 2 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" { // "0x" alone is zero to browsers
		return 0, true
	}
	// With an explicit base ParseUint accepts neither signs nor
	// underscores, and overflow is an error.
	n, err := strconv.ParseUint(s, base, 64)
	return n, err == nil
}

// Address ranges that are not reachable on the public internet, or that
// reach something other than the named host (IANA special-purpose address
// registries, RFC 6890 and successors).
var (
	nonPublic4 = mustPrefixes(
		"0.0.0.0/8",       // "this network"; 0.0.0.0 reaches the local host
		"10.0.0.0/8",      // private (RFC 1918)
		"100.64.0.0/10",   // carrier-grade NAT (RFC 6598)
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local, including cloud metadata 169.254.169.254
		"172.16.0.0/12",   // private (RFC 1918)
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation (TEST-NET-1)
		"192.88.99.0/24",  // deprecated 6to4 relay anycast
		"192.168.0.0/16",  // private (RFC 1918)
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation (TEST-NET-2)
		"203.0.113.0/24",  // documentation (TEST-NET-3)
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, including broadcast 255.255.255.255
	)
	// Only 2000::/3 is allocated as global unicast; everything outside it
	// (::, ::1, fc00::/7, fe80::/10, ff00::/8, ...) is refused by default.
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	nonPublic6     = mustPrefixes(
		"2001::/23",     // IETF protocol assignments, including Teredo 2001::/32
		"2001:db8::/32", // documentation
		"3fff::/20",     // documentation (RFC 9637)
	)
	// These embed an IPv4 address that a translator or relay will
	// forward to, so they are as public as that address.
	nat64   = netip.MustParsePrefix("64:ff9b::/96") // well-known NAT64 prefix
	sixTo4  = netip.MustParsePrefix("2002::/16")    // 6to4
	ipv4in6 = []netip.Prefix{nat64, sixTo4}
)

func mustPrefixes(ss ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}

// IsPublicIP reports whether a is a unicast address on the public
// internet, the only kind a webhook may be delivered to in production. It
// is false for loopback, private (RFC 1918), carrier-grade NAT, link-local
// (including the cloud metadata address 169.254.169.254 and fe80::/10),
// unique-local fc00::/7, unspecified, multicast, broadcast, documentation
// and other reserved ranges, and for IPv6 forms that embed such an IPv4
// address (IPv4-mapped ::ffff:a.b.c.d, NAT64, 6to4).
func IsPublicIP(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	// A zone only applies to link-local addresses, and netip.Prefix
	// never contains a zoned address, so drop it before comparing.
	a = a.WithZone("").Unmap()
	if a.Is4() {
		for _, p := range nonPublic4 {
			if p.Contains(a) {
				return false
			}
		}
		return true
	}
	for _, p := range ipv4in6 {
		if p.Contains(a) {
			return IsPublicIP(embeddedIPv4(a, p))
		}
	}
	if !globalUnicast6.Contains(a) {
		return false
	}
	for _, p := range nonPublic6 {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// embeddedIPv4 extracts the IPv4 address carried by a NAT64 (last 32 bits)
// or 6to4 (bits 16 to 47) address.
func embeddedIPv4(a netip.Addr, p netip.Prefix) netip.Addr {
	b := a.As16()
	if p == sixTo4 {
		return netip.AddrFrom4([4]byte(b[2:6]))
	}
	return netip.AddrFrom4([4]byte(b[12:16]))
}
