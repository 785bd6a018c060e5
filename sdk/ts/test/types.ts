// Compiled by `npm run typecheck` only: it fails to compile, and so fails
// `make test`, if the generated types stop matching what the API accepts.
import { createDealcastClient, type Draft } from "../src/index.js";

const client = createDealcastClient({ baseUrl: "http://localhost:8080", token: "t" });

// status has a server-side default, so a draft without it must compile.
const draft: Draft = {
  name: "Winter bundle",
  items: [{ id: "sku-1", name: "Gloves", price: 1000 }],
  total_price: 1000,
  currency: "gbp",
};

export async function createWithoutStatus(): Promise<string | undefined> {
  const { data } = await client.POST("/v1/deals", {
    body: {
      name: "Winter bundle",
      items: [{ id: "sku-1", name: "Gloves", price: 1000 }],
      total_price: 1000,
      currency: "gbp",
    },
  });
  await client.POST("/v1/deals", { body: draft });
  return data?.status;
}

export async function listWithoutLimit(): Promise<number | undefined> {
  const { data } = await client.GET("/v1/deals", {});
  return data?.data.length;
}
