#!/usr/bin/env bash
# Fuzzes the served API from its own OpenAPI document with schemathesis: no 5xx answers and
# every answer matching the documented schema. Needs `cargo build -p patron` done and
# schemathesis installed (pip).
set -euo pipefail
cd "$(dirname "$0")/.."

binary=${CARGO_TARGET_DIR:-target}/debug/patron
work=$(mktemp -d)
database="$work/schemathesis.db"
port=${SCHEMATHESIS_PORT:-18181}
address="http://127.0.0.1:$port"
examples=${SCHEMATHESIS_EXAMPLES:-30}

key=$("$binary" tenant --database "$database" --name "Schemathesis" | sed -n 's/^API key //p')
"$binary" serve --database "$database" --listen "127.0.0.1:$port" \
    --rate-limit-per-second 0 --jobs-interval-seconds 0 >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
    curl -fsS "$address/healthz" >/dev/null 2>&1 && break
    sleep 0.2
done

# Something to find: a programme, a store, a member with points, a reward.
api() { curl -fsS -X "$1" "$address$2" -H "Authorization: Bearer $key" -H 'content-type: application/json' -d "$3" >/dev/null; }
api POST /v1/programme/versions '{"definition": {"amount_per_point": 10000, "point_value": 1000, "return_window_days": 0,
  "tiers": [{"code": "member", "name": "Member", "threshold": 0}, {"code": "gold", "name": "Gold", "threshold": 5000000}],
  "qualification": {"metric": "spend", "window": "lifetime", "grace_days": 30}}, "effective_from": "2020-01-01T00:00:00Z"}'
api POST /v1/stores '{"code": "HN01", "name": "Hà Nội"}'
api POST /v1/events '{"id": "seed-1", "type": "purchase", "member": {"phone": "0912345678"}, "store": "HN01", "amount": 500000}'
api POST /v1/rewards '{"name": "Cà phê sữa đá", "cost": 10}'

schemathesis run "$address/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --max-examples "$examples" \
    --request-timeout 20 \
    --suppress-health-check all \
    --no-color
