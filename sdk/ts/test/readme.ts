// The README's examples, kept compiling by `npm run typecheck`.
import type { IncomingMessage } from "node:http";

import { createDealcastClient, verifyWebhook, type EndpointWithSecret } from "../src/index.js";

export async function example(): Promise<void> {
  const dealcast = createDealcastClient({ baseUrl: "https://dealcast.example.com", token: process.env["DEALCAST_TOKEN"]! });
  const { data, error } = await dealcast.POST("/v1/deals", { body: { name: "Winter bundle", currency: "gbp", total_price: 1000, items: [{ id: "sku-1", name: "Gloves", price: 1000 }] } });
  if (error) throw new Error(`${error.status} ${error.title}: ${error.detail}`);
  console.log(data.id, data.status, data.net_price);
}

export function webhook(endpoint: EndpointWithSecret, req: IncomingMessage, rawBody: Buffer): void {
  const event = verifyWebhook(endpoint.secret, req.headers, rawBody);
  if (event.type === "deal.created") console.log(event.data.deal?.name);
}
