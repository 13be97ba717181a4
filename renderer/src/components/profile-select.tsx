/** A labelled select of the owner's VM profiles (Secrets, Host setup, the demo). */
import type { VmProfile } from '../../../app/profile';

export function ProfileSelect({
  profiles,
  value,
  onChange,
  label = 'VM profile',
}: {
  profiles: VmProfile[];
  value: string;
  onChange: (id: string) => void;
  label?: string;
}) {
  return (
    <label className="narrow">
      {label}
      <select value={value} onChange={(e) => onChange(e.target.value)}>
        {profiles.length === 0 && <option value="">No profiles yet</option>}
        {profiles.map((p) => (
          <option key={p.id} value={p.id}>
            {p.name} ({p.id})
          </option>
        ))}
      </select>
    </label>
  );
}
