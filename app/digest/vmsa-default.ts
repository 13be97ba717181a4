/**
 * The one default VMSA variant wherever none is given: CLI `digest`, profiles (and so `bundle export`,
 * the REST/IPC schemas) and the profile editor. 'kvm-init2' is what current hosts (Linux 6.10+ with
 * KVM_SEV_INIT2) create; give 'legacy' for older hosts and to compare with libvirt 9's
 * virt-qemu-sev-validate or sevctl, which build the legacy VMSA. Pure data: the UI imports it.
 */
export const DEFAULT_VMSA_VARIANT = 'kvm-init2' as const;
