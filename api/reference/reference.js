// Points Swagger UI at this service's own OpenAPI document. The URLs are
// relative to /docs, so the page also works behind a path prefix.
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#reference",
  deepLinking: true,
  // BaseLayout has no top bar for loading other documents.
  layout: "BaseLayout",
  // The default validator is a remote service that would see the document.
  validatorUrl: null,
});
