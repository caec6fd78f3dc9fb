# Pathway: run `make help` for the targets.
SHELL     := /bin/bash
GO        ?= go
PKGS      := ./...
CORPUS    ?= ../shared/corpus
FUZZTIME  ?= 30s
BENCHTIME ?= 1s
BENCHCOUNT ?= 6
DEMO_DB   ?= pathway-demo.db

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-zA-Z_-]*:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the pathway binary into ./bin/pathway.
	$(GO) build -o bin/pathway ./cmd/pathway

.PHONY: test
test: ## Run every test (PostgreSQL store tests run when PATHWAY_TEST_DATABASE_URL is set).
	$(GO) test $(PKGS)

.PHONY: lint
lint: ## Check formatting, vet, go.mod tidiness, and that dependencies are intact.
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) mod tidy -e -diff
	$(GO) mod verify

.PHONY: bench
bench: ## Run the benchmarks (BENCHCOUNT runs each, for benchstat).
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) $(PKGS)

FUZZ_TARGETS := ./fhir:FuzzParse ./fhir:FuzzMarshalMatchesGoogle ./fhir:FuzzEncodeTransaction ./fhir:FuzzAppendJSONString \
	./fhir:FuzzValidateMatchesFull ./fhir:FuzzSurelyParses ./fhir:FuzzValueRegex \
	./mappings:FuzzLoad ./mappings:FuzzBuild ./mappings:FuzzJSONFields ./mappings:FuzzFHIRFields \
	./connectors:FuzzCSV ./connectors:FuzzJSONArray ./connectors:FuzzNDJSON \
	./connectors:FuzzHL7v2 ./connectors:FuzzHL7Path ./connectors:FuzzHL7Unescape \
	./policy:FuzzParseConfig ./policy:FuzzDecide ./policy:FuzzPlannedWalk ./audit:FuzzProofs ./audit:FuzzParseEntry \
	./server:FuzzJSONPatch

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s): codec, mappings, connectors, policy, audit, JSON Patch.
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; echo "== $$pkg $$name"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME); \
	done

.PHONY: corpus
corpus: ## Parse, validate and round-trip every resource and primitive case in ../shared/corpus (when present); compare policy's planned walks with its reflective ones on it.
	@if [ -d "$(CORPUS)" ]; then \
		PATHWAY_CORPUS="$$(cd $(CORPUS) && pwd)" $(GO) test ./fhir -count=1 -run '^(TestCorpusExamples|TestPrimitiveValidity|TestGoogleFHIRParserCornerCases)$$' -v \
			| grep -E '^(--- |FAIL|ok|\s+corpus_test.go)' | grep -v -- '--- PASS: TestGoogleFHIRParserCornerCases/' ; test $${PIPESTATUS[0]} -eq 0 || exit 1; \
		PATHWAY_CORPUS="$$(cd $(CORPUS) && pwd)" $(GO) test ./connectors -count=1 -run '^TestHL7v2Corpus$$' -v | grep -E '^(--- |FAIL|ok)'; test $${PIPESTATUS[0]} -eq 0 || exit 1; \
		PATHWAY_CORPUS="$$(cd $(CORPUS) && pwd)" $(GO) test ./policy -count=1 -run '^TestPlannedWalkMatchesWalk$$' -v | grep -E '^(--- |FAIL|ok)|plan_test.go'; exit $${PIPESTATUS[0]}; \
	else \
		echo "corpus: $(CORPUS) not found, skipping (the copy in testdata/ is checked by make test)"; \
	fi

.PHONY: fhirkit
fhirkit: ## Drive pathway serve with fhir-kit-client (Node 20+, npm; make test runs it too, this shows why it skips).
	$(GO) test ./cmd/pathway -count=1 -run '^TestFHIRKitClient$$' -v

.PHONY: demo
demo: ## Run the referral network end to end on the sample data (a new SQLite store in DEMO_DB, two in-process partners).
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm $(DEMO_DB:.db=.pub)
	$(GO) run ./cmd/pathway demo --database sqlite://$(DEMO_DB) --audit-key $(DEMO_DB:.db=.pub)

.PHONY: ci
ci: lint test corpus ## What CI runs: lint, test, corpus.
