/**
 * The one place services push UI events to: Electron forwards them to windows (send.ts), the browser bridge
 * to its server-sent-event clients. Services never see a BrowserWindow or an HTTP response.
 */
import type { EventChannel, EventPayload } from '../../app/contract/ipc';

export type UiEventListener = <K extends EventChannel>(channel: K, payload: EventPayload<K>) => void;

export class UiEventBus {
  private readonly listeners = new Set<UiEventListener>();

  /** Delivers to every listener; a throwing listener does not stop the others. */
  emit<K extends EventChannel>(channel: K, payload: EventPayload<K>): void {
    for (const l of [...this.listeners]) {
      try {
        l(channel, payload);
      } catch (e) {
        console.error(`[ui-events] listener failed for ${channel}:`, e);
      }
    }
  }

  /** Returns the unsubscribe function. */
  subscribe(listener: UiEventListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  get size(): number {
    return this.listeners.size;
  }
}
