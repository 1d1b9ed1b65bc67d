#!/usr/bin/env bash
# Test certificates, made at test time with Debian's openssl (never kept in
# the repository), into the directory given:
#   ca.pem ca.key            the test CA
#   server.pem server.key    localhost / 127.0.0.1 / ::1, issued by the CA
#   server2.pem server2.key  the same names, another key (the reload tests)
#   client.pem client.key    a client certificate issued by the CA
#   other.pem other.key      self-signed: a CA, server and client of no one's
#   encrypted.key            server.key under the passphrase "secret"
# EC P-256 keys: made in milliseconds. Valid for two days.
set -euo pipefail
dir=${1:?usage: make_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 \
    -subj "/CN=wsnotify test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n' >server.ext
printf 'extendedKeyUsage=clientAuth\n' >client.ext
issue() { # name CN extfile
    openssl req "${ec[@]}" -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out "$1.pem" -days 2 -extfile "$3" 2>/dev/null
    rm -f "$1.csr"
}
issue server localhost server.ext
issue server2 localhost server.ext
issue client "wsnotify test client" client.ext
openssl req -x509 "${ec[@]}" -keyout other.key -out other.pem -days 2 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
openssl pkey -in server.key -aes128 -passout pass:secret -out encrypted.key
rm -f server.ext client.ext ca.srl
