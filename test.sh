#!/usr/bin/env bash
# Builds everything, runs every test executable (Expecto has no `dotnet test` adapter here), and ends with one line:
# "N passed, N failed, N skipped" summed over all runners. Exit status non-zero if anything failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
./build.sh || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }

passed=0 failed=0 skipped=0 status=0
for project in tests/*/*.fsproj; do
    name=$(basename "$project" .fsproj)
    dll=$(ls "$(dirname "$project")"/bin/Release/net10.0/*/"$name.dll" | head -n 1)
    log=$(mktemp)
    echo "== $name"
    dotnet "$dll" --no-spinner "$@" 2>&1 | tee "$log"
    code=${PIPESTATUS[0]}
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n 1)
    rm -f "$log"
    if [ -z "$summary" ]; then
        echo "$name: no summary line (exit code $code)"
        failed=$((failed + 1)); status=1; continue
    fi
    read -r p _ f _ s _ <<<"${summary//,/}"
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    [ "$code" -eq 0 ] || status=1
done
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
