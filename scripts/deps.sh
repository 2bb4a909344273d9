#!/usr/bin/env bash
# deps.sh installs the external peers the interoperability checks talk to,
# each one only when it is missing, so running it twice changes nothing:
#
#   Debian   mosquitto-clients  mosquitto_pub / mosquitto_sub
#   Debian   mosquitto          the reference broker for the benchmarks
#   PyPI     paho-mqtt          Python client, MQTT 3.1.1 and 5
#   npm      mqtt (MQTT.js)     Node client over TCP and WebSocket, installed
#                               with `npm ci` from scripts/interop's lockfile
#
# It prints every install it performs and nothing else happens silently.
# Written for a fresh Debian machine where it runs as root (CI); as another
# user it uses sudo for apt-get when sudo is there.
#
# Environment:
#   PAHO_MQTT_VERSION  pip version pin (default below); keep in step with
#                      scripts/interop/README.md.
#   PYTHON             the interpreter that scripts/interop.sh runs
#                      (default python3).
set -euo pipefail

PAHO_MQTT_VERSION="${PAHO_MQTT_VERSION:-2.1.0}"
PYTHON="${PYTHON:-python3}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
interop_dir="$here/interop"

say() { printf 'deps: %s\n' "$*"; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		say "need root for: $*" >&2
		return 1
	fi
}

# --- Debian packages -------------------------------------------------------
apt_missing=()
# dpkg-query reports "install ok installed" only for a package that is fully
# installed; anything else (absent, half-configured, removed) reinstalls.
apt_need() {
	local pkg=$1 bin=$2
	if command -v "$bin" >/dev/null 2>&1 &&
		[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" = "install ok installed" ]; then
		return
	fi
	if command -v "$bin" >/dev/null 2>&1 && ! command -v dpkg-query >/dev/null 2>&1; then
		return # not Debian, but the program is there: good enough
	fi
	apt_missing+=("$pkg")
}
apt_need mosquitto-clients mosquitto_sub
# The broker binary lives in /usr/sbin, which is not on every user's PATH.
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
	apt_missing+=(mosquitto)
elif command -v dpkg-query >/dev/null 2>&1 &&
	[ "$(dpkg-query -W -f='${Status}' mosquitto 2>/dev/null || true)" != "install ok installed" ]; then
	apt_missing+=(mosquitto)
fi

# python3 -m pip is needed below; Debian ships it separately.
if ! command -v "$PYTHON" >/dev/null 2>&1; then
	apt_missing+=(python3 python3-pip)
elif ! "$PYTHON" -m pip --version >/dev/null 2>&1 &&
	! "$PYTHON" -c 'import paho.mqtt' >/dev/null 2>&1; then
	apt_missing+=(python3-pip)
fi
if ! command -v npm >/dev/null 2>&1; then
	apt_missing+=(nodejs npm)
fi

if [ "${#apt_missing[@]}" -gt 0 ]; then
	say "apt-get install ${apt_missing[*]}"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
	# On a machine with systemd the package starts a broker on :1883. Our
	# scripts start their own brokers on free ports, so the system one is only
	# in the way (and would take 1883 from anything the user runs by hand).
	if printf '%s\n' "${apt_missing[@]}" | grep -qx mosquitto &&
		command -v systemctl >/dev/null 2>&1 &&
		systemctl is-active --quiet mosquitto 2>/dev/null; then
		say "stopping and disabling the mosquitto system service"
		as_root systemctl disable --now mosquitto >/dev/null 2>&1 || true
	fi
else
	say "mosquitto, mosquitto-clients: present"
fi

# --- Python paho-mqtt ------------------------------------------------------
have_paho() {
	"$PYTHON" - "$PAHO_MQTT_VERSION" <<'PY' >/dev/null 2>&1
import sys
import paho.mqtt
sys.exit(0 if paho.mqtt.__version__ == sys.argv[1] else 1)
PY
}
if have_paho; then
	say "python paho-mqtt $PAHO_MQTT_VERSION: present"
else
	say "pip install paho-mqtt==$PAHO_MQTT_VERSION"
	pip_args=(install --quiet --disable-pip-version-check --root-user-action=ignore "paho-mqtt==$PAHO_MQTT_VERSION")
	# A virtualenv or pyenv interpreter takes a plain install. Debian's system
	# interpreter is "externally managed" (PEP 668): there the package goes
	# into the user's site directory, which the same interpreter reads.
	if ! "$PYTHON" -m pip "${pip_args[@]}"; then
		say "plain pip install refused; installing into the user site directory"
		"$PYTHON" -m pip "${pip_args[@]}" --user --break-system-packages
	fi
	have_paho || { say "paho-mqtt $PAHO_MQTT_VERSION still not importable by $PYTHON" >&2; exit 1; }
fi

# --- Node MQTT.js ----------------------------------------------------------
have_mqttjs() {
	(cd "$interop_dir" && node -e '
const want = require("./package.json").dependencies.mqtt;
const got = require("mqtt/package.json").version;
process.exit(got === want ? 0 : 1);
') >/dev/null 2>&1
}
if have_mqttjs; then
	say "node mqtt (MQTT.js): present"
else
	say "npm ci in scripts/interop (MQTT.js)"
	(cd "$interop_dir" && npm ci --no-audit --no-fund --loglevel=error)
	have_mqttjs || { say "MQTT.js still not loadable from $interop_dir" >&2; exit 1; }
fi

say "all interop peers installed"
