#!/usr/bin/env bash
# certs.sh makes a test certificate authority and certificates signed by it,
# for the TLS and WSS listeners and for mTLS clients. For tests and trying
# things out, not for production.
#
#   scripts/certs.sh DIR [CLIENT_CN...]
#
# In DIR (created if missing) it writes, all PEM, keys readable by the
# owner only:
#   ca.pem, ca-key.pem            the CA (kept when both already exist, so
#                                 more clients can be added later)
#   server.pem, server-key.pem    a server certificate for localhost,
#                                 127.0.0.1 and ::1 (always made anew)
#   CN.pem, CN-key.pem            a client certificate per CLIENT_CN, whose
#                                 subject CN is CLIENT_CN (default: client1)
# and prints the files it made. A client CN must be a valid mqttd user name
# ([0-9A-Za-z_.@-], at most 64 characters): with -tls.cn-as-username the CN
# is the user name.
#
# Environment:
#   DAYS         validity of new certificates in days (default 825)
#   SERVER_SANS  extra subjectAltName entries for the server certificate,
#                e.g. "DNS:broker.example,IP:10.0.0.5"
#
# Example:
#   scripts/certs.sh /tmp/mqttd-certs client1 meter-7
#   mqttd -tls.cert /tmp/mqttd-certs/server.pem -tls.key /tmp/mqttd-certs/server-key.pem \
#         -tls.client-ca /tmp/mqttd-certs/ca.pem
#   mosquitto_pub -p 8883 --cafile /tmp/mqttd-certs/ca.pem \
#         --cert /tmp/mqttd-certs/client1.pem --key /tmp/mqttd-certs/client1-key.pem -t t -m hi
#
# Needs openssl (Debian: apt-get install openssl).
set -euo pipefail

usage() { echo "usage: $0 DIR [CLIENT_CN...]" >&2; exit 2; }
die() { echo "certs: $*" >&2; exit 1; }

[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage ;; esac
dir="$1"; shift
[ $# -ge 1 ] || set -- client1
days="${DAYS:-825}"
[[ "$days" =~ ^[1-9][0-9]*$ ]] || die "DAYS=$days is not a positive number"

command -v openssl >/dev/null 2>&1 || die "openssl not found; install it (Debian: apt-get install openssl)"

for cn in "$@"; do
	[[ "$cn" =~ ^[0-9A-Za-z_.@-]{1,64}$ ]] || die "client CN '$cn': use 1 to 64 of 0-9 A-Z a-z _ . @ - (it becomes a user name)"
	case "$cn" in ca|server) die "client CN '$cn' would overwrite the $cn files" ;; esac
done

mkdir -p "$dir"
umask 077
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
made=()

serial() { echo "0x$(openssl rand -hex 16)"; }

# newkey FILE: an EC P-256 private key.
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# sign NAME SUBJECT EXTFILE: NAME-key.pem (new) and NAME.pem, signed by the CA.
sign() {
	local name="$1" subj="$2" ext="$3"
	newkey "$dir/$name-key.pem"
	openssl req -new -key "$dir/$name-key.pem" -subj "$subj" -out "$tmp/$name.csr"
	openssl x509 -req -in "$tmp/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
		-set_serial "$(serial)" -days "$days" -sha256 -extfile "$ext" -out "$dir/$name.pem" 2>/dev/null
	openssl verify -CAfile "$dir/ca.pem" "$dir/$name.pem" >/dev/null || die "$name.pem does not verify against ca.pem"
	made+=("$dir/$name.pem" "$dir/$name-key.pem")
}

if [ -s "$dir/ca.pem" ] && [ -s "$dir/ca-key.pem" ]; then
	echo "certs: using the existing CA in $dir" >&2
else
	cat >"$tmp/ca.ext" <<-'X'
	[v3_ca]
	basicConstraints = critical, CA:TRUE, pathlen:0
	keyUsage = critical, keyCertSign, cRLSign
	subjectKeyIdentifier = hash
	X
	newkey "$dir/ca-key.pem"
	openssl req -new -x509 -key "$dir/ca-key.pem" -subj "/O=mqttd test/CN=mqttd test CA" \
		-set_serial "$(serial)" -days "$((days + 1))" -sha256 \
		-config "$tmp/ca.ext" -extensions v3_ca -out "$dir/ca.pem"
	made+=("$dir/ca.pem" "$dir/ca-key.pem")
fi

sans="DNS:localhost,IP:127.0.0.1,IP:::1"
[ -z "${SERVER_SANS:-}" ] || sans="$sans,$SERVER_SANS"
cat >"$tmp/server.ext" <<X
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $sans
authorityKeyIdentifier = keyid
X
sign server "/O=mqttd test/CN=localhost" "$tmp/server.ext"

cat >"$tmp/client.ext" <<'X'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
X
for cn in "$@"; do
	sign "$cn" "/O=mqttd test/CN=$cn" "$tmp/client.ext"
done

chmod 644 "$dir"/*.pem
chmod 600 "$dir"/*-key.pem
printf '%s\n' "${made[@]}"
