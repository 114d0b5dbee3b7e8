#!/usr/bin/env bash
# CodeNarc (npm-groovy-lint 15, which runs on Node 20) over the library's steps, the Job DSL and
# the Jenkinsfiles, with the committed .groovylintrc.json. Installs the linter into node_modules/
# from package-lock.json when it is missing. Fails on any error-level finding.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${JAVA_HOME:-}" ]; then
    JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
    export JAVA_HOME
fi
if [ ! -x node_modules/.bin/npm-groovy-lint ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
node_modules/.bin/npm-groovy-lint --failon error --loglevel error --output txt \
    vars jobs Jenkinsfile examples/taxi-fare/Jenkinsfile
