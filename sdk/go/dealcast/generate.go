package dealcast

// The client is generated from the OpenAPI 3.0 form of the API description
// (oapi-codegen reads 3.0; the service also serves 3.1 at /openapi.json).
// `make sdk` writes openapi-3.0.yaml from `dealcast openapi --version 3.0
// --yaml` and then runs this.
//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config oapi-codegen.yaml openapi-3.0.yaml
