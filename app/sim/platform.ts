/**
 * A simulated AMD SEV platform: the firmware side of the guest-owner protocol, for tests and the demo.
 * It owns its own test ARK/ASK (so its chain anchors to those, never to AMD's pinned roots), a CEK,
 * OCA, PEK, PDH and chip id, and runs LAUNCH_START / UPDATE / MEASURE / SECRET / FINISH with the
 * firmware's checks from the protocol document. The firmware logic is re-implemented here
 * (firmware-crypto.ts), independent of the owner side in app/sev/.
 */
import { createECDH, createHash, type ECDH, type Hash } from 'node:crypto';
import { concat, readU32le } from '../sev/bytes';
import { Algo, newEccCert, serializeSevCert, Usage, type SevCertificate } from '../sev/cert';
import { AmdUsage, amdCertBody, serializeAmdCert, type AmdCertificate } from '../sev/amd-cert';
import { SimFirmwareError } from './errors';
import {
  apiAtLeast,
  checkPolicy,
  computeLaunchMeasure,
  MNONCE_SIZE,
  openSecretPacket,
  parseEfiSecretTable,
  POLICY_ES,
  splitSession,
  unwrapSession,
  verifyPolicyMac,
  type SecretTableEntry,
} from './firmware-crypto';
import {
  ecdsaSlotSignature,
  leField,
  newEcKey,
  newRsaKey,
  rsaPssSignLe,
  SimRandom,
  type SimEcKey,
  type SimRsaKey,
} from './sim-keys';

export const SEV_CERT_BYTES = 2084;
export const VMSA_PAGE_SIZE = 4096;

/** Only selects the ASK/ARK key size and CEK signature algorithm (docs/protocol.md §2): Naples 2048/SHA-256, Rome+ 4096/SHA-384. */
export type SimGeneration = 'naples' | 'rome';

export interface SimPlatformOptions {
  generation?: SimGeneration;
  apiMajor?: number;
  apiMinor?: number;
  build?: number;
  /** Like current firmware (default true): the exported chain's CEK has empty signature slots. */
  exportUnsignedCek?: boolean;
  /** Makes the ECC keys, chip id and nonces reproducible. RSA ARK/ASK keys are always fresh. */
  seed?: Uint8Array | string;
}

export interface LaunchStartInput {
  policy: number;
  /** The guest owner's 2084-byte GODH certificate (dh_cert). */
  ownerCert: Uint8Array;
  /** The 128-byte session blob. */
  session: Uint8Array;
}

export interface LaunchSecretResult {
  /** The decrypted, padded secret table. */
  plaintext: Uint8Array;
  /** The table's entries as the guest would see them. */
  entries: SecretTableEntry[];
}

const DEFAULT_API = { major: 1, minor: 51, build: 3 };
/** The signed test CEKs in virtee's data (likely KDS-issued) carry API 0.14 (docs/protocol.md §8). */
const KDS_CEK_API = { major: 0, minor: 14 };

function requireBytes(v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new SimFirmwareError('INVALID_PARAM', `${what} must be bytes`);
  return v;
}

function requireU8(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 255) throw new RangeError(`${what} must be a byte, got ${v}`);
  return v;
}

export class SimulatedSevPlatform {
  readonly generation: SimGeneration;
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly build: number;
  /** PDH_CERT_EXPORT: the 2084-byte PDH. */
  readonly pdh: Uint8Array;
  /** PDH_CERT_EXPORT: PEK || OCA || CEK (6252 bytes). */
  readonly certChain: Uint8Array;
  /** The CEK as AMD's key server would return it: ASK-signed, API 0.14, same key as the exported one. */
  readonly signedCek: Uint8Array;
  readonly ark: Uint8Array;
  readonly ask: Uint8Array;
  /** ASK || ARK as AMD publishes it, for tests to add as an extra trusted root. */
  readonly askArk: Uint8Array;
  /** GET_ID: 64 bytes, big-endian x || y of a secp256k1 point. */
  readonly chipId: Uint8Array;

  private readonly pdhEcdh: ECDH;
  private readonly rng: SimRandom;

  private constructor(init: {
    generation: SimGeneration;
    api: { major: number; minor: number; build: number };
    pdh: Uint8Array;
    certChain: Uint8Array;
    signedCek: Uint8Array;
    ark: Uint8Array;
    ask: Uint8Array;
    chipId: Uint8Array;
    pdhKey: Pick<SimEcKey, 'd'>;
    rng: SimRandom;
  }) {
    this.generation = init.generation;
    this.apiMajor = init.api.major;
    this.apiMinor = init.api.minor;
    this.build = init.api.build;
    this.pdh = init.pdh;
    this.certChain = init.certChain;
    this.signedCek = init.signedCek;
    this.ark = init.ark;
    this.ask = init.ask;
    this.askArk = concat(init.ask, init.ark);
    this.chipId = init.chipId;
    this.pdhEcdh = createECDH('secp384r1');
    this.pdhEcdh.setPrivateKey(init.pdhKey.d);
    this.rng = init.rng;
  }

  /** Builds a platform with fresh (or seeded) keys. RSA-4096 generation ('rome') takes about a second. */
  static create(opts: SimPlatformOptions = {}): SimulatedSevPlatform {
    const generation = opts.generation ?? 'naples';
    const api = {
      major: requireU8(opts.apiMajor ?? DEFAULT_API.major, 'apiMajor'),
      minor: requireU8(opts.apiMinor ?? DEFAULT_API.minor, 'apiMinor'),
      build: requireU8(opts.build ?? DEFAULT_API.build, 'build'),
    };
    const seed = typeof opts.seed === 'string' ? new TextEncoder().encode(opts.seed) : opts.seed;
    const rng = new SimRandom(seed);
    const bits = generation === 'naples' ? 2048 : 4096;
    const hash = generation === 'naples' ? 'sha256' : 'sha384';

    const arkKey = newRsaKey(bits);
    const askKey = newRsaKey(bits);
    const arkId = rng.bytes(16, 'ark-id');
    const askId = rng.bytes(16, 'ask-id');
    const ark = buildAmdCert(arkKey, arkKey, arkId, arkId, AmdUsage.ARK, hash);
    const ask = buildAmdCert(askKey, arkKey, askId, arkId, AmdUsage.ASK, hash);

    const stamp = { apiMajor: api.major, apiMinor: api.minor };
    const cekKey = newEcKey('P-384', rng, 'cek');
    const ocaKey = newEcKey('P-384', rng, 'oca');
    const pekKey = newEcKey('P-384', rng, 'pek');
    const pdhKey = newEcKey('P-384', rng, 'pdh');

    const ecdsaCert = (key: SimEcKey, usage: number, algo: number, apiStamp = stamp) =>
      newEccCert({ usage, algo, x: key.x, y: key.y, ...apiStamp });
    const signEcdsa = (c: SevCertificate, signer: SimEcKey, signerUsage: number) =>
      addSignature(c, signerUsage, Algo.ECDSA_SHA256, ecdsaSlotSignature(signer, certBody(c), 'sha256'));
    const askAlgo = generation === 'naples' ? Algo.RSA_SHA256 : Algo.RSA_SHA384;
    const signByAsk = (c: SevCertificate) => {
      const slot = new Uint8Array(512);
      slot.set(rsaPssSignLe(askKey, certBody(c), hash), 0);
      return addSignature(c, Usage.ASK, askAlgo, slot);
    };

    const oca = signEcdsa(ecdsaCert(ocaKey, Usage.OCA, Algo.ECDSA_SHA256), ocaKey, Usage.OCA);
    const exportedCek = ecdsaCert(cekKey, Usage.CEK, Algo.ECDSA_SHA256);
    const chainCek = opts.exportUnsignedCek === false ? signByAsk(exportedCek) : exportedCek;
    const kdsCek = signByAsk(
      ecdsaCert(cekKey, Usage.CEK, Algo.ECDSA_SHA256, {
        apiMajor: KDS_CEK_API.major,
        apiMinor: KDS_CEK_API.minor,
      }),
    );
    // The firmware signs a new PEK with the OCA first, then the CEK: sig1 = OCA, sig2 = CEK (docs/protocol.md §1).
    const pek = signEcdsa(
      signEcdsa(ecdsaCert(pekKey, Usage.PEK, Algo.ECDSA_SHA256), ocaKey, Usage.OCA),
      cekKey,
      Usage.CEK,
    );
    const pdh = signEcdsa(ecdsaCert(pdhKey, Usage.PDH, Algo.ECDH_SHA256), pekKey, Usage.PEK);

    const chip = newEcKey('secp256k1', rng, 'chip-id');
    return new SimulatedSevPlatform({
      generation,
      api,
      pdh: serializeSevCert(pdh),
      certChain: concat(serializeSevCert(pek), serializeSevCert(oca), serializeSevCert(chainCek)),
      signedCek: serializeSevCert(kdsCek),
      ark,
      ask,
      chipId: concat(chip.x, chip.y),
      pdhKey,
      rng,
    });
  }

  /**
   * The platform's exports and PDH private key, so another process can rebuild the same platform with
   * restore() (test tools such as the stand-in virsh: RSA ARK/ASK keys cannot be re-derived from a seed).
   */
  exportState(): SimPlatformState {
    const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
    return {
      version: 1,
      generation: this.generation,
      api: { major: this.apiMajor, minor: this.apiMinor, build: this.build },
      pdh: b64(this.pdh),
      certChain: b64(this.certChain),
      signedCek: b64(this.signedCek),
      ark: b64(this.ark),
      ask: b64(this.ask),
      chipId: b64(this.chipId),
      pdhPrivateKey: b64(this.pdhEcdh.getPrivateKey()),
    };
  }

  /** Rebuilds a platform from exportState(); its nonces are fresh (unseeded). */
  static restore(state: SimPlatformState): SimulatedSevPlatform {
    if (state?.version !== 1) throw new RangeError('unsupported simulated platform state');
    const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
    const d = bytes(state.pdhPrivateKey);
    const pdh = bytes(state.pdh);
    return new SimulatedSevPlatform({
      generation: state.generation,
      api: {
        major: requireU8(state.api.major, 'apiMajor'),
        minor: requireU8(state.api.minor, 'apiMinor'),
        build: requireU8(state.api.build, 'build'),
      },
      pdh,
      certChain: bytes(state.certChain),
      signedCek: bytes(state.signedCek),
      ark: bytes(state.ark),
      ask: bytes(state.ask),
      chipId: bytes(state.chipId),
      pdhKey: { d },
      rng: new SimRandom(),
    });
  }

  /** LAUNCH_START: checks the policy and the owner's GODH, opens the channel; returns the new guest. */
  launchStart(input: LaunchStartInput): SimulatedGuest {
    const ownerCert = requireBytes(input?.ownerCert, 'ownerCert');
    const session = requireBytes(input?.session, 'session');
    if (ownerCert.length !== SEV_CERT_BYTES) {
      throw new SimFirmwareError(
        'INVALID_LENGTH',
        `dh_cert must be ${SEV_CERT_BYTES} bytes, got ${ownerCert.length}`,
      );
    }
    const fields = splitSession(session);
    if (typeof input.policy !== 'number')
      throw new SimFirmwareError('INVALID_PARAM', 'policy must be a number');
    checkPolicy(input.policy, this.apiMajor, this.apiMinor);
    const z = this.ecdhWithOwner(ownerCert);
    const { tek, tik } = unwrapSession(z, session);
    z.fill(0);
    try {
      verifyPolicyMac(tik, input.policy, fields.policyMac);
    } catch (e) {
      tek.fill(0);
      tik.fill(0);
      throw e;
    }
    return new SimulatedGuest(this, input.policy, tek, tik, this.rng);
  }

  /** sev_cert_sanity_check(dh_cert, PDH, ECDH_SHA256) then ECDH with the PDH private key: Z = 48-byte BE x. */
  private ecdhWithOwner(cert: Uint8Array): Uint8Array {
    const invalid = (why: string): never => {
      throw new SimFirmwareError('INVALID_CERTIFICATE', `dh_cert: ${why}`);
    };
    const version = readU32le(cert, 0);
    if (version !== 1) invalid(`version must be 1, got ${version}`);
    if (readU32le(cert, 0x08) !== Usage.PDH) invalid('key usage must be PDH (0x1003)');
    if (readU32le(cert, 0x0c) !== Algo.ECDH_SHA256) invalid('key algorithm must be ECDH_SHA256 (0x3)');
    if (readU32le(cert, 0x10) !== 2) invalid('curve must be P-384 (2)');
    const qx = cert.subarray(0x14, 0x14 + 72);
    const qy = cert.subarray(0x5c, 0x5c + 72);
    for (let i = 48; i < 72; i++) {
      if (qx[i] !== 0 || qy[i] !== 0) invalid('public key coordinate does not fit P-384');
    }
    const point = concat(Uint8Array.of(4), qx.slice(0, 48).reverse(), qy.slice(0, 48).reverse());
    try {
      return new Uint8Array(this.pdhEcdh.computeSecret(point));
    } catch {
      return invalid('public key is not a valid P-384 point');
    }
  }
}

/** A simulated platform in JSON form (base64 fields): exportState() / restore(). */
export interface SimPlatformState {
  version: 1;
  generation: SimGeneration;
  api: { major: number; minor: number; build: number };
  pdh: string;
  certChain: string;
  signedCek: string;
  ark: string;
  ask: string;
  chipId: string;
  pdhPrivateKey: string;
}

type GuestState = 'LUPDATE' | 'LSECRET' | 'RUNNING';

/** One guest launch on a simulated platform, in the firmware's guest states LUPDATE → LSECRET → RUNNING. */
export class SimulatedGuest {
  private state: GuestState = 'LUPDATE';
  private readonly digest: Hash = createHash('sha256');
  private digestForTest: Uint8Array | undefined;
  private launchDigest: Uint8Array | undefined;
  private measure: Uint8Array | undefined;
  private readonly injected: SecretTableEntry[][] = [];

  constructor(
    private readonly platform: SimulatedSevPlatform,
    readonly policy: number,
    private readonly tek: Uint8Array,
    private readonly tik: Uint8Array,
    private readonly rng: SimRandom,
  ) {}

  get guestState(): GuestState {
    return this.state;
  }

  /** LAUNCH_UPDATE_DATA: the plaintext goes into the launch digest (16-byte aligned, non-empty). */
  launchUpdateData(data: Uint8Array): void {
    requireBytes(data, 'data');
    this.requireState('LUPDATE', 'LAUNCH_UPDATE_DATA');
    if (data.length === 0 || data.length % 16 !== 0) {
      throw new SimFirmwareError(
        'INVALID_LENGTH',
        `LAUNCH_UPDATE_DATA length must be a non-zero multiple of 16, got ${data.length}`,
      );
    }
    this.digest.update(data);
  }

  /** LAUNCH_UPDATE_VMSA: one 4096-byte VMSA page into the launch digest; only for an SEV-ES policy. */
  launchUpdateVmsa(page: Uint8Array): void {
    requireBytes(page, 'VMSA page');
    this.requireState('LUPDATE', 'LAUNCH_UPDATE_VMSA');
    if ((this.policy & POLICY_ES) === 0) {
      throw new SimFirmwareError('POLICY_FAILURE', 'LAUNCH_UPDATE_VMSA needs the ES policy bit');
    }
    if (page.length !== VMSA_PAGE_SIZE) {
      throw new SimFirmwareError(
        'INVALID_LENGTH',
        `a VMSA page is ${VMSA_PAGE_SIZE} bytes, got ${page.length}`,
      );
    }
    this.digest.update(page);
  }

  /**
   * TEST ONLY: replaces the launch digest by a precomputed one (the bytes fed so far are ignored).
   * A real firmware has no such command; tests use it when they have a digest but not the images.
   */
  setLaunchDigestForTest(digest: Uint8Array): void {
    requireBytes(digest, 'digest');
    this.requireState('LUPDATE', 'setLaunchDigestForTest');
    if (digest.length !== 32) throw new SimFirmwareError('INVALID_LENGTH', 'a launch digest is 32 bytes');
    this.digestForTest = Uint8Array.from(digest);
  }

  /**
   * LAUNCH_MEASURE: finalizes the launch digest and returns measure(32) || mnonce(16) with a fresh mnonce
   * (`mnonceForTest` pins it for known-answer tests).
   */
  launchMeasure(opts: { mnonceForTest?: Uint8Array } = {}): Uint8Array {
    this.requireState('LUPDATE', 'LAUNCH_MEASURE');
    const mnonce = opts.mnonceForTest
      ? Uint8Array.from(opts.mnonceForTest)
      : this.rng.bytes(MNONCE_SIZE, 'mnonce');
    if (mnonce.length !== MNONCE_SIZE) throw new SimFirmwareError('INVALID_LENGTH', 'mnonce is 16 bytes');
    this.launchDigest = this.digestForTest ?? new Uint8Array(this.digest.digest());
    this.measure = computeLaunchMeasure({
      tik: this.tik,
      apiMajor: this.platform.apiMajor,
      apiMinor: this.platform.apiMinor,
      build: this.platform.build,
      policy: this.policy,
      launchDigest: this.launchDigest,
      mnonce,
    });
    this.state = 'LSECRET';
    return concat(this.measure, mnonce);
  }

  /** The finalized launch digest (after LAUNCH_MEASURE), for test assertions. */
  launchDigestForTest(): Uint8Array {
    if (!this.launchDigest)
      throw new SimFirmwareError('INVALID_GUEST_STATE', 'no launch digest before LAUNCH_MEASURE');
    return Uint8Array.from(this.launchDigest);
  }

  /**
   * LAUNCH_SECRET: verifies and decrypts the packet (docs/protocol.md §7), then parses the EFI secret table the way
   * the guest would. Allowed only between LAUNCH_MEASURE and LAUNCH_FINISH; may be called repeatedly.
   */
  launchSecret(input: { header: Uint8Array; payload: Uint8Array }): LaunchSecretResult {
    const header = requireBytes(input?.header, 'packet header');
    const payload = requireBytes(input?.payload, 'secret payload');
    this.requireState('LSECRET', 'LAUNCH_SECRET');
    const withMeasure = apiAtLeast(this.platform.apiMajor, this.platform.apiMinor, 0, 17);
    const plaintext = openSecretPacket({
      tek: this.tek,
      tik: this.tik,
      measure: withMeasure ? this.measure : undefined,
      header,
      payload,
    });
    const entries = parseEfiSecretTable(plaintext);
    this.injected.push(entries);
    return { plaintext, entries };
  }

  /** Every secret table injected so far, in order. */
  get injectedSecrets(): readonly SecretTableEntry[][] {
    return this.injected;
  }

  /** LAUNCH_FINISH: the guest runs; the transport channel is closed and its keys wiped. */
  launchFinish(): void {
    this.requireState('LSECRET', 'LAUNCH_FINISH');
    this.state = 'RUNNING';
    this.tek.fill(0);
    this.tik.fill(0);
  }

  /** TEST ONLY: the TEK and TIK the firmware unwrapped from the session (copies). */
  transportKeysForTest(): { tek: Uint8Array; tik: Uint8Array } {
    if (this.state === 'RUNNING') {
      throw new SimFirmwareError('INVALID_GUEST_STATE', 'the transport keys are wiped at LAUNCH_FINISH');
    }
    return { tek: Uint8Array.from(this.tek), tik: Uint8Array.from(this.tik) };
  }

  private requireState(want: GuestState, command: string): void {
    if (this.state !== want) {
      throw new SimFirmwareError(
        'INVALID_GUEST_STATE',
        `${command} needs guest state ${want}, guest is ${this.state}`,
      );
    }
  }
}

function certBody(c: SevCertificate): Uint8Array {
  return serializeSevCert(c).subarray(0, 0x414);
}

/** Slot filling rule (docs/protocol.md §1): sig1 if it is empty, else sig2. Returns a new certificate. */
function addSignature(c: SevCertificate, usage: number, algo: number, sig: Uint8Array): SevCertificate {
  const slot = { usage, algo, sig };
  const sigs: SevCertificate['sigs'] =
    c.sigs[0].usage === Usage.INVALID ? [slot, c.sigs[1]] : [c.sigs[0], slot];
  return { ...c, sigs };
}

/** An ARK/ASK certificate (docs/protocol.md §2) for `key`, signed RSA-PSS by `signer`. */
function buildAmdCert(
  key: SimRsaKey,
  signer: SimRsaKey,
  keyId: Uint8Array,
  certifyingId: Uint8Array,
  usage: number,
  hash: 'sha256' | 'sha384',
): Uint8Array {
  const bytes = key.bits / 8;
  const unsigned: AmdCertificate = {
    version: 1,
    keyId,
    certifyingId,
    keyUsage: usage,
    reserved: new Uint8Array(16),
    pubexpBits: key.bits,
    modulusBits: key.bits,
    pubexp: leField(key.e, bytes),
    modulus: leField(key.n, bytes),
    signature: new Uint8Array(bytes),
  };
  const signature = rsaPssSignLe(signer, amdCertBody(unsigned), hash);
  return serializeAmdCert({ ...unsigned, signature });
}
