# Ferry's entry points. Every target installs what it needs first: the pinned
# Node runtime (from the npm registry), npm packages from the lock file, and
# the Debian packages the tests and the demo use.
SHELL := /bin/bash
ROOT := $(CURDIR)
NODE := $(ROOT)/.tools/node/bin/node
export PATH := $(ROOT)/.tools/node/bin:$(ROOT)/node_modules/.bin:$(PATH)
export npm_config_nodedir := $(ROOT)/.tools/node
NODE_FLAGS := --disable-warning=ExperimentalWarning
TEST_FILES := 'src/**/*.test.ts' 'test/**/*.test.ts'

.PHONY: setup node deps debs test unit typecheck lint format demo bench clean

setup: node deps debs

node:
	@sh scripts/install-node.sh

deps: node node_modules/.ferry-installed

node_modules/.ferry-installed: package-lock.json package.json
	npm ci --no-audit --no-fund --prefer-offline
	@touch $@

debs:
	@sh scripts/install-debs.sh

typecheck: deps
	tsc -p tsconfig.json

lint: deps
	eslint .
	prettier --check .

format: deps
	prettier --write .

# The whole suite: types, lint, then every test file (unit beside the code,
# cross-component scenarios in test/e2e).
test: setup typecheck lint
	$(NODE) $(NODE_FLAGS) --test --test-concurrency=2 --test-timeout=600000 $(TEST_FILES)

# Only the tests, no setup or lint (for quick iterations).
unit:
	$(NODE) $(NODE_FLAGS) --test --test-concurrency=2 $(TEST_FILES)

demo: setup
	./bin/ferry demo

bench: setup
	$(NODE) $(NODE_FLAGS) bench/run.ts

clean:
	rm -rf node_modules .tools
