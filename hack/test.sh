#!/usr/bin/env bash
# Runs every test: unit tests, integration tests that start real containers
# (they need root and skip without it), and the fuzz seed corpora.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/deps.sh
go vet -tags netgo,osusergo ./...
go test -tags netgo,osusergo -count=1 -timeout 20m ./...
