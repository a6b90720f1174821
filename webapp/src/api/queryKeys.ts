// Every TanStack Query key of the UI, in one place. The live channel patches or invalidates
// these keys; nothing else holds server state.

export const queryKeys = {
  me: () => ['me'] as const,
  runs: () => ['runs'] as const,
  run: (id: string) => ['run', id] as const,
  eta: (id: string) => ['eta', id] as const,
  attempts: (id: string) => ['attempts', id] as const,
  provenance: (id: string) => ['provenance', id] as const,
  task: (run: string, task: string) => ['task', run, task] as const,
  log: (run: string, task: string) => ['log', run, task] as const,
  status: () => ['status'] as const,
  queue: () => ['queue'] as const,
  runners: () => ['runners'] as const,
  workflows: () => ['workflows'] as const,
  workflow: (name: string, revision?: string) => ['workflow', name, revision ?? 'latest'] as const,
  history: (name: string) => ['history', name] as const,
  diff: (name: string, from: string, to: string) => ['diff', name, from, to] as const,
  schema: () => ['schema'] as const,
  layout: (scope: string, shape: string) => ['layout', scope, shape] as const,
};

/** Query keys that belong to one run (patched/invalidated by its deltas). */
export function runScoped(run: string): readonly (readonly string[])[] {
  return [queryKeys.run(run), queryKeys.eta(run), queryKeys.attempts(run)];
}
