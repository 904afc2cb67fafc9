#!/usr/bin/env bash
# Deploys a tqserver project to a target from config/deployment.yaml, with no failed request:
#   1. builds every worker for production (tqserver build),
#   2. copies the built workers (bin/, public/, private/, worker.yaml), config/, and the server's
#      own dist/ and package files to the target (rsync; updates land together at the end),
#   3. makes the server running there reload (tqserver reload: SIGHUP to the server in that root,
#      then it waits until the changed workers serve their new versions),
#   4. exits non-zero, with the reason, if any step fails.
# Usage: scripts/deploy.sh TARGET   (run from the project root, or set TQ_ROOT)
set -euo pipefail

target_name=${1:-}
if [ -z "$target_name" ]; then
  echo "usage: deploy.sh TARGET (targets are listed in config/deployment.yaml)" >&2
  exit 2
fi
root=$(cd "${TQ_ROOT:-$PWD}" && pwd)
tqserver_dir=$(cd "$(dirname "$0")/.." && pwd)
cli=(node "$tqserver_dir/dist/src/cli/main.js")

# The target's destination: "user@host:/path" or a local path (relative to the project root).
dest=$(node --input-type=module - "$tqserver_dir" "$root/config/deployment.yaml" "$target_name" <<'JS'
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
const [tqserverDir, file, name] = process.argv.slice(2)
const { parse } = createRequire(`${tqserverDir}/package.json`)('yaml')
let targets
try { targets = parse(readFileSync(file, 'utf8'))?.targets ?? {} } catch (err) { console.error(`deploy: cannot read ${file}: ${err.message}`); process.exit(1) }
if (typeof targets[name] !== 'string') {
  console.error(`deploy: no target "${name}" in ${file} (targets: ${Object.keys(targets).join(', ') || 'none'})`)
  process.exit(1)
}
console.log(targets[name])
JS
)
case "$dest" in
  *:*) remote=${dest%%:*}; path=${dest#*:} ;;
  /*) remote=; path=$dest ;;
  *) remote=; path="$root/$dest" ;;
esac

echo "deploy: building workers in $root"
(cd "$root" && "${cli[@]}" build)

echo "deploy: copying to $dest"
changes=$(rsync -a --delete --delay-updates --itemize-changes \
  --include='/package.json' --include='/package-lock.json' --include='/dist/***' --include='/config/***' \
  --include='/workers/' --include='/workers/*/' --include='/workers/*/worker.yaml' \
  --include='/workers/*/bin/***' --include='/workers/*/public/***' --include='/workers/*/private/***' \
  --exclude='*' "$root/" "${remote:+$remote:}$path/")
if grep -qE ' (dist/|package(-lock)?\.json)' <<<"$changes"; then
  echo "deploy: warning: the server's own code or packages changed; a reload switches workers only." >&2
  echo "deploy: restart the server there (e.g. systemctl restart tqserver) to run the new server code." >&2
fi

echo "deploy: reloading the server in $dest"
if [ -n "$remote" ]; then
  ssh "$remote" "cd '$path' && if [ -x node_modules/.bin/tqserver ]; then node_modules/.bin/tqserver reload; else node dist/src/cli/main.js reload; fi"
else
  "${cli[@]}" reload --root "$path"
fi
echo "deploy: $target_name is serving the new versions"
