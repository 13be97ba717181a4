/**
 * The first-run demo of one running service: the demo profile (set up one call at a time) and the
 * simulated host that launches against the listener (created on first use, so its simulated platform's
 * root is trusted only once the owner asks for the demo).
 */
import type { DemoRunResult } from '../../app/demo';
import { DemoHostRunner, type DemoRunParsed, type DemoServiceView } from './demo-host';
import { ensureDemoProfile, findDemoFirmware, type DemoSetupService } from './demo-setup';
import { DemoSnpRunner, ensureDemoSnpProfile, type DemoSnpServiceView } from './demo-snp';

export interface DemoServiceDeps {
  service: DemoSetupService & DemoServiceView & DemoSnpServiceView;
  /** The demo firmware image (default: the shipped assets/demo). */
  firmwarePath?: string;
}

export class DemoService {
  private setupQueue: Promise<unknown> = Promise.resolve();
  private runner: DemoHostRunner | undefined;
  private snpRunner: DemoSnpRunner | undefined;

  constructor(private readonly deps: DemoServiceDeps) {}

  /** The demo profile, created on first use; concurrent calls run one after the other. */
  ensureProfile(): ReturnType<typeof ensureDemoProfile> {
    const run = this.setupQueue
      .catch(() => undefined)
      .then(() => ensureDemoProfile(this.deps.service, this.deps.firmwarePath ?? findDemoFirmware()));
    this.setupQueue = run;
    return run;
  }

  /** The demo SEV-SNP profile (`demo-snp`), created on first use; queued like ensureProfile. */
  ensureSnpProfile(): ReturnType<typeof ensureDemoSnpProfile> {
    const run = this.setupQueue.catch(() => undefined).then(() => ensureDemoSnpProfile(this.deps.service));
    this.setupQueue = run;
    return run;
  }

  /**
   * Runs the simulated host against `options.vmId`, or against the demo profile when none is given. An
   * SEV-SNP profile is run by the simulated SNP guest instead (it attests itself; there is no host launch).
   */
  async run(options: DemoRunParsed): Promise<DemoRunResult> {
    if (options.snp && options.vmId === undefined) return this.runSnp();
    const vmId = options.vmId ?? (await this.ensureProfile()).profile.id;
    if (this.deps.service.profiles.get(vmId)?.scheme === 'amd-sev-snp') return this.runSnp(vmId);
    this.runner ??= new DemoHostRunner({ service: this.deps.service });
    return this.runner.run({ ...options, vmId });
  }

  /** The simulated SEV-SNP guest boots and fetches its disk key (default: the demo SNP profile). */
  async runSnp(vmId?: string): Promise<DemoRunResult> {
    const id = vmId ?? (await this.ensureSnpProfile()).profile.id;
    this.snpRunner ??= new DemoSnpRunner({ service: this.deps.service });
    return this.snpRunner.run(id);
  }
}
