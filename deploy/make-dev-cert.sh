#!/usr/bin/env bash
# A self-signed certificate for trying the compose stack on one machine (browsers will warn).
# In production put your real fullchain.pem and privkey.pem in deploy/certs/ instead.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p certs
host="${1:-localhost}"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
  -subj "/CN=${host}" -addext "subjectAltName=DNS:${host}" \
  -keyout certs/privkey.pem -out certs/fullchain.pem
echo "wrote deploy/certs/fullchain.pem and deploy/certs/privkey.pem for ${host}"
