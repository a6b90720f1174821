// The tab's live channel as pages and panels see it: whether the socket is live, and the log
// follows that share it. Provided by the shell (App.tsx) from useLiveChannel; without a
// provider (null) a component acts as if the socket were down and polls REST.

import { createContext, useContext } from 'react';
import type { LogFollows } from './logFollow';

export type LiveStatus = 'connecting' | 'live' | 'reconnecting';

export interface Live {
  status: LiveStatus;
  logs: LogFollows;
}

export const LiveContext = createContext<Live | null>(null);

export function useLive(): Live | null {
  return useContext(LiveContext);
}
