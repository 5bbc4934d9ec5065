#!/usr/bin/env bash
# Restore tools and packages and build everything in Release. Quiet on success; the build log on failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { dotnet tool restore && dotnet paket restore && dotnet build Mpo.sln -c Release -nologo -v quiet; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "build failed" >&2
    exit 1
fi
