"""Independent check of an SEV chain with python3-cryptography (OpenSSL via a different binding and
a separate parser written from the protocol doc). Usage: sev_chain_check.py ASK_ARK PDH PEK OCA CEK.
Prints one line per verified link and exits non-zero at the first failure."""
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils


def le(b):
    return int.from_bytes(b, "little")


def amd_split(blob):
    pub_bits, mod_bits = struct.unpack_from("<II", blob, 0x38)
    size = 0x40 + pub_bits // 8 + 2 * (mod_bits // 8)
    return blob[:size], blob[size:]


def amd_parse(c):
    pub_bits, mod_bits = struct.unpack_from("<II", c, 0x38)
    e0 = 0x40
    m0 = e0 + pub_bits // 8
    s0 = m0 + mod_bits // 8
    key = rsa.RSAPublicNumbers(le(c[e0:m0]), le(c[m0:s0])).public_key()
    h = hashes.SHA256() if mod_bits == 2048 else hashes.SHA384()
    return key, h, c[:s0], c[s0 : s0 + mod_bits // 8], mod_bits // 8


def pss_verify(key, h, data, sig_le, n):
    sig = sig_le[:n][::-1]
    key.verify(sig, data, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)


def sev_key(c):
    qx = le(c[0x14 : 0x14 + 72])
    qy = le(c[0x5C : 0x5C + 72])
    return ec.EllipticCurvePublicNumbers(qx, qy, ec.SECP384R1()).public_key()


def sev_slots(c):
    return [struct.unpack_from("<II", c, off) + (c[off + 8 : off + 8 + 512],) for off in (0x414, 0x61C)]


def ecdsa_link(signer, cert, name):
    usage, algo = struct.unpack_from("<II", signer, 8)
    key = sev_key(signer)
    for su, sa, sig in sev_slots(cert):
        if (su, sa) == (usage, algo):
            r, s = le(sig[:72]), le(sig[72:144])
            h = hashes.SHA256() if algo < 0x100 else hashes.SHA384()
            key.verify(utils.encode_dss_signature(r, s), cert[:0x414], ec.ECDSA(h))
            print(f"ok {name}")
            return
    raise SystemExit(f"{name}: no slot")


def main():
    ask_ark, pdh, pek, oca, cek = (open(p, "rb").read() for p in sys.argv[1:6])
    ask, ark = amd_split(ask_ark)
    ark_key, ark_h, ark_body, ark_sig, n = amd_parse(ark)
    pss_verify(ark_key, ark_h, ark_body, ark_sig, n)
    print("ok ARK self")
    _, _, ask_body, ask_sig, _ = amd_parse(ask)
    pss_verify(ark_key, ark_h, ask_body, ask_sig, n)
    print("ok ARK -> ASK")
    ask_key, ask_h, _, _, an = amd_parse(ask)
    for su, sa, sig in sev_slots(cek):
        if su == 0x13:
            h = hashes.SHA256() if sa == 0x001 else hashes.SHA384()
            pss_verify(ask_key, h, cek[:0x414], sig, an)
            print("ok ASK -> CEK")
            break
    else:
        raise SystemExit("ASK -> CEK: no slot")
    ecdsa_link(oca, oca, "OCA self")
    ecdsa_link(oca, pek, "OCA -> PEK")
    ecdsa_link(cek, pek, "CEK -> PEK")
    ecdsa_link(pek, pdh, "PEK -> PDH")


try:
    main()
except InvalidSignature:
    raise SystemExit("signature does not verify")
