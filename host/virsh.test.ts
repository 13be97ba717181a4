import { describe, expect, it } from 'vitest';
import { parseLaunchSecInfo, parseNodeSevInfo, parseVirshFields, VirshError } from './virsh';

// As virsh prints typed parameters: nodesevinfo "%-18s: %s", domlaunchsecinfo "%-15s: %s".
const NODESEVINFO = [
  'pdh               : AQAAAAAAAA==',
  'cert-chain        : AgAAAAAAAA==',
  'cpu0-id           : 3ee4b0c1',
  'cbitpos           : 51',
  'reduced-phys-bits : 1',
  'max-guests        : 15',
  'max-es-guests     : 494',
  '',
].join('\n');

const LAUNCHSECINFO = [
  'sev-measurement: pMFvEgG869KQBqSXDppu8B9iVWjiL1rSElnfwnaBebsGnZAoUbRehC7Pj0uuF3Ra',
  'sev-api-major  : 1',
  'sev-api-minor  : 52',
  'sev-build-id   : 4',
  'sev-policy     : 3',
  '',
  '',
].join('\n');

describe('virsh output parsing', () => {
  it('nodesevinfo', () => {
    expect(parseNodeSevInfo(NODESEVINFO)).toEqual({
      pdh: 'AQAAAAAAAA==',
      certChain: 'AgAAAAAAAA==',
      cpu0Id: '3ee4b0c1',
      cbitpos: 51,
      reducedPhysBits: 1,
      maxGuests: 15,
      maxEsGuests: 494,
    });
    // libvirt before 8.4: no cpu0-id; older hosts without the guest counts.
    const old = parseNodeSevInfo(
      'pdh               : A===\ncert-chain        : B===\ncbitpos           : 47\n',
    );
    expect(old.cpu0Id).toBeUndefined();
    expect(old.maxGuests).toBeUndefined();
  });

  it('domlaunchsecinfo (policy in decimal, as virsh prints a uint)', () => {
    expect(parseLaunchSecInfo(LAUNCHSECINFO)).toEqual({
      measurement: 'pMFvEgG869KQBqSXDppu8B9iVWjiL1rSElnfwnaBebsGnZAoUbRehC7Pj0uuF3Ra',
      apiMajor: 1,
      apiMinor: 52,
      buildId: 4,
      policy: 3,
    });
  });

  it('missing or malformed fields are clear VirshErrors', () => {
    expect(() => parseNodeSevInfo('cbitpos : 47\n')).toThrow(/pdh/);
    expect(() => parseLaunchSecInfo('sev-api-major  : 1\n')).toThrow(/sev-measurement/);
    expect(() =>
      parseLaunchSecInfo(LAUNCHSECINFO.replace('sev-policy     : 3', 'sev-policy     : 0x3')),
    ).toThrow(VirshError);
    expect(parseVirshFields('a : b\r\nweird line\nc: d : e\n')).toEqual(
      new Map([
        ['a', 'b'],
        ['c', 'd : e'],
      ]),
    );
  });
});
