import { useCallback, useEffect, useRef, useState } from 'react';
import { api } from './api/client.ts';
import type { ConnectionState, EventName, Events, JobInfo, Method, Params, Results } from '../../src-main/engine/api/contract/index.ts';
import { useToasts } from './toasts.tsx';
import { CONNECTION_ERRORS, failureTitle } from './messages.ts';

/**
 * Whether a failure is worth a toast: a lost connection is not (the connection banner says so
 * once, and the call is made again when the engine is back).
 */
function toastWorthy(e: unknown): boolean {
  return !(e instanceof Error && CONNECTION_ERRORS.has(e.name));
}

/** Subscribes to one push event for the component's lifetime. */
export function useEvent<E extends EventName>(name: E, fn: (data: Events[E]) => void): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(
    () =>
      api.subscribe((event, data) => {
        if (event === name) ref.current(data as Events[E]);
      }),
    [name],
  );
}

/** The last answer of each query (method and params), shown by a stage opened while the engine is away. */
const lastAnswers = new Map<string, unknown>();
const MAX_ANSWERS = 200;

function connectionNow(): ConnectionState {
  let now: ConnectionState = 'connecting';
  api.onConnection((s) => (now = s))();
  return now;
}

/**
 * Calls a method on mount, whenever deps change and when the engine's connection comes back;
 * errors go to a toast in the user's words. The last data is kept while a call fails, and a
 * stage opened while the engine is away starts from the last answer it had.
 */
export function useQuery<M extends Method>(method: M, params: Params<M>, deps: unknown[] = []) {
  const toasts = useToasts();
  const reconnects = useReconnects();
  const key = JSON.stringify(params);
  const [data, setData] = useState<Results[M] | null>(() => (connectionNow() === 'closed' ? ((lastAnswers.get(`${method} ${key}`) as Results[M] | undefined) ?? null) : null));
  const [loading, setLoading] = useState(true);
  const reload = useCallback(async () => {
    setLoading(true);
    try {
      const value = await api.request(method, params);
      lastAnswers.delete(`${method} ${key}`);
      lastAnswers.set(`${method} ${key}`, value);
      if (lastAnswers.size > MAX_ANSWERS) lastAnswers.delete(lastAnswers.keys().next().value!);
      setData(value);
    } catch (e) {
      if (toastWorthy(e)) toasts.error(failureTitle(method), e);
    } finally {
      setLoading(false);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [method, key]);
  useEffect(() => {
    void reload();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [reload, reconnects, ...deps]);
  return { data, loading, reload };
}

/** A function that calls a method and reports failures as a toast; resolves to null on failure. */
export function useCall() {
  const toasts = useToasts();
  return useCallback(
    async <M extends Method>(method: M, params: Params<M>): Promise<Results[M] | null> => {
      try {
        return await api.request(method, params);
      } catch (e) {
        if (toastWorthy(e)) toasts.error(failureTitle(method), e);
        return null;
      }
    },
    [toasts],
  );
}

/** The job list, kept live by job.updated events. */
export function useJobs(): JobInfo[] {
  const [jobs, setJobs] = useState<JobInfo[]>([]);
  const call = useCall();
  const connection = useConnection();
  useEffect(() => {
    // (re)load on mount and whenever the event stream (re)connects, so nothing missed while
    // the engine was away is left stale
    if (connection === 'open') void call('jobs.list', { limit: 50 }).then((j) => j && setJobs(j));
  }, [call, connection]);
  useEvent('job.updated', (job) => {
    setJobs((all) => {
      const i = all.findIndex((j) => j.id === job.id);
      if (i < 0) return [job, ...all].sort((a, b) => b.id - a.id);
      const copy = all.slice();
      copy[i] = job;
      return copy;
    });
  });
  return jobs;
}

export function useConnection(): ConnectionState {
  const [state, setState] = useState<ConnectionState>('connecting');
  useEffect(() => api.onConnection(setState), []);
  return state;
}

/** Counts how often the connection came back after it was lost (0 until it first does). */
export function useReconnects(): number {
  const [count, setCount] = useState(0);
  useEffect(() => {
    let lost = false;
    return api.onConnection((s) => {
      if (s === 'closed') lost = true;
      else if (s === 'open' && lost) {
        lost = false;
        setCount((n) => n + 1);
      }
    });
  }, []);
  return count;
}

/** Re-runs fn (throttled) whenever a job of one of the kinds makes progress or finishes. */
export function useJobRefresh(kinds: string[], fn: () => void, everyMs = 1500): void {
  const last = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEvent('job.updated', (job) => {
    if (!kinds.includes(job.kind)) return;
    const finished = job.state !== 'running' && job.state !== 'cancelling';
    const wait = finished ? 0 : Math.max(0, everyMs - (Date.now() - last.current));
    if (timer.current) clearTimeout(timer.current);
    timer.current = setTimeout(() => {
      last.current = Date.now();
      fn();
    }, wait);
  });
}
