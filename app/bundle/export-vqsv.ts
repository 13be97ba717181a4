/**
 * Export target: a bash script of libvirt `virt-qemu-sev-validate` command lines, one per bundle row, for
 * owners who validate by hand. The script takes the launch state (measurement, API version, build, TIK) and
 * the input files from arguments or the environment, checks each file's SHA-256 against the bundle, then
 * runs the validator row by row until one prints libvirt's "OK: Looks good to me".
 *
 * libvirt's tool hashes files itself, so it needs the firmware (and kernel/initrd) files, not their hashes;
 * it builds only the legacy VMSA from --cpu-family/--cpu-model/--cpu-stepping, so kvm-init2 rows pass the
 * two VMSA pages as files (--vmsa-cpu0/--vmsa-cpu1), embedded in the script as base64.
 */
import { toBase64, toHex } from '../sev/bytes';
import { EMPTY_SHA256, hashCmdline } from '../digest/hashes-table';
import { buildVmsaPair } from '../digest/vmsa';
import type { BundleDocument, BundleRow } from './bundle';
import { BundleError } from './errors';

/** Quotes a string for bash as one word: single quotes, with embedded ones as '\''. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const EMPTY_SHA = toHex(EMPTY_SHA256);
const EMPTY_CMDLINE_SHA = toHex(hashCmdline(''));

function rowLabel(r: BundleRow): string {
  if (!r['sev-es']) return `row ${r.row}: SEV${r['kernel-hashes-table'] ? ' + kernel hashes' : ''}`;
  const s = r['cpu-signature']!;
  return `row ${r.row}: SEV-ES, ${r.cpus} vCPU(s), ${s.name ?? 'cpu'} ${s.family}/${s.model}/${s.stepping} (${s.eax}), ${r['vmsa-variant']} VMSA`;
}

/** The bash script for a bundle (see the file comment). */
export function exportVqsvScript(doc: BundleDocument): string {
  const b = doc.body;
  const k = b.kernel;
  if (k && k.cmdline === undefined && k['cmdline-hash'] !== EMPTY_CMDLINE_SHA) {
    throw new BundleError(
      'bundle-export-unsupported',
      "libvirt's validator needs the kernel command line text, and this bundle has only its hash",
    );
  }
  const needsVmsaFiles = b.rows.some((r) => r['vmsa-variant'] === 'kvm-init2');
  if (needsVmsaFiles && b.firmware['reset-address'] === undefined) {
    throw new BundleError('bundle-export-unsupported', 'SEV-ES rows need the firmware reset address');
  }

  const L: string[] = [];
  const signer = doc.signature ? `signed by ${doc.signature.fingerprint}` : 'UNSIGNED';
  L.push(
    '#!/usr/bin/env bash',
    `# SEV Attest: libvirt virt-qemu-sev-validate command lines for VM ${b.vm.id} (${b.rows.length} row(s)).`,
    `# From a measurement bundle created ${b['created-at']}, ${signer}.`,
    '#',
    '# usage: bash THIS-SCRIPT [options]; every option can come from the environment variable named with it.',
    '#   --measurement B64  SEV_MEASUREMENT  the launch measurement (virsh domlaunchsecinfo: sev-measurement)',
    '#   --api-major N      SEV_API_MAJOR    --api-minor N SEV_API_MINOR   --build-id N SEV_BUILD_ID',
    '#   --tik FILE         SEV_TIK          the 16-byte TIK of this launch (or --tk FILE / SEV_TK: TEK||TIK)',
    '#   --tek FILE         SEV_TEK          optional: a zero TEK is used when absent (this script injects no secret)',
    `#   --firmware FILE    SEV_FIRMWARE     must have SHA-256 ${b.firmware.sha256} (${b.firmware.size} bytes)`,
  );
  if (k) {
    L.push(`#   --kernel FILE      SEV_KERNEL       must have SHA-256 ${k['kernel-hash']}`);
    if (k['initrd-hash'] !== EMPTY_SHA)
      L.push(`#   --initrd FILE      SEV_INITRD       must have SHA-256 ${k['initrd-hash']}`);
  }
  L.push(
    '#   --row N                             try only row N (default: each row until one matches)',
    '#   --list                              print the rows and exit',
    '#   --validator FILE   SEV_VALIDATOR    default /usr/bin/virt-qemu-sev-validate',
    '#   --python FILE      SEV_PYTHON       runs the validator; default /usr/bin/python3 when present',
    '# Exit status: 0 a row matched (the validator printed OK), 1 no row matched, 2 a usage or file problem.',
    '#',
    ...b.rows.map((r) => `#   ${rowLabel(r)}: ${r.digest}`),
    '',
    'set -u',
    'MEASUREMENT="${SEV_MEASUREMENT:-}"; API_MAJOR="${SEV_API_MAJOR:-}"; API_MINOR="${SEV_API_MINOR:-}"',
    'BUILD_ID="${SEV_BUILD_ID:-}"; TIK="${SEV_TIK:-}"; TEK="${SEV_TEK:-}"; TK="${SEV_TK:-}"',
    'FIRMWARE="${SEV_FIRMWARE:-}"; KERNEL="${SEV_KERNEL:-}"; INITRD="${SEV_INITRD:-}"',
    'VALIDATOR="${SEV_VALIDATOR:-/usr/bin/virt-qemu-sev-validate}"; PYTHON="${SEV_PYTHON:-/usr/bin/python3}"',
    'ONLY_ROW=""; LIST=0',
    'die() { echo "$0: $*" >&2; exit 2; }',
    'while [ $# -gt 0 ]; do',
    '  case "$1" in',
    '    --measurement=*) MEASUREMENT="${1#*=}" ;; --measurement) MEASUREMENT="${2-}"; shift ;;',
    '    --api-major=*) API_MAJOR="${1#*=}" ;; --api-major) API_MAJOR="${2-}"; shift ;;',
    '    --api-minor=*) API_MINOR="${1#*=}" ;; --api-minor) API_MINOR="${2-}"; shift ;;',
    '    --build-id=*) BUILD_ID="${1#*=}" ;; --build-id) BUILD_ID="${2-}"; shift ;;',
    '    --tik=*) TIK="${1#*=}" ;; --tik) TIK="${2-}"; shift ;;',
    '    --tek=*) TEK="${1#*=}" ;; --tek) TEK="${2-}"; shift ;;',
    '    --tk=*) TK="${1#*=}" ;; --tk) TK="${2-}"; shift ;;',
    '    --firmware=*) FIRMWARE="${1#*=}" ;; --firmware) FIRMWARE="${2-}"; shift ;;',
    '    --kernel=*) KERNEL="${1#*=}" ;; --kernel) KERNEL="${2-}"; shift ;;',
    '    --initrd=*) INITRD="${1#*=}" ;; --initrd) INITRD="${2-}"; shift ;;',
    '    --validator=*) VALIDATOR="${1#*=}" ;; --validator) VALIDATOR="${2-}"; shift ;;',
    '    --python=*) PYTHON="${1#*=}" ;; --python) PYTHON="${2-}"; shift ;;',
    '    --row=*) ONLY_ROW="${1#*=}" ;; --row) ONLY_ROW="${2-}"; shift ;;',
    '    --list) LIST=1 ;;',
    '    -h|--help) sed -n "2,/^$/p" "$0" | sed "s/^# \\{0,1\\}//"; exit 0 ;;',
    '    *) die "unknown option $1 (see --help)" ;;',
    '  esac',
    '  shift',
    'done',
    '',
    'ROWS=(' + b.rows.map((r) => shellQuote(rowLabel(r))).join(' ') + ')',
    `if [ "$LIST" = 1 ]; then printf '%s\\n' "\${ROWS[@]}"; exit 0; fi`,
    '',
    'for v in MEASUREMENT API_MAJOR API_MINOR BUILD_ID FIRMWARE; do',
    '  [ -n "${!v}" ] || die "--$(echo "$v" | tr "A-Z_" "a-z-") (or SEV_$v) is required"',
    'done',
    'for v in API_MAJOR API_MINOR BUILD_ID; do',
    '  case "${!v}" in ""|*[!0-9]*) die "$v must be a decimal number, got \'${!v}\'" ;; esac',
    'done',
    'if [ -n "$ONLY_ROW" ]; then',
    '  case "$ONLY_ROW" in *[!0-9]*) die "--row must be a row number" ;; esac',
    `  [ "$ONLY_ROW" -lt ${b.rows.length} ] || die "--row must be below ${b.rows.length}"`,
    'fi',
    'command -v sha256sum >/dev/null || die "sha256sum (coreutils) is needed to check the input files"',
    'check_sha() { # FILE EXPECTED WHAT',
    '  [ -r "$1" ] || die "$3 $1 is not readable"',
    '  local got; got=$(sha256sum < "$1" | cut -d" " -f1)',
    '  [ "$got" = "$2" ] || die "$3 $1 has SHA-256 $got, the bundle expects $2"',
    '}',
    `check_sha "$FIRMWARE" ${b.firmware.sha256} firmware`,
  );
  if (k) {
    L.push(
      '[ -n "$KERNEL" ] || die "--kernel (or SEV_KERNEL) is required: the bundle measures a kernel"',
      `check_sha "$KERNEL" ${k['kernel-hash']} kernel`,
    );
    if (k['initrd-hash'] !== EMPTY_SHA) {
      L.push(
        '[ -n "$INITRD" ] || die "--initrd (or SEV_INITRD) is required: the bundle measures an initrd"',
        `check_sha "$INITRD" ${k['initrd-hash']} initrd`,
      );
    } else {
      L.push('[ -z "$INITRD" ] || die "the bundle measures no initrd; drop --initrd"');
    }
  }
  L.push(
    'WORK=$(mktemp -d) || die "cannot create a temporary directory"',
    'trap \'rm -rf "$WORK"\' EXIT',
    'KEYS=()',
    'if [ -n "$TK" ]; then',
    '  [ -z "$TIK$TEK" ] || die "give --tk or --tik/--tek, not both"',
    '  KEYS=("--tk=$TK")',
    'else',
    '  [ -n "$TIK" ] || die "--tik FILE (or SEV_TIK, or --tk) is required"',
    '  if [ -z "$TEK" ]; then TEK="$WORK/zero-tek.bin"; head -c 16 /dev/zero > "$TEK"; fi',
    '  KEYS=("--tik=$TIK" "--tek=$TEK")',
    'fi',
  );
  // The VMSA pages of each (signature, kvm-init2) pair, decoded once.
  const vmsaFiles = new Map<string, { bsp: string; ap: string }>();
  if (needsVmsaFiles) {
    for (const r of b.rows) {
      if (r['vmsa-variant'] !== 'kvm-init2') continue;
      const s = r['cpu-signature']!;
      const key = s.eax.slice(2);
      if (vmsaFiles.has(key)) continue;
      const pair = buildVmsaPair(b.firmware['reset-address']!, s, 'kvm-init2');
      const bsp = `$WORK/vmsa-kvm-init2-${key}-cpu0.bin`;
      const ap = `$WORK/vmsa-kvm-init2-${key}-cpu1.bin`;
      vmsaFiles.set(key, { bsp, ap });
      L.push(
        `base64 -d > "${bsp}" <<'VMSA'`,
        ...wrap(toBase64(pair.bsp)),
        'VMSA',
        `base64 -d > "${ap}" <<'VMSA'`,
        ...wrap(toBase64(pair.ap)),
        'VMSA',
      );
    }
  }
  const common = [
    '"--measurement=$MEASUREMENT"',
    '"--api-major=$API_MAJOR"',
    '"--api-minor=$API_MINOR"',
    '"--build-id=$BUILD_ID"',
    `--policy=${b.policy}`,
    '"${KEYS[@]}"',
    '"--firmware=$FIRMWARE"',
  ];
  if (k) {
    common.push('"--kernel=$KERNEL"');
    if (k['initrd-hash'] !== EMPTY_SHA) common.push('"--initrd=$INITRD"');
    if (k.cmdline !== undefined && k.cmdline !== '') common.push(shellQuote(`--cmdline=${k.cmdline}`));
  }
  L.push(
    'run_validator() {',
    '  if [ -x "$PYTHON" ]; then "$PYTHON" "$VALIDATOR" "$@"; else "$VALIDATOR" "$@"; fi',
    '}',
    `COMMON=(${common.join(' ')})`,
  );
  for (const r of b.rows) {
    const args: string[] = [];
    if (r['sev-es']) {
      const s = r['cpu-signature']!;
      args.push(`--num-cpus=${r.cpus}`);
      if (r['vmsa-variant'] === 'legacy') {
        args.push(`--cpu-family=${s.family}`, `--cpu-model=${s.model}`, `--cpu-stepping=${s.stepping}`);
      } else {
        const f = vmsaFiles.get(s.eax.slice(2))!;
        args.push(`"--vmsa-cpu0=${f.bsp}"`, `"--vmsa-cpu1=${f.ap}"`);
      }
    }
    L.push(`row_${r.row}() { run_validator "\${COMMON[@]}"${args.length ? ' ' + args.join(' ') : ''}; }`);
  }
  L.push(
    '',
    'try_row() { # N',
    '  local out status',
    '  out=$(row_$1 2>&1); status=$?',
    '  if [ $status -eq 0 ]; then',
    '    echo "${ROWS[$1]}: matched"',
    '    printf "%s\\n" "$out"',
    '    exit 0',
    '  fi',
    '  if [ $status -ne 1 ]; then',
    '    printf "%s\\n" "$out" >&2',
    '    die "the validator failed on ${ROWS[$1]} (exit $status)"',
    '  fi',
    '  echo "${ROWS[$1]}: no match" >&2',
    '}',
    'if [ -n "$ONLY_ROW" ]; then',
    '  try_row "$ONLY_ROW"',
    'else',
    `  for ((i = 0; i < ${b.rows.length}; i++)); do try_row "$i"; done`,
    'fi',
    'echo "$0: the measurement matches none of the ${#ROWS[@]} row(s); the VM is not trustworthy" >&2',
    'exit 1',
    '',
  );
  return L.join('\n');
}

function wrap(s: string, width = 76): string[] {
  const out: string[] = [];
  for (let i = 0; i < s.length; i += width) out.push(s.slice(i, i + width));
  return out;
}
