#!/usr/bin/env bash
# Installs the Debian speech synthesizers that bench/tts_corpus.py uses:
# espeak-ng, the MBROLA engine and every MBROLA voice, flite, festival and
# its voices.  The MBROLA voices are in Debian's contrib/non-free
# components, so apt reads a private sources list and a private package
# index under $TTS_APT_DIR (default /var/tmp/deep_speaker_tts_apt); the
# system's sources and package lists are left as they are.
#
# Usage (as root, or with sudo available):  bash bench/install_tts.sh
# Does nothing when the synthesizers and their voices are already there
# (TTS_REINSTALL=1 installs anyway, e.g. to add voices).
set -euo pipefail

installed() {
    local tool
    for tool in espeak-ng mbrola flite text2wave; do
        command -v "$tool" >/dev/null 2>&1 || return 1
    done
    [ -n "$(ls /usr/share/mbrola 2>/dev/null)" ] &&
        [ -d /usr/share/festival/voices ]
}
if [ -z "${TTS_REINSTALL:-}" ] && installed; then
    echo "speech synthesizers already installed (TTS_REINSTALL=1 to redo)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: apt-get not found; install espeak-ng, mbrola," \
        "mbrola-<voice>, flite and festival with your package manager" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "error: run bench/install_tts.sh as root (no sudo found)" >&2
        exit 1
    fi
    SUDO=sudo
fi

. /etc/os-release
if [ "${ID:-}" != debian ] && [ -z "${DEBIAN_MIRROR:-}" ]; then
    echo "error: not Debian (${ID:-unknown}): install espeak-ng, mbrola," \
        "mbrola-<voice>, flite and festival(-voices) yourself" >&2
    exit 1
fi
CODENAME=${VERSION_CODENAME:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
DIR=${TTS_APT_DIR:-/var/tmp/deep_speaker_tts_apt}
$SUDO mkdir -p "$DIR/lists/partial"
COMPONENTS="main contrib non-free"
{
    echo "deb [signed-by=$KEYRING] $MIRROR $CODENAME $COMPONENTS"
    echo "deb [signed-by=$KEYRING] $MIRROR $CODENAME-updates $COMPONENTS"
    echo "deb [signed-by=$KEYRING] ${MIRROR}-security" \
        "$CODENAME-security $COMPONENTS"
} | $SUDO tee "$DIR/sources.list" >/dev/null
APT=(-o "Dir::Etc::sourcelist=$DIR/sources.list"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$DIR/lists")

$SUDO apt-get "${APT[@]}" update -qq
# Every MBROLA voice; festival voices, except the ones that are MBROLA
# voices again (en1, us1-3) and the 8 kHz copies of 16 kHz ones.
mapfile -t MBROLA < <(apt-cache "${APT[@]}" pkgnames mbrola- | sort)
mapfile -t FESTVOX < <(apt-cache "${APT[@]}" pkgnames festvox- | sort |
    grep -v -E '^festvox-(en1|us[0-9]|.*8k)$')
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get "${APT[@]}" install -y \
    -q --no-install-recommends espeak-ng mbrola flite festival \
    "${MBROLA[@]}" "${FESTVOX[@]}"
echo "installed: espeak-ng mbrola flite festival, ${#MBROLA[@]} MBROLA" \
    "voices, ${#FESTVOX[@]} festival voice packages"
