import createClient, { type Client } from "openapi-fetch";
import { Webhook } from "standardwebhooks";

import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths } from "./schema.js";

type Schemas = components["schemas"];
export type Account = Schemas["Account"];
export type Deal = Schemas["Deal"];
export type Draft = Schemas["Draft"];
export type Patch = Schemas["Patch"];
export type Item = Schemas["Item"];
export type Discount = Schemas["Discount"];
export type Auction = Schemas["Auction"];
export type Bid = Schemas["Bid"];
export type Invoice = Schemas["Invoice"];
export type Endpoint = Schemas["Endpoint"];
export type EndpointWithSecret = Schemas["EndpointWithSecret"];
export type Event = Schemas["Event"];
export type EventType = Event["type"];
export type Problem = Schemas["ErrorModel"];

export type DealcastClient = Client<paths>;

export interface DealcastClientOptions {
  /** The API's origin, e.g. https://dealcast.example.com; paths carry /v1. */
  baseUrl: string;
  /** A bearer token, or a function returning one, called on every request. */
  token: string | (() => string | Promise<string>);
  /** A fetch implementation; the global fetch when omitted. */
  fetch?: (request: Request) => Promise<Response>;
}

/**
 * Returns a typed client: each call is `client.GET("/v1/deals", ...)`,
 * `client.POST(...)` and so on, resolving to `{ data, error, response }`
 * where `error` is the RFC 9457 problem on a 4xx or 5xx.
 */
export function createDealcastClient(options: DealcastClientOptions): DealcastClient {
  const client = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const { token } = options;
  // A middleware rather than a fixed header, so that a token function can
  // hand out a fresh token once the old one expires.
  client.use({
    async onRequest({ request }) {
      const value = typeof token === "function" ? await token() : token;
      request.headers.set("Authorization", `Bearer ${value}`);
      return request;
    },
  });
  return client;
}

/** Headers as Node's IncomingHttpHeaders, a plain object or a fetch Headers. */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

/**
 * Checks a delivery's webhook-signature against the endpoint's secret (as
 * the API returned it, "whsec_..."), and that webhook-timestamp is within
 * 5 minutes of this clock, then returns the parsed event. body must be the
 * raw request body: a re-serialised copy does not verify. Throws
 * WebhookVerificationError when the delivery is not genuine.
 *
 * During a secret rotation pass the new secret: the delivery is signed with
 * both while the old one is still valid.
 */
export function verifyWebhook(secret: string, headers: WebhookHeaders, body: string | Uint8Array): Event {
  const wanted = ["webhook-id", "webhook-timestamp", "webhook-signature"] as const;
  const flat: Record<string, string> = {};
  if (headers instanceof Headers) {
    for (const name of wanted) {
      const v = headers.get(name);
      if (v !== null) flat[name] = v;
    }
  } else {
    // Header names are case-insensitive; frameworks differ in how they keep them.
    for (const [name, v] of Object.entries(headers)) {
      const lower = name.toLowerCase();
      if (v !== undefined && (wanted as readonly string[]).includes(lower)) {
        flat[lower] = Array.isArray(v) ? v.join(" ") : v;
      }
    }
  }
  return new Webhook(secret).verify(body, flat) as Event;
}

export { WebhookVerificationError } from "standardwebhooks";
