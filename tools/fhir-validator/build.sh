#!/usr/bin/env bash
# Builds the offline validator's runnable jar. The Maven cache lives under the project's
# build/ folder (git-ignored), so nothing is written to ~/.m2.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
command -v mvn >/dev/null 2>&1 || { echo "build.sh: mvn not found (install Maven 3.8+ and a JDK 17+)" >&2; exit 1; }
cd "$here"
mvn -q -Dmaven.repo.local="$repo/build/m2" package
jar="$here/target/fhir-validator-all.jar"
test -f "$jar" || { echo "build.sh: build finished but $jar is missing" >&2; exit 1; }
echo "$jar"
