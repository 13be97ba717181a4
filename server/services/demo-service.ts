/**
 * The first-run demo of one running service: the demo profile (set up one call at a time) and the
 * simulated host that launches against the listener (created on first use, so its simulated platform's
 * root is trusted only once the owner asks for the demo).
 */
import type { DemoRunResult } from '../../app/demo';
import { DemoHostRunner, type DemoRunParsed, type DemoServiceView } from './demo-host';
import { ensureDemoProfile, findDemoFirmware, type DemoSetupService } from './demo-setup';

export interface DemoServiceDeps {
  service: DemoSetupService & DemoServiceView;
  /** The demo firmware image (default: the shipped assets/demo). */
  firmwarePath?: string;
}

export class DemoService {
  private setupQueue: Promise<unknown> = Promise.resolve();
  private runner: DemoHostRunner | undefined;

  constructor(private readonly deps: DemoServiceDeps) {}

  /** The demo profile, created on first use; concurrent calls run one after the other. */
  ensureProfile(): ReturnType<typeof ensureDemoProfile> {
    const run = this.setupQueue
      .catch(() => undefined)
      .then(() => ensureDemoProfile(this.deps.service, this.deps.firmwarePath ?? findDemoFirmware()));
    this.setupQueue = run;
    return run;
  }

  /** Runs the simulated host against `options.vmId`, or against the demo profile when none is given. */
  async run(options: DemoRunParsed): Promise<DemoRunResult> {
    const vmId = options.vmId ?? (await this.ensureProfile()).profile.id;
    this.runner ??= new DemoHostRunner({ service: this.deps.service });
    return this.runner.run({ ...options, vmId });
  }
}
