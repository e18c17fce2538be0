#!/usr/bin/env bash
# Development CA and certificates for the site broker's TLS listener. NOT for production:
# the CA key sits beside the certificates, unencrypted.
#
# Usage: scripts/make-dev-certs.sh OUT_DIR [BROKER_HOST ...]
#   STATIONS="st1 st2" scripts/make-dev-certs.sh OUT_DIR   # also client certificates
#
# Writes OUT_DIR/ca.crt, ca.key, broker.crt, broker.key (SAN: localhost, 127.0.0.1 and every
# BROKER_HOST), and OUT_DIR/<station>.crt/.key per station (CN = station id, for
# `require_certificate true` + `use_identity_as_username true`). Needs openssl >= 1.1.1.
set -euo pipefail

out=${1:?usage: $0 OUT_DIR [BROKER_HOST ...]}
shift || true
days=${DAYS:-825}
mkdir -p "$out"
cd "$out"

san="DNS:localhost,IP:127.0.0.1"
for host in "$@"; do
    if [[ $host =~ ^[0-9.]+$ ]]; then san+=",IP:$host"; else san+=",DNS:$host"; fi
done
cn=${1:-localhost}

openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" \
    -keyout ca.key -out ca.crt -subj "/O=returns-sorter/CN=returns-sorter dev CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

sign() {  # sign NAME SUBJECT EXTENSIONS
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$1.key" -out "$1.csr" \
        -subj "$2" 2>/dev/null
    printf '%b' "$3" > "$1.ext"
    openssl x509 -req -sha256 -days "$days" -in "$1.csr" -CA ca.crt -CAkey ca.key \
        -CAcreateserial -out "$1.crt" -extfile "$1.ext" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

sign broker "/O=returns-sorter/CN=$cn" \
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=$san\n"
for station in ${STATIONS:-}; do
    sign "$station" "/O=returns-sorter/CN=$station" \
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n"
done
chmod 600 ./*.key
rm -f ca.srl
echo "dev CA and certificates written to $(pwd)"
