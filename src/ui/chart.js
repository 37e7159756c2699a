/** A live line chart (uPlot) of the monitor's points. */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { html } from './lib/html.js';

/**
 * @param series [{label, color, value: (point) => number|undefined}]
 * @param format how the y axis and legend show a value
 */
export function Chart({ title, points, series, format, testid }) {
  const box = useRef(null);
  const plot = useRef(null);
  const data = [
    points.map((p) => p.t),
    ...series.map((s) => points.map((p) => s.value(p) ?? null)),
  ];
  useEffect(() => {
    const width = Math.max(300, box.current.clientWidth - 8);
    plot.current = new uPlot(
      {
        width,
        height: 180,
        scales: {
          x: { time: true },
          y: { range: (_u, min, max) => [0, Math.max(max, min, 1e-9) * 1.1] },
        },
        axes: [{}, { values: (_u, ticks) => ticks.map(format), size: 70 }],
        series: [
          {},
          ...series.map((s) => ({
            label: s.label,
            stroke: s.color,
            width: 2,
            spanGaps: false,
            value: (_u, v) => (v === null ? '–' : format(v)),
          })),
        ],
      },
      data,
      box.current,
    );
    const onResize = () =>
      plot.current?.setSize({ width: Math.max(300, box.current.clientWidth - 8), height: 180 });
    window.addEventListener('resize', onResize);
    return () => {
      window.removeEventListener('resize', onResize);
      plot.current?.destroy();
      plot.current = null;
    };
  }, []);
  useEffect(() => {
    plot.current?.setData(data);
  });
  return html`<div class="chart" data-testid=${testid}><h3>${title}</h3><div ref=${box}></div></div>`;
}
