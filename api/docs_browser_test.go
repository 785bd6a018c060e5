package api_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browser returns the path of a local Chromium or Chrome, skipping the
// test when there is none (.ci/run installs Debian's chromium).
func browser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium, chromium-browser or google-chrome on PATH: the /docs browser test needs one (apt-get install chromium)")
	return ""
}

// pageRequests records what a page asked for over the network.
type pageRequests struct {
	mu     sync.Mutex
	urls   []string
	byID   map[network.RequestID]string
	failed []string
	thrown []string
}

func (p *pageRequests) listen(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		p.urls = append(p.urls, e.Request.URL)
		if p.byID == nil {
			p.byID = map[network.RequestID]string{}
		}
		p.byID[e.RequestID] = e.Request.URL
	case *network.EventLoadingFailed:
		// A request the page's CSP refused never reaches the network, but
		// it shows the page tried.
		p.failed = append(p.failed, fmt.Sprintf("%s: %s %s", p.byID[e.RequestID], e.ErrorText, e.BlockedReason))
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		if d.Exception != nil && d.Exception.Description != "" {
			p.thrown = append(p.thrown, d.Exception.Description)
		} else {
			p.thrown = append(p.thrown, d.Text)
		}
	}
}

// The API reference at /docs renders the service's operations from the
// binary alone, and its Try it out calls the API: headless Chromium on the
// real handler, with every request the page makes recorded.
func TestDocsPageOffline(t *testing.T) {
	t.Parallel()
	exe := browser(t)
	e := setup(t)
	srv := httptest.NewServer(e.handler)
	t.Cleanup(srv.Close)
	_, sellerToken := e.seller()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		// Root (CI, containers) cannot use Chromium's sandbox.
		chromedp.NoSandbox,
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(cancelTab)

	var seen pageRequests
	if err := chromedp.Listen(ctx, seen.listen); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	// Swagger UI gives each operation the id operations-{tag}-{operationId}.
	const listDeals = `#operations-Deals-list-deals`
	err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/docs"),
		chromedp.WaitVisible(`//*[contains(@class, "opblock-summary-description")][normalize-space() = "Create a deal"]`),
	)
	if err != nil {
		t.Fatalf("the page did not list the operations: %v", err)
	}
	t.Logf("/docs listed the operations %v after the browser started", time.Since(start).Round(time.Millisecond))

	// The page's own fetch, with a token, reaches the API.
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](
		fmt.Sprintf(`fetch("/v1/deals", {headers: {Authorization: "Bearer %s"}}).then(r => r.status)`, sellerToken),
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if status != 200 {
		t.Fatalf("fetch /v1/deals from the page: status %d, want 200", status)
	}

	// And so does Try it out, as a reader would use it: authorise with the
	// token, open List deals, execute.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`button.authorize`)),
		chromedp.SendKeys(chromedp.CSS(`.auth-container input`), sellerToken),
		chromedp.Click(chromedp.CSS(`.auth-container button.authorize`)),
		chromedp.Click(chromedp.CSS(`button.btn-done`)),
		chromedp.Click(chromedp.CSS(listDeals+` .opblock-summary-control`)),
		chromedp.Click(chromedp.CSS(listDeals+` button.try-out__btn`)),
		chromedp.Click(chromedp.CSS(listDeals+` button.execute`)),
	)
	if err != nil {
		t.Fatalf("Try it out on List deals: %v", err)
	}
	answered, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(listDeals+` .live-responses-table .response .response-col_status`)))
	if err != nil {
		t.Fatalf("Try it out on List deals showed no response: %v", err)
	}
	if strings.TrimSpace(answered) != "200" {
		t.Errorf("Try it out on List deals answered %q, want 200", answered)
	}
	t.Logf("Try it out answered after %v", time.Since(start).Round(time.Millisecond))

	seen.mu.Lock()
	defer seen.mu.Unlock()
	base, _ := url.Parse(srv.URL)
	var own int
	for _, u := range seen.urls {
		if strings.HasPrefix(u, "data:") {
			continue
		}
		if pu, err := url.Parse(u); err != nil || pu.Host != base.Host {
			t.Errorf("the page requested %s, not on the test server %s", u, base.Host)
			continue
		}
		own++
	}
	if own < 5 {
		t.Errorf("recorded only %d requests to the test server (page, two scripts, stylesheet, document, API): %v", own, seen.urls)
	}
	for _, f := range seen.failed {
		t.Errorf("a request from the page failed or was blocked: %s", f)
	}
	for _, x := range seen.thrown {
		t.Errorf("the page threw: %s", x)
	}
}
