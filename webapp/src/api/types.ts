// Wire types of the broker's REST API (broker/engine/queries.py, broker/api/*.py).

export type Counts = Record<string, number>;

export interface RunView {
  id: string;
  name: string;
  revision: string;
  owner: string;
  state: string;
  phase: string;
  reason: string;
  counts: Counts;
  params: Record<string, unknown>;
  priority: number | null;
  created_at: number | null;
  started_at: number | null;
  finished_at: number | null;
  total: number | null;
  groups?: Record<string, { members: number; tasks: number; counts: Counts }>;
  redo_of?: string;
  redone_by?: string[];
}

export interface TaskView {
  id: string;
  node: string;
  state: string;
  class: string;
  runner: string;
  reason: string;
  attempt: number | null;
  priority: number | null;
  exit_code: number | null;
  dispatched_at: number | null;
  started_at: number | null;
  finished_at: number | null;
  result: unknown;
  vars: Record<string, unknown> | null;
  parents: string[];
  group?: string;
  member?: number | null;
  tail?: string;
  /** a ready task parked because no live runner of its class is big enough: what is missing */
  waiting_for?: string | null;
}

export interface RunMessage {
  ts?: number;
  task?: string;
  text?: string;
  [k: string]: unknown;
}

export interface RunStatus {
  run: RunView;
  messages: RunMessage[];
  tasks?: TaskView[];
}

export interface EtaTask {
  id: string;
  state: string;
  expected_start: number | null;
  expected_finish: number | null;
  median_s: number | null;
  p80_s: number | null;
  source: string;
}

export interface RunEta {
  run: string;
  now: number;
  eta: number | null;
  unknown_durations?: number;
  unserved_classes?: string[];
  parked?: string[]; // parked task ids: no estimate for them or what follows them
  tasks: EtaTask[];
}

/** Tasks of a class no live runner can take, and why (`tasks`: all of them; `tasks_in_sample`:
 *  those among the sampled head and tail of the queue). `needs`: a parked task's requirements. */
export interface UnfitEntry {
  tasks?: number;
  tasks_in_sample?: number;
  needs?: Record<string, number>;
  reason: string;
}

export interface QueueInfo {
  ready: number;
  /** ready, but bigger than every live runner of the class */
  parked?: number;
  dispatched: number;
  pending: number;
  oldest_ready_age_s: number | null;
  runners: string[];
  slots: number;
  unfit: UnfitEntry[];
}

/** `/api/v1/status` per class (broker/engine/queries.py queue_overview). */
export interface QueueOverview {
  ready: number;
  parked?: number;
  in_flight: number;
  capacity: number;
}

export interface BrokerStatus {
  version: string;
  runners?: number;
  active_runs?: number;
  queues?: Record<string, QueueOverview>;
}

/** What a runner offers and what its running tasks leave free (null: an older worker that does
 *  not advertise it, which fits anything). */
export interface RunnerResources {
  cores?: number | null;
  memory_mb?: number | null;
  gpus?: number | null;
  free_cores?: number | null;
  free_memory_mb?: number | null;
  free_gpus?: number | null;
}

export interface RunnerInfo extends RunnerResources {
  id: string;
  host: string;
  pid: number;
  classes: string[];
  slots: number;
  busy: number;
  executors: string[];
  labels: Record<string, string>;
  state: string;
  alive: boolean;
  heartbeat_ttl_ms: number;
  started_at: number;
}

export interface Attempt {
  task: string;
  node: string;
  attempt: number;
  state: string;
  runner: string | null;
  started_at: number | null;
  finished_at: number | null;
  duration_ms: number | null;
  exit_code: number | null;
  reason: string | null;
}

export interface TaskDetail {
  run: string;
  task: TaskView;
  spec: Record<string, unknown> | null;
}

export interface LogPage {
  run: string;
  task: string;
  state: string;
  lines: { id: string; ts: number; line: string }[];
  next: string | null;
  streamed: boolean;
  tail?: string;
}

/** A log line as the live channel sends it (`follow_log`). */
export interface LogLine {
  id: string;
  attempt: number;
  line: string;
}

/** Live channel: new lines of a log this socket follows. */
export interface LogFrame {
  type: 'log';
  run: string;
  task: string;
  lines: LogLine[];
  last_id: string;
}

/** Live channel: a client message (`follow_log`, `unfollow_log`) was refused; nothing changed. */
export interface LiveErrorFrame {
  type: 'error';
  op: string | null;
  message: string;
  details: { run?: string; task?: string; field?: string; [k: string]: unknown } | null;
}

export type WorkflowDoc = {
  name: string;
  nodes: Record<string, WorkflowNode>;
  description?: string;
  priority?: number;
  params?: Record<string, unknown>;
  defaults?: Record<string, unknown>;
  [k: string]: unknown;
};

export type WorkflowNode = {
  executor?: string;
  command?: string | string[];
  after?: string[];
  matrix?: Record<string, unknown[]>;
  [k: string]: unknown;
};

export interface WorkflowRevision {
  name: string;
  owner: string;
  revision: string;
  workflow: WorkflowDoc;
}

export interface WorkflowListItem {
  name: string;
  revision: string;
  updated_at: number;
}

export interface HistoryEntry {
  revision: string;
  author: string;
  committed_at: number;
  message: string;
  deleted: boolean;
  added: string[];
  removed: string[];
  changed: string[];
}

export interface WorkflowHistory {
  name: string;
  owner: string;
  revisions: HistoryEntry[];
  next: string | null;
}

export interface PublishResult {
  name: string;
  owner: string;
  revision: string;
  nodes: number;
  changed: boolean;
  message?: string;
}

export interface ServerDiff {
  added: string[];
  removed: string[];
  changed: Record<string, Record<string, { old?: unknown; new?: unknown }>>;
  workflow?: Record<string, { old?: unknown; new?: unknown }>;
}

export interface Me {
  id: string;
  admin: boolean;
  scopes: string[];
}

export interface ValidationItem {
  node?: string;
  field?: string;
  message: string;
  path?: string;
}

export type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  anyOf?: JsonSchema[];
  enum?: unknown[];
  items?: JsonSchema;
  default?: unknown;
  description?: string;
  title?: string;
  required?: string[];
  [k: string]: unknown;
};
