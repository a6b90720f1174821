import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { RunnerOffer, UnfitWarnings, WaitingNote } from './resources';

const text = (html: string) => html.replace(/<[^>]+>/g, ' ').replace(/&#x27;/g, "'").replace(/\s+/g, ' ').trim();
const REASON = "needs 8 cores; the largest live runner of class 'cpu' offers 4 cores";

describe('RunnerOffer', () => {
  it('shows the offer and what is free', () => {
    const html = renderToStaticMarkup(<RunnerOffer runner={{ cores: 4, memory_mb: 16384, gpus: 0, free_cores: 2, free_memory_mb: 16384, free_gpus: 0 }} />);
    expect(text(html)).toBe('4 cores · 16 GiB · 0 GPUs 2 cores · 16 GiB · 0 GPUs free');
  });
  it('says an older worker advertises nothing', () => {
    const html = renderToStaticMarkup(<RunnerOffer runner={{ cores: null, memory_mb: null, gpus: null }} />);
    expect(text(html)).toBe('not advertised');
    expect(html).toContain('takes any task');
  });
});

describe('UnfitWarnings', () => {
  it('lists each reason with how many tasks wait, the needs as a tooltip', () => {
    const html = renderToStaticMarkup(<UnfitWarnings rclass="cpu" entries={[
      { tasks: 3, needs: { cores: 8 }, reason: REASON },
      { tasks_in_sample: 2, reason: "no runner of class 'cpu' has executor 'slurm'" },
    ]} />);
    expect(html).toContain('data-testid="unfit-cpu"');
    expect(html).toContain('title="needs 8 cores"');
    expect(text(html)).toBe(`⚠ 3 tasks wait: ${REASON} ⚠ at least 2 tasks wait: no runner of class 'cpu' has executor 'slurm'`);
  });
  it('renders nothing when every task fits', () => {
    expect(renderToStaticMarkup(<UnfitWarnings rclass="cpu" entries={[]} />)).toBe('');
  });
});

describe('WaitingNote', () => {
  it('says why a ready task does not start', () => {
    expect(text(renderToStaticMarkup(<WaitingNote reason={REASON} />))).toBe(
      `Waiting: ${REASON}. It stays ready and starts when a live runner of its class can take it.`);
  });
});
