/** `sev-attest`: the Electron-free command line. Each subcommand lives in commands/<name>.ts. */
import { runAsProcess } from './io';
import { runCli } from './run';

// 70: EX_SOFTWARE, an internal error rather than a usage or check failure.
runAsProcess('sev-attest', runCli, 70);
