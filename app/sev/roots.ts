/**
 * The pinned AMD roots (ARK + ASK per generation, docs/protocol.md §2) and the TrustStore a chain is
 * anchored to. A chain is trusted only if its CEK verifies under an ASK held here.
 */
import { AMD_ROOTS_BASE64 } from './amd-roots.generated';
import {
  serializeAmdCert,
  splitAskArk,
  verifyAmdPair,
  type AmdCertificate,
  type AmdRootPair,
} from './amd-cert';
import { bytesEqual, fromBase64, fromHex, toHex } from './bytes';
import { SevError } from './errors';

export type Generation = 'naples' | 'rome' | 'milan' | 'genoa' | 'turin';
export const GENERATIONS: readonly Generation[] = ['naples', 'rome', 'milan', 'genoa', 'turin'];

/** ARK / ASK key ids as stored (docs/protocol.md §2 table); checked when the pinned roots load. */
export const PINNED_KEY_IDS: Record<Generation, { ark: string; ask: string }> = {
  naples: { ark: '1bb987c359494606b174945601c9ea5b', ask: 'e139970cfc464377ae61b289e2f9e96e' },
  rome: { ark: 'e6002122fb58419399d15fee7b131351', ask: 'c6cbcf145b3146f498e40ecb4ad4fded' },
  milan: { ark: '94c38e4177d0479292a7ae671d083fb6', ask: '73478c05cc174bfeb06e718fa75dc3c8' },
  genoa: { ark: '9f9d4a8fe761456599f6946c4c010f3a', ask: 'acbb4ad21acc436fb3e932f812cd01b0' },
  turin: { ark: 'd05c3a8bde484904b49552422ceb3942', ask: '15051693f7304d65a527b4a7f3f7cb77' },
};

export type TrustAnchorLabel =
  { kind: 'amd'; generation: Generation } | { kind: 'extra'; label: string; askKeyId: string };

export interface TrustAnchor extends AmdRootPair {
  label: TrustAnchorLabel;
  /** The serialized ASK, used as its identity in the verified-link cache. */
  askBytes: Uint8Array;
}

/** A human-readable name for an anchor: the generation, or "extra:<label>". */
export function anchorName(l: TrustAnchorLabel): string {
  return l.kind === 'amd' ? l.generation : `extra:${l.label}`;
}

const pinned = new Map<Generation, TrustAnchor>();

/**
 * The pinned root pair of one generation, parsed and checked (ARK self-signature, ARK -> ASK, key
 * ids) on first use and kept for the life of the process.
 */
export function pinnedAnchor(gen: Generation): TrustAnchor {
  let a = pinned.get(gen);
  if (!a) {
    const b64 = AMD_ROOTS_BASE64[gen];
    const pair = verifyAmdPair(fromBase64(b64.ark), fromBase64(b64.ask), `pinned ${gen} root`);
    const ids = PINNED_KEY_IDS[gen];
    if (!bytesEqual(pair.ark.keyId, fromHex(ids.ark)) || !bytesEqual(pair.ask.keyId, fromHex(ids.ask))) {
      throw new SevError('chain-not-trusted', `pinned ${gen} root: key ids differ from the pinned ids`);
    }
    a = { ...pair, label: { kind: 'amd', generation: gen }, askBytes: serializeAmdCert(pair.ask) };
    pinned.set(gen, a);
  }
  return a;
}

/** The set of ARK/ASK pairs a chain may end in. */
export class TrustStore {
  private readonly list: TrustAnchor[] = [];

  /** A store holding the pinned AMD roots of the given generations (all five by default). */
  static pinned(generations: readonly Generation[] = GENERATIONS): TrustStore {
    const t = new TrustStore();
    for (const g of generations) t.list.push(pinnedAnchor(g));
    return t;
  }

  /** A store with no anchors; nothing verifies until anchors are added. */
  static empty(): TrustStore {
    return new TrustStore();
  }

  /**
   * Adds an extra ASK||ARK file (AMD's `ask_ark_<gen>.cert` layout, e.g. for a lab or a simulated
   * platform). Its ARK self-signature and ARK -> ASK are checked; the anchor is labelled 'extra'.
   */
  addAskArk(bytes: Uint8Array, label: string): TrustAnchor {
    const { ask, ark } = splitAskArk(bytes, label);
    return this.addPair(ark, ask, label);
  }

  /** Adds an extra ARK and ASK given separately (see addAskArk). */
  addPair(arkBytes: Uint8Array, askBytes: Uint8Array, label: string): TrustAnchor {
    const pair = verifyAmdPair(arkBytes, askBytes, label);
    const a: TrustAnchor = {
      ...pair,
      label: { kind: 'extra', label, askKeyId: toHex(pair.ask.keyId) },
      askBytes: serializeAmdCert(pair.ask),
    };
    this.list.push(a);
    return a;
  }

  /** The anchors in the order they are tried. */
  anchors(): readonly TrustAnchor[] {
    return this.list;
  }

  /** The anchor whose ASK is `ask` (same serialized bytes), if any. */
  findByAsk(ask: AmdCertificate): TrustAnchor | undefined {
    const b = serializeAmdCert(ask);
    return this.list.find((a) => bytesEqual(a.askBytes, b));
  }
}
