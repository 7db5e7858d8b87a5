#!/usr/bin/env bash
# Makes a local development CA and one certificate per service (CN = the service's short name,
# which is the caller identity mTLS allow-lists check), plus the identities of the callers outside
# the mesh: `wallet` (the phone-facing wallet backend), `backoffice` (people: merchant onboarding),
# `merchant.<id>` for each demo merchant in sim/demo-merchants.txt (the gateway binds a merchant's
# calls to that merchant), and `demo` for the demo client.
# Never use these outside a laptop: the cluster gets its certificates from its own issuer.
#   scripts/dev-certs.sh [out-dir]     (default .data/certs; existing files are kept)
set -euo pipefail
out="${1:-.data/certs}"
merchants="$(dirname "$0")/../sim/demo-merchants.txt"
mkdir -p "$out"
umask 077
if [ ! -f "$out/ca.crt" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
    -keyout "$out/ca.key" -out "$out/ca.crt" -subj "/CN=wristpay-dev-ca" 2>/dev/null
fi
names=(device-registry tokenization risk settlement gateway alerts wallet backoffice demo)
while read -r id _; do
  [[ -z "$id" || "$id" == \#* ]] || names+=("merchant.$id")
done <"$merchants"
for name in "${names[@]}"; do
  [ -f "$out/$name.crt" ] && continue
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$out/$name.key" -out "$out/$name.csr" -subj "/CN=$name" 2>/dev/null
  printf 'subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' "$name" >"$out/$name.ext"
  openssl x509 -req -in "$out/$name.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
    -days 825 -extfile "$out/$name.ext" -out "$out/$name.crt" 2>/dev/null
  rm -f "$out/$name.csr" "$out/$name.ext"
done
echo "dev certificates in $out"
