#!/usr/bin/env bash
# DEV ONLY. Regenerates the throwaway CA and the per-service mTLS certificates the dev overlay
# mounts as <service>-tls Secrets (ca.crt, tls.crt, tls.key). These keys are public by being in
# git: never trust this CA anywhere but a local cluster. Prod gets its <service>-tls Secrets
# from outside (cert-manager Certificate or the platform's PKI), never from this folder.
#
# Each certificate: CN = the service's short name (the caller identity the services check),
# SANs = every DNS name a client may dial it by in namespace wristpay, plus localhost for
# `tilt up` port-forwards. serverAuth + clientAuth because every service is both in mTLS.
# Plus client-only certificates (not mounted anywhere) for the callers outside the mesh, to call
# through Tilt's port-forwards (gateway localhost:50050, alerts localhost:50055): `wallet` (the
# phone-facing wallet backend), `backoffice` (people: merchant onboarding), `merchant.<id>` for
# each demo merchant in sim/demo-merchants.txt, and `demo` for the demo and sim tools.
#
#   bash k8s/overlays/dev/certs/generate.sh      # then re-run: npx jest test/k8s
set -euo pipefail
cd "$(dirname "$0")"

NAMESPACE=wristpay
DAYS=3650 # dev only: long enough that the manifest tests are no time bomb
SERVICES=(device-registry tokenization risk settlement gateway alerts)
CLIENTS=(demo wallet backoffice)
while read -r id _; do
  [[ -z "$id" || "$id" == \#* ]] || CLIENTS+=("merchant.$id")
done <../../../../sim/demo-merchants.txt

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

openssl ecparam -name prime256v1 -genkey -noout -out "$work/ca.key"
openssl req -x509 -new -sha256 -key "$work/ca.key" -days "$DAYS" \
  -subj "/O=WristPay DEV ONLY/CN=wristpay-dev-ca" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.crt

# issue CN EXTFILE: a key and a certificate for CN, signed by the CA with the extensions in EXTFILE.
issue() {
  openssl ecparam -name prime256v1 -genkey -noout -out "$work/$1.ec.key"
  # PKCS#8, the form Node's tls and every gRPC stack read.
  openssl pkcs8 -topk8 -nocrypt -in "$work/$1.ec.key" -out "$1.key"
  openssl req -new -sha256 -key "$1.key" -subj "/O=WristPay DEV ONLY/CN=$1" -out "$work/$1.csr"
  openssl x509 -req -sha256 -in "$work/$1.csr" -CA ca.crt -CAkey "$work/ca.key" -CAcreateserial \
    -CAserial "$work/ca.srl" -days "$DAYS" -extfile "$2" -out "$1.crt"
}

for svc in "${SERVICES[@]}"; do
  cat >"$work/$svc.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:$svc,DNS:$svc.$NAMESPACE,DNS:$svc.$NAMESPACE.svc,DNS:$svc.$NAMESPACE.svc.cluster.local,DNS:localhost,IP:127.0.0.1
EXT
  issue "$svc" "$work/$svc.ext"
done

printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=clientAuth\n' >"$work/client.ext"
for cn in "${CLIENTS[@]}"; do
  issue "$cn" "$work/client.ext"
done

# The CA key is thrown away: nothing can be signed with this CA after this script exits.
echo "dev certificates written to $(pwd) (CA key discarded)"
