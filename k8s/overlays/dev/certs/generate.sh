#!/usr/bin/env bash
# DEV ONLY. Regenerates the throwaway CA and the per-service mTLS certificates the dev overlay
# mounts as <service>-tls Secrets (ca.crt, tls.crt, tls.key). These keys are public by being in
# git: never trust this CA anywhere but a local cluster. Prod gets its <service>-tls Secrets
# from outside (cert-manager Certificate or the platform's PKI), never from this folder.
#
# Each certificate: CN = the service's short name (the caller identity the services check),
# SANs = every DNS name a client may dial it by in namespace wristpay, plus localhost for
# `tilt up` port-forwards. serverAuth + clientAuth because every service is both in mTLS.
# Plus a client-only `demo` certificate (not mounted anywhere) for the demo and sim tools when
# they call the gateway through Tilt's port-forward on localhost:50050.
#
#   bash k8s/overlays/dev/certs/generate.sh      # then re-run: npx jest test/k8s
set -euo pipefail
cd "$(dirname "$0")"

NAMESPACE=wristpay
DAYS=3650 # dev only: long enough that the manifest tests are no time bomb
SERVICES=(device-registry tokenization risk settlement gateway alerts)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

openssl ecparam -name prime256v1 -genkey -noout -out "$work/ca.key"
openssl req -x509 -new -sha256 -key "$work/ca.key" -days "$DAYS" \
  -subj "/O=WristPay DEV ONLY/CN=wristpay-dev-ca" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.crt

for svc in "${SERVICES[@]}"; do
  openssl ecparam -name prime256v1 -genkey -noout -out "$work/$svc.ec.key"
  # PKCS#8, the form Node's tls and every gRPC stack read.
  openssl pkcs8 -topk8 -nocrypt -in "$work/$svc.ec.key" -out "$svc.key"
  openssl req -new -sha256 -key "$svc.key" -subj "/O=WristPay DEV ONLY/CN=$svc" -out "$work/$svc.csr"
  cat >"$work/$svc.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:$svc,DNS:$svc.$NAMESPACE,DNS:$svc.$NAMESPACE.svc,DNS:$svc.$NAMESPACE.svc.cluster.local,DNS:localhost,IP:127.0.0.1
EXT
  openssl x509 -req -sha256 -in "$work/$svc.csr" -CA ca.crt -CAkey "$work/ca.key" -CAcreateserial \
    -CAserial "$work/ca.srl" -days "$DAYS" -extfile "$work/$svc.ext" -out "$svc.crt"
done

openssl ecparam -name prime256v1 -genkey -noout -out "$work/demo.ec.key"
openssl pkcs8 -topk8 -nocrypt -in "$work/demo.ec.key" -out demo.key
openssl req -new -sha256 -key demo.key -subj "/O=WristPay DEV ONLY/CN=demo" -out "$work/demo.csr"
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=clientAuth\n' >"$work/demo.ext"
openssl x509 -req -sha256 -in "$work/demo.csr" -CA ca.crt -CAkey "$work/ca.key" -CAcreateserial \
  -CAserial "$work/ca.srl" -days "$DAYS" -extfile "$work/demo.ext" -out demo.crt

# The CA key is thrown away: nothing can be signed with this CA after this script exits.
echo "dev certificates written to $(pwd) (CA key discarded)"
