/** `sev-attest-host`: the libvirt host side of SEV Attest (plain Node, no Electron). */
import { runAsProcess } from '../cli/io';
import { runHostCli } from './cli';

runAsProcess('sev-attest-host', runHostCli, 1);
