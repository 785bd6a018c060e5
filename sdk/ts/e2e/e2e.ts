// The SDK against a live Dealcast (started by TestTypeScriptSDK in
// cmd/dealcast-dev): accounts, a grant, a deal's create, patch and list,
// and the buyer's webhooks received here and verified with verifyWebhook.
// Any failure exits non-zero.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import { createDealcastClient, type Event, verifyWebhook, WebhookVerificationError } from "../src/index.js";

const WEBHOOK_WAIT_MS = 30_000;

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

const baseUrl = env("DEALCAST_URL");
const operator = createDealcastClient({ baseUrl, token: env("DEALCAST_OPERATOR_TOKEN") });

// Tokens of accounts made here come from the test's minting endpoint, as
// an identity provider would issue them.
async function tokenFor(role: "seller" | "buyer", sub: string): Promise<string> {
  const url = new URL(env("DEALCAST_TOKEN_URL"));
  url.searchParams.set("role", role);
  url.searchParams.set("sub", sub);
  const res = await fetch(url);
  assert.equal(res.status, 200, `minting a ${role} token`);
  return (await res.text()).trim();
}

// must returns a call's data, or fails with the problem the API answered.
function must<T>(r: { data?: T; error?: unknown; response: Response }, what: string): T {
  if (r.data === undefined) {
    throw new Error(`${what}: HTTP ${r.response.status} ${JSON.stringify(r.error)}`);
  }
  return r.data;
}

/** Receives deliveries, keeping those that verify and counting those that do not. */
class Receiver {
  secret = "";
  readonly events: Event[] = [];
  readonly rejected: string[] = [];
  private waiters: Array<() => void> = [];
  private readonly server = createServer((req, res) => void this.handle(req, res));

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/hooks`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    try {
      const event = verifyWebhook(this.secret, req.headers, body);
      assert.equal(event.id, req.headers["webhook-id"], "the event ID is the webhook-id");
      // A changed byte must not verify: the helper checks the raw body.
      assert.throws(() => verifyWebhook(this.secret, req.headers, Buffer.concat([body, Buffer.from(" ")])), WebhookVerificationError);
      this.events.push(event);
      res.writeHead(204).end();
    } catch (err) {
      this.rejected.push(`${req.headers["webhook-id"]}: ${String(err)}`);
      res.writeHead(400).end();
    }
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits for an event matching pred, failing after WEBHOOK_WAIT_MS. */
  async waitFor(what: string, pred: (e: Event) => boolean): Promise<Event> {
    const deadline = Date.now() + WEBHOOK_WAIT_MS;
    for (;;) {
      assert.deepEqual(this.rejected, [], "every delivery verifies");
      const found = this.events.find(pred);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`no verified ${what} within ${WEBHOOK_WAIT_MS / 1000} s; got ${this.events.map((e) => e.type).join(", ") || "none"}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

async function main(): Promise<void> {
  const run = Date.now().toString(36);
  const seller = must(await operator.POST("/v1/sellers", { body: { name: `TS Seller ${run}` } }), "create seller");
  const buyer = must(await operator.POST("/v1/buyers", { body: { name: `TS Buyer ${run}` } }), "create buyer");
  const grant = await operator.PUT("/v1/sellers/{seller_id}/buyers/{buyer_id}", {
    params: { path: { seller_id: seller.id, buyer_id: buyer.id } },
  });
  assert.equal(grant.response.status, 204, `grant: ${JSON.stringify(grant.error)}`);

  const sellerClient = createDealcastClient({ baseUrl, token: await tokenFor("seller", seller.id) });
  const buyerToken = await tokenFor("buyer", buyer.id);
  const buyerClient = createDealcastClient({ baseUrl, token: () => buyerToken });

  const receiver = new Receiver();
  try {
    const url = await receiver.listen();
    const endpoint = must(
      await buyerClient.POST("/v1/webhook-endpoints", {
        body: { url, event_types: ["deal.created", "deal.updated"], description: "sdk/ts e2e" },
      }),
      "create webhook endpoint",
    );
    assert.match(endpoint.secret, /^whsec_/);
    receiver.secret = endpoint.secret;

    // No status: the server's default applies.
    const created = await sellerClient.POST("/v1/deals", {
      body: {
        name: "Winter bundle",
        items: [
          { id: "sku-1", name: "Gloves", price: 4000 },
          { id: "sku-2", name: "Scarf", price: 6000 },
        ],
        total_price: 10000,
        currency: "GBP",
      },
    });
    const deal = must(created, "create deal");
    assert.equal(deal.status, "available");
    assert.equal(deal.currency, "gbp");
    assert.equal(deal.version, 1);
    const etag = created.response.headers.get("ETag");
    assert.ok(etag, "create answers an ETag");

    const patched = await sellerClient.PATCH("/v1/deals/{id}", {
      params: { path: { id: deal.id }, header: { "If-Match": etag } },
      body: { name: "Winter bundle, reduced", discount: { type: "percentage", amount: 10 } },
    });
    const updated = must(patched, "patch deal");
    assert.equal(updated.version, 2);
    assert.equal(updated.net_price, 9000);
    // The same If-Match again is stale now.
    const stale = await sellerClient.PATCH("/v1/deals/{id}", {
      params: { path: { id: deal.id }, header: { "If-Match": etag } },
      body: { name: "Lost update" },
    });
    assert.equal(stale.response.status, 412, "a patch at an old version is refused");
    assert.equal(stale.error?.status, 412);

    const page = must(await buyerClient.GET("/v1/deals", { params: { query: { limit: 10 } } }), "list deals as the buyer");
    const listed = page.data.find((d) => d.id === deal.id);
    assert.ok(listed, "the buyer lists the deal of the seller that authorised it");
    assert.equal(listed.name, "Winter bundle, reduced");

    const createdEvent = await receiver.waitFor("deal.created", (e) => e.type === "deal.created" && e.data.deal?.id === deal.id);
    assert.equal(createdEvent.data.deal?.version, 1);
    const updatedEvent = await receiver.waitFor("deal.updated", (e) => e.type === "deal.updated" && e.data.deal?.id === deal.id);
    assert.equal(updatedEvent.data.deal?.version, 2);
    assert.equal(updatedEvent.data.previous?.["name"], "Winter bundle");
    console.log(`sdk/ts e2e: deal ${deal.id} created, patched and listed; ${receiver.events.length} webhooks verified`);
  } finally {
    await receiver.close();
  }
}

main().catch((err: unknown) => {
  console.error("sdk/ts e2e failed:", err);
  process.exit(1);
});
