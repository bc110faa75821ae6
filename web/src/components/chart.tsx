import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  values: (number | null)[];
  color: string;
  unit?: string;
}

// A uPlot time-series chart that follows its container's width.
export function TimeChart({ title, times, series, height = 220, yLabel, integer }: {
  title: string; times: number[]; series: Series[]; height?: number; yLabel?: string; integer?: boolean;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const sparse = times.length < 90;
    const opts: uPlot.Options = {
      width: Math.max(280, el.clientWidth),
      height,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, min, max) => [0, Math.max(max, min + 1) * 1.1] } },
      axes: [
        { stroke: '#5b6675', grid: { stroke: '#eef0f3' }, ticks: { stroke: '#dde1e6' } },
        {
          stroke: '#5b6675', grid: { stroke: '#eef0f3' }, ticks: { stroke: '#dde1e6' }, label: yLabel, size: 56,
          // Counts: whole-number ticks only.
          ...(integer ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000, 100000, 1e6] } : {}),
        },
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          fill: undefined,
          spanGaps: false,
          points: { show: sparse, size: 6, fill: s.color },
          value: (_u: uPlot, v: number | null) => (v === null || v === undefined ? '—' : `${+v.toFixed(3)}${s.unit ?? ''}`),
        })),
      ],
    };
    const u = new uPlot(opts, [times, ...series.map((s) => s.values)] as uPlot.AlignedData, el);
    plot.current = u;
    const ro = new ResizeObserver(() => {
      const w = Math.max(280, el.clientWidth);
      if (Math.abs(w - u.width) > 2) u.setSize({ width: w, height });
    });
    ro.observe(el);
    return () => { ro.disconnect(); u.destroy(); plot.current = null; };
  }, [times, series, height, integer]);

  const summary = series.map((s) => {
    const vals = s.values.filter((v): v is number => v !== null && v !== undefined);
    const total = vals.reduce((a, b) => a + b, 0);
    return `${s.label}: ${vals.length ? `max ${Math.max(...vals).toFixed(2)}${s.unit ?? ''}, total ${total.toFixed(2)}` : 'no data'}`;
  }).join('; ');

  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} class="chart-box" role="img" aria-label={`${title}. ${summary}`} />
    </figure>
  );
}
