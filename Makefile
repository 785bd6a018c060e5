# Dealcast. `make help` lists the targets.
# The Temporal server module needs Go >= 1.26.10; the go command fetches this toolchain.
export GOTOOLCHAIN := go1.27.3
export GOFLAGS := -buildvcs=false

GO ?= go
BIN := bin/dealcast
DEV_BIN := bin/dealcast-dev
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  \033[36m%-17s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: build ## Run everything locally (dealcast-dev dev): database, migrations, embedded Temporal and its UI, worker, API
	./$(DEV_BIN) dev

.PHONY: demo
demo: build ## Guided tour against a running `make run` (API on :8080): a deal's life and its webhooks
	./$(DEV_BIN) demo

.PHONY: build
build: ## Build bin/dealcast (the product) and bin/dealcast-dev (dev stack, demo, bench)
	$(GO) build -o $(BIN) ./cmd/dealcast
	$(GO) build -o $(DEV_BIN) ./cmd/dealcast-dev

.PHONY: test
# The Go client (sdk/go/dealcast) and the manifest checks (deploy) are modules
# of their own, so integrators and the service do not inherit each other's
# dependencies.
MODULES := . sdk/go/dealcast deploy

test: ## Run every test against the local PostgreSQL, with the race detector, then test-serializable and test-chaos
	$(GO) test -race -count=1 ./...
	cd sdk/go/dealcast && $(GO) test -count=1 ./...
	cd deploy && $(GO) test -count=1 ./...
	$(MAKE) --no-print-directory test-serializable
	$(MAKE) --no-print-directory test-chaos

# Production runs on CockroachDB, where every transaction is SERIALIZABLE
# and may fail with a 40001 retry error; PostgreSQL's default read
# committed never raises one. TEST_ISOLATION makes each test database
# SERIALIZABLE (internal/dbtest), so the store's retry paths run.
SERIALIZABLE_PACKAGES := ./internal/store/... ./api/...

.PHONY: test-serializable
test-serializable: ## Run the store and API tests with every transaction SERIALIZABLE, as on CockroachDB
	TEST_ISOLATION=serializable $(GO) test -race -count=1 $(SERIALIZABLE_PACKAGES)

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...); done

.PHONY: openapi
openapi: ## Print the OpenAPI 3.1 document
	@$(GO) run ./cmd/dealcast openapi

.PHONY: openapi-file
openapi-file: ## Write api/openapi.yaml (OpenAPI 3.1) from the code; a test fails while it is stale
	$(GO) run ./cmd/dealcast openapi --yaml > api/openapi.yaml.tmp
	mv api/openapi.yaml.tmp api/openapi.yaml

.PHONY: sdk
sdk: openapi-file ## Regenerate the Go client in sdk/go/dealcast (oapi-codegen, from the 3.0 document) and the TypeScript types in sdk/ts (openapi-typescript)
	$(GO) run ./cmd/dealcast openapi --version 3.0 --yaml > sdk/go/dealcast/openapi-3.0.yaml.tmp
	mv sdk/go/dealcast/openapi-3.0.yaml.tmp sdk/go/dealcast/openapi-3.0.yaml
	cd sdk/go/dealcast && $(GO) generate ./...
	cd sdk/ts && npm ci && npx openapi-typescript ../../api/openapi.yaml -o src/schema.d.ts

.PHONY: docs-ui
docs-ui: ## Replace the /docs page's Swagger UI (api/reference/swagger-ui) with SWAGGER_UI=swagger-ui-dist@VERSION from npm, integrity checked
	api/reference/refresh.sh $(SWAGGER_UI)

.PHONY: clean
clean: ## Remove build output and local dev state
	rm -rf bin .data

.PHONY: chaos
chaos: build ## Fault run on this machine (~4 min; CHAOS_FLAGS=--short ~2.5): kills and restarts APIs, workers, Temporal and PostgreSQL under deal and trading load; fails if a webhook is lost or a trading check breaks: chaos/results.json
	./$(DEV_BIN) chaos $(CHAOS_FLAGS)

# The last step of `make test`, after every other: it kills and restarts
# processes under load, so no other test shares the machine with it.
.PHONY: test-chaos
test-chaos: ## The short fault run (~2.5 min, no PostgreSQL restart): fails only on a lost webhook or a trading check
	$(MAKE) --no-print-directory chaos CHAOS_FLAGS=--short

.PHONY: bench
bench: build ## Benchmark against pgbench (needs PostgreSQL and pgbench; BENCH_SECONDS shortens it): bench/results/latest.json
	./$(DEV_BIN) bench

# Native Go fuzz targets, as package:Target. `make test` replays their seed
# corpora (f.Add and testdata/fuzz/); this explores beyond them.
FUZZTIME ?= 30s
FUZZ_TARGETS := \
	internal/deal:FuzzValidateDraft \
	internal/deal:FuzzApplyPatch \
	internal/store:FuzzDecodeCursor \
	internal/webhook:FuzzSignVerify \
	internal/webhook:FuzzCheckURL

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s); new failing inputs land in testdata/fuzz/
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "== $$fn ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) ./$$pkg; \
	done
