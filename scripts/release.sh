#!/usr/bin/env bash
# Build, package, checksum and sign a release of terraform-provider-cxflow in
# the layout the Terraform Registry, GitHub release assets and provider mirrors
# expect.
#
#   scripts/release.sh VERSION            (or: make release VERSION=1.2.3)
#
# Writes to dist/ (or $CXFLOW_DIST_DIR), replacing earlier output of VERSION:
#   terraform-provider-cxflow_<v>_<os>_<arch>.zip  holds the binary terraform-provider-cxflow_v<v>
#   terraform-provider-cxflow_<v>_manifest.json    copy of terraform-registry-manifest.json
#   terraform-provider-cxflow_<v>_SHA256SUMS       sha256 of every zip and the manifest
#   terraform-provider-cxflow_<v>_SHA256SUMS.sig   detached binary GPG signature of SHA256SUMS
#
# Signing key (required; it never enters the repository). Exactly one of:
#   CXFLOW_GPG_KEY_FILE     path of a file holding the secret key (armored or binary)
#   CXFLOW_GPG_PRIVATE_KEY  the ASCII-armored secret key itself (e.g. a CI secret)
# with optionally
#   CXFLOW_GPG_PASSPHRASE   the key's passphrase (omit for an unprotected key)
#   CXFLOW_GPG_KEY_ID       fingerprint/ID to sign with when the key material holds several
# The key is imported into a throwaway GNUPGHOME (mktemp -d), removed on exit
# together with its gpg-agent. gpg runs in batch mode with loopback pinentry.
#
# Build:
#   CXFLOW_RELEASE_PROFILE  cargo profile (default: release)
#   CXFLOW_RELEASE_BINARY   package this prebuilt binary for the host platform
#                           instead of building (tests reuse the debug binary;
#                           packing and signing are the same code path)
#   CXFLOW_RELEASE_TARGETS  space-separated Rust target triples to build
#                           (default: the host triple)
#   CXFLOW_DIST_DIR         output directory (default: <repo>/dist)
#   SOURCE_DATE_EPOCH       timestamp stored in the zips (default: HEAD's commit time)
#
# Targets. The host here is x86_64-unknown-linux-gnu -> linux_amd64, the only
# platform this toolchain can build: rustup has no other target's std installed
# and there are no cross linkers or cross C compilers (aws-lc-sys compiles C for
# the target). These need extra tooling:
#   linux_arm64    aarch64-unknown-linux-gnu   rustup target add aarch64-unknown-linux-gnu;
#                                              apt-get install gcc-aarch64-linux-gnu; export
#                                              CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
#                                              CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
#   darwin_amd64   x86_64-apple-darwin         a macOS SDK (build on a macOS runner, or osxcross)
#   darwin_arm64   aarch64-apple-darwin        as darwin_amd64
#   windows_amd64  x86_64-pc-windows-gnu       rustup target add x86_64-pc-windows-gnu;
#                                              apt-get install gcc-mingw-w64-x86-64
# Then e.g. CXFLOW_RELEASE_TARGETS="x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu"
# make release VERSION=1.2.3. All platforms of a release must be packed and
# signed in one run: SHA256SUMS covers every zip and is signed once.
set -euo pipefail

NAME=terraform-provider-cxflow
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MANIFEST="$ROOT/terraform-registry-manifest.json"

log() { printf '[release] %s\n' "$*"; }
die() { printf '[release] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
    cat >&2 <<EOF
usage: scripts/release.sh VERSION      (or: make release VERSION=x.y.z)
VERSION is a semantic version without a leading v, e.g. 1.2.3 or 1.3.0-rc.1.
A signing key is required: set CXFLOW_GPG_KEY_FILE=/path/to/secret-key.asc or
CXFLOW_GPG_PRIVATE_KEY="\$(cat secret-key.asc)" (plus CXFLOW_GPG_PASSPHRASE if it
has one). See docs/releasing.md.
EOF
    exit 2
}

# --- 1. arguments and inputs ----------------------------------------------------------
[ "$#" -eq 1 ] || usage
VERSION=$1
[ -n "$VERSION" ] || usage
case "$VERSION" in
    v[0-9]*) die "VERSION '$VERSION' must not start with 'v' (use ${VERSION#v}; the v is added where the conventions want it)" ;;
esac
# Semantic versioning 2.0.0, without build metadata: Terraform provider
# versions cannot carry "+build" (it is ignored when comparing versions).
num='(0|[1-9][0-9]*)'
ident='([0-9A-Za-z-]+)'
semver="^$num\\.$num\\.$num(-$ident(\\.$ident)*)?\$"
if ! [[ "$VERSION" =~ $semver ]]; then
    if [[ "$VERSION" == *+* ]]; then
        die "VERSION '$VERSION' has build metadata (+...), which Terraform provider versions do not support"
    fi
    die "VERSION '$VERSION' is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE], no leading zeros)"
fi
# Numeric prerelease identifiers must not have leading zeros either.
if [[ "$VERSION" == *-* ]]; then
    IFS=. read -r -a pre <<<"${VERSION#*-}"
    for p in "${pre[@]}"; do
        [[ "$p" =~ ^0[0-9]+$ ]] && die "VERSION '$VERSION': prerelease identifier '$p' has a leading zero"
    done
fi

if [ -n "${CXFLOW_GPG_KEY_FILE:-}" ] && [ -n "${CXFLOW_GPG_PRIVATE_KEY:-}" ]; then
    die "both CXFLOW_GPG_KEY_FILE and CXFLOW_GPG_PRIVATE_KEY are set; set only one"
fi
if [ -n "${CXFLOW_GPG_KEY_FILE:-}" ]; then
    [ -f "$CXFLOW_GPG_KEY_FILE" ] && [ -r "$CXFLOW_GPG_KEY_FILE" ] \
        || die "CXFLOW_GPG_KEY_FILE=$CXFLOW_GPG_KEY_FILE is not a readable file"
elif [ -z "${CXFLOW_GPG_PRIVATE_KEY:-}" ]; then
    die "no signing key given: set CXFLOW_GPG_KEY_FILE=/path/to/secret-key.asc or CXFLOW_GPG_PRIVATE_KEY='<armored secret key>' (and CXFLOW_GPG_PASSPHRASE if the key has one); see docs/releasing.md"
fi

for c in gpg gpgconf zip sha256sum; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' not found; run scripts/bootstrap.sh (make tools)"
done
[ -f "$MANIFEST" ] || die "$MANIFEST is missing"
grep -q '"6.0"' "$MANIFEST" || die "$MANIFEST does not list protocol version 6.0"

if [ -n "${CXFLOW_RELEASE_BINARY:-}" ] && [ -n "${CXFLOW_RELEASE_TARGETS:-}" ]; then
    die "CXFLOW_RELEASE_BINARY packages one host binary; it cannot be combined with CXFLOW_RELEASE_TARGETS"
fi

cargo_version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)
if [ "$cargo_version" != "$VERSION" ]; then
    log "note: Cargo.toml says version $cargo_version; the binary's --version reports that, the release is named $VERSION"
fi

DIST=${CXFLOW_DIST_DIR:-$ROOT/dist}
mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)
PROFILE=${CXFLOW_RELEASE_PROFILE:-release}

# --- 2. temporary space and cleanup ------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cxflow-release.XXXXXX")
GNUPGHOME=$(mktemp -d "${TMPDIR:-/tmp}/cxflow-gnupg.XXXXXX")
export GNUPGHOME
chmod 700 "$GNUPGHOME"
cleanup() {
    rc=$?
    gpgconf --homedir "$GNUPGHOME" --kill all >/dev/null 2>&1 || true
    rm -rf "$GNUPGHOME" "$WORK"
    [ "$rc" -eq 0 ] || printf '[release] FAILED (exit %s)\n' "$rc" >&2
}
trap cleanup EXIT

# --- 3. platforms --------------------------------------------------------------------------
host_triple=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p' || true)
if [ -z "$host_triple" ]; then
    case "$(uname -s)-$(uname -m)" in
        Linux-x86_64) host_triple=x86_64-unknown-linux-gnu ;;
        Linux-aarch64) host_triple=aarch64-unknown-linux-gnu ;;
        *) die "cannot tell the host platform (no rustc on PATH)" ;;
    esac
fi

# Terraform's os_arch name for a Rust target triple.
platform_of() {
    case "$1" in
        x86_64-unknown-linux-*) echo linux_amd64 ;;
        aarch64-unknown-linux-*) echo linux_arm64 ;;
        i686-unknown-linux-*) echo linux_386 ;;
        armv7-unknown-linux-*|arm-unknown-linux-*) echo linux_arm ;;
        x86_64-apple-darwin) echo darwin_amd64 ;;
        aarch64-apple-darwin) echo darwin_arm64 ;;
        x86_64-pc-windows-*) echo windows_amd64 ;;
        aarch64-pc-windows-*) echo windows_arm64 ;;
        x86_64-unknown-freebsd) echo freebsd_amd64 ;;
        *) return 1 ;;
    esac
}

read -r -a targets <<<"${CXFLOW_RELEASE_TARGETS:-$host_triple}"
[ "${#targets[@]}" -gt 0 ] || die "CXFLOW_RELEASE_TARGETS is empty"
declare -A seen=()
for t in "${targets[@]}"; do
    p=$(platform_of "$t") || die "no Terraform platform name known for target '$t'"
    [ -z "${seen[$p]:-}" ] || die "targets ${seen[$p]} and $t both make $p"
    seen[$p]=$t
done

# --- 4. signing key (before the long build, so a bad key fails fast) -------------------------
log "importing the signing key into a temporary GNUPGHOME"
import_log="$WORK/gpg-import.log"
if [ -n "${CXFLOW_GPG_KEY_FILE:-}" ]; then
    gpg --batch --no-tty --import "$CXFLOW_GPG_KEY_FILE" >"$import_log" 2>&1 \
        || { cat "$import_log" >&2; die "gpg could not import CXFLOW_GPG_KEY_FILE=$CXFLOW_GPG_KEY_FILE"; }
else
    printf '%s\n' "$CXFLOW_GPG_PRIVATE_KEY" | gpg --batch --no-tty --import >"$import_log" 2>&1 \
        || { cat "$import_log" >&2; die "gpg could not import the key in CXFLOW_GPG_PRIVATE_KEY"; }
fi
mapfile -t secret_fprs < <(gpg --batch --with-colons --list-secret-keys 2>/dev/null \
    | awk -F: '$1 == "sec" { want = 1; next } $1 == "fpr" && want { print $10; want = 0 }')
[ "${#secret_fprs[@]}" -gt 0 ] || die "the key material holds no secret key (was a public key given?)"
if [ -n "${CXFLOW_GPG_KEY_ID:-}" ]; then
    signer=$CXFLOW_GPG_KEY_ID
    gpg --batch --list-secret-keys "$signer" >/dev/null 2>&1 || die "CXFLOW_GPG_KEY_ID=$signer matches no imported secret key"
else
    [ "${#secret_fprs[@]}" -eq 1 ] || log "the key material holds ${#secret_fprs[@]} secret keys; signing with the first (set CXFLOW_GPG_KEY_ID to choose)"
    signer=${secret_fprs[0]}
fi
log "signing key: $signer"

# gpg with the passphrase (if any) on fd 3, never on the command line.
gpg_with_passphrase() {
    if [ -n "${CXFLOW_GPG_PASSPHRASE:-}" ]; then
        gpg --batch --no-tty --yes --pinentry-mode loopback --passphrase-fd 3 "$@" 3< <(printf '%s' "$CXFLOW_GPG_PASSPHRASE")
    else
        gpg --batch --no-tty --yes --pinentry-mode loopback --passphrase '' "$@"
    fi
}

# Prove key and passphrase work now rather than after a long build.
printf 'probe\n' >"$WORK/probe"
gpg_with_passphrase --local-user "$signer" --detach-sign --output "$WORK/probe.sig" "$WORK/probe" >"$WORK/gpg-probe.log" 2>&1 \
    || { cat "$WORK/gpg-probe.log" >&2; die "cannot sign with $signer (wrong or missing CXFLOW_GPG_PASSPHRASE?)"; }

# --- 5. binaries ------------------------------------------------------------------------------
declare -A binary_of=()
if [ -n "${CXFLOW_RELEASE_BINARY:-}" ]; then
    [ -f "$CXFLOW_RELEASE_BINARY" ] && [ -x "$CXFLOW_RELEASE_BINARY" ] \
        || die "CXFLOW_RELEASE_BINARY=$CXFLOW_RELEASE_BINARY is not an executable file"
    log "packaging the prebuilt $CXFLOW_RELEASE_BINARY (no build)"
    binary_of[$host_triple]=$CXFLOW_RELEASE_BINARY
else
    command -v cargo >/dev/null 2>&1 || die "cargo not found"
    target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
    case "$PROFILE" in dev|test) profile_dir=debug ;; bench) profile_dir=release ;; *) profile_dir=$PROFILE ;; esac
    for t in "${targets[@]}"; do
        if [ "$t" = "$host_triple" ]; then
            log "cargo build --profile $PROFILE (host $t)"
            (cd "$ROOT" && cargo build --locked --profile "$PROFILE" --bin "$NAME")
            out="$target_dir/$profile_dir/$NAME"
        else
            log "cargo build --profile $PROFILE --target $t"
            (cd "$ROOT" && cargo build --locked --profile "$PROFILE" --bin "$NAME" --target "$t") \
                || die "building for $t failed; see the Targets notes at the top of scripts/release.sh"
            out="$target_dir/$t/$profile_dir/$NAME"
        fi
        case "$t" in *windows*) out="$out.exe" ;; esac
        [ -f "$out" ] || die "cargo finished but $out is missing"
        binary_of[$t]=$out
    done
fi

# A host binary must at least start and name itself.
if [ -n "${binary_of[$host_triple]:-}" ]; then
    got=$("${binary_of[$host_triple]}" --version 2>&1) || die "${binary_of[$host_triple]} --version failed: $got"
    [[ "$got" == "$NAME "* ]] || die "${binary_of[$host_triple]} is not $NAME (--version said: $got)"
fi

# --- 6. pack -----------------------------------------------------------------------------------
rm -f "$DIST/${NAME}_${VERSION}_"*
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || true)}
[[ "$epoch" =~ ^[0-9]+$ ]] || epoch=315532800 # 1980-01-01, the zip format's earliest date
# zip stores local time; pin the zone so the same epoch gives the same bytes everywhere.
export TZ=UTC

artifacts=()
for t in "${targets[@]}"; do
    platform=$(platform_of "$t")
    exe="${NAME}_v${VERSION}"
    case "$t" in *windows*) exe="$exe.exe" ;; esac
    stage="$WORK/stage-$platform"
    mkdir -p "$stage"
    cp "${binary_of[$t]}" "$stage/$exe"
    chmod 0755 "$stage/$exe"
    touch -d "@$epoch" "$stage/$exe"
    zipname="${NAME}_${VERSION}_${platform}.zip"
    # -X: no extra attributes (uid/gid, extended timestamps); -D: no directory entries.
    (cd "$stage" && zip -X -D -q "$WORK/$zipname" "$exe")
    mv "$WORK/$zipname" "$DIST/$zipname"
    artifacts+=("$zipname")
    log "packed $zipname"
done

manifest_name="${NAME}_${VERSION}_manifest.json"
cp "$MANIFEST" "$DIST/$manifest_name"
artifacts+=("$manifest_name")

# --- 7. checksums and signature --------------------------------------------------------------------
sums="${NAME}_${VERSION}_SHA256SUMS"
(
    cd "$DIST"
    printf '%s\n' "${artifacts[@]}" | LC_ALL=C sort | while IFS= read -r f; do sha256sum -- "$f"; done >"$WORK/$sums"
)
mv "$WORK/$sums" "$DIST/$sums"
log "wrote $sums"

sign_log="$WORK/gpg-sign.log"
gpg_with_passphrase --local-user "$signer" --detach-sign --output "$DIST/$sums.sig" "$DIST/$sums" >"$sign_log" 2>&1 \
    || { cat "$sign_log" >&2; rm -f "$DIST/${NAME}_${VERSION}_"*; die "signing $sums failed"; }
gpg --batch --no-tty --verify "$DIST/$sums.sig" "$DIST/$sums" >"$sign_log" 2>&1 \
    || { cat "$sign_log" >&2; die "the new signature does not verify"; }
(cd "$DIST" && sha256sum --quiet -c "$sums") || die "SHA256SUMS does not match the files"
log "signed $sums.sig with $signer"

log "release $VERSION in $DIST:"
(cd "$DIST" && ls -l "${NAME}_${VERSION}_"* | sed 's/^/[release]   /')
log "the registry needs the public key: gpg --armor --export $signer"
