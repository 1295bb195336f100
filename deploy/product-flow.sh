#!/usr/bin/env bash
# The product page's flow, with bursarctl alone, against a running bursard on an empty store:
# bootstrap, two projects, a member invited and added as Project Member, their own scoped key,
# a CHECK over the binary protocol, the Owner revokes the key, the next CHECK is denied.
#
#   BURSARCTL    the bursarctl binary (default: bursarctl on PATH)
#   BURSAR_SERVER, BURSAR_DATA_PLANE   bursard's ops and data-plane addresses
#                (defaults http://127.0.0.1:7421 and 127.0.0.1:7420)
set -euo pipefail
ctl=${BURSARCTL:-bursarctl}
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

echo "== bootstrap: the operator's token, the first organization and its Owner"
boot=$("$ctl" bootstrap --org "FastRouter AI" --owner ada@fastrouter.ai --owner-name "Ada" --json)
export BURSAR_TOKEN=$(json "['owner_token']" <<<"$boot")      # Ada, Owner

echo "== the Owner creates Production and Sandbox"
"$ctl" project create Production --models gpt-5.5,claude-opus-4.8,gemini-3-pro,o5-mini,llama-4-405b,mistral-large-3 \
  --tpm 120000 --rpm 600 --budget '$2000'
"$ctl" project create Sandbox --models gpt-5.5,o5-mini --tpm 20000 --rpm 60 --budget '$200'

echo "== invites Ben and adds him to Production as a Project Member"
ben=$("$ctl" member invite ben@fastrouter.ai --name Ben --json)
# Ben is new: he accepts with the invitation's token alone and gets his own token.
accepted=$(BURSAR_TOKEN= "$ctl" invitation accept "$(json "['accept_token']" <<<"$ben")" --json)
ben_token=$(json "['token']" <<<"$accepted")
"$ctl" project member add Production ben@fastrouter.ai --role member
"$ctl" project member list Production

echo "== Ben creates his own key: \$200 monthly, 60 RPM, 20k TPM, 4 models, 30 days, no content logging"
key=$(BURSAR_TOKEN=$ben_token "$ctl" key create --project Production --name "ben-prod" \
  --budget '$200' --period monthly --rpm 60 --tpm 20k --models gpt-5.5,claude-opus-4.8,gemini-3-pro,o5-mini \
  --expires-in 30d --no-content-logging --json)
secret=$(json "['secret']" <<<"$key")
key_id=$(json "['key']['id']" <<<"$key")
BURSAR_TOKEN=$ben_token "$ctl" key show "$key_id"

echo "== the key passes CHECK over the binary protocol"
"$ctl" check --secret "$secret" --model gpt-5.5 --tokens 1200 --cost 0.004

echo "== a model outside the key's four is denied"
if "$ctl" check --secret "$secret" --model llama-4-405b; then echo "expected a denial" >&2; exit 1; fi

echo "== the Owner revokes the key; the next CHECK is denied"
"$ctl" key revoke "$key_id"
if "$ctl" check --secret "$secret" --model gpt-5.5; then echo "expected a denial" >&2; exit 1; else status=$?; fi
[ "$status" -eq 7 ] || { echo "check exited $status, expected 7 (denied)" >&2; exit 1; }

echo "== the audit log has it all"
"$ctl" audit --limit 20
echo "product flow: ok"
