// Parking a ready task (no live runner of its class is big enough) is not a state change, so no
// live delta tells the run page. While the run has ready tasks, it polls the cheap broker
// status (parked per class) and refetches the run, whose tasks carry `waiting_for`, when what
// is parked in those classes changes.

import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useMemo, useRef } from 'react';
import { useApi } from '../api/ApiContext';
import { queryKeys } from '../api/queryKeys';
import type { TaskView } from '../api/types';
import { parkedSignature, readyClasses, shouldRefetchParked, type ParkedSignature } from '../format/resources';

const POLL_MS = 5000;

export function useParkedWatch(run: string, tasks: readonly TaskView[] | undefined, active: boolean): void {
  const api = useApi();
  const qc = useQueryClient();
  const classes = useMemo(() => readyClasses(tasks ?? []), [tasks]);
  const watch = active && classes.length > 0;
  const status = useQuery({ queryKey: queryKeys.status(), queryFn: () => api.status(), enabled: watch, refetchInterval: watch ? POLL_MS : false });
  const seen = useRef<{ run: string; sig: ParkedSignature } | null>(null);
  const data = status.data;
  const sig = useMemo(() => (watch && data ? parkedSignature(classes, data.queues, data.runners) : null), [watch, data, classes]);
  useEffect(() => {
    if (!sig) return;
    const prev = seen.current?.run === run ? seen.current.sig : null;
    if (shouldRefetchParked(prev, sig)) void qc.invalidateQueries({ queryKey: queryKeys.run(run) });
    seen.current = { run, sig };
  }, [sig, run, qc]);
}
