/** Prometheus text exposition for the API: request counts and latency histograms per operation. */

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

export interface Metrics {
  observe(operation: string, status: number, seconds: number): void;
  render(gauges: Record<string, number>): string;
}

function label(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

export function createMetrics(): Metrics {
  const requests = new Map<string, number>();
  const latency = new Map<string, Histogram>();
  return {
    observe(operation, status, seconds) {
      const key = `${operation}\u0000${status}`;
      requests.set(key, (requests.get(key) ?? 0) + 1);
      let h = latency.get(operation);
      if (!h) latency.set(operation, (h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 }));
      BUCKETS.forEach((b, i) => {
        if (seconds <= b) h.counts[i]!++;
      });
      h.sum += seconds;
      h.count++;
    },
    render(gauges) {
      const out: string[] = [
        "# HELP ferry_api_requests_total API requests by operation and HTTP status.",
        "# TYPE ferry_api_requests_total counter",
      ];
      for (const [key, n] of requests) {
        const [op, status] = key.split("\u0000");
        out.push(`ferry_api_requests_total{operation="${label(op!)}",status="${status}"} ${n}`);
      }
      out.push(
        "# HELP ferry_api_request_duration_seconds API request latency.",
        "# TYPE ferry_api_request_duration_seconds histogram",
      );
      for (const [op, h] of latency) {
        const l = label(op);
        BUCKETS.forEach((b, i) =>
          out.push(`ferry_api_request_duration_seconds_bucket{operation="${l}",le="${b}"} ${h.counts[i]}`),
        );
        out.push(`ferry_api_request_duration_seconds_bucket{operation="${l}",le="+Inf"} ${h.count}`);
        out.push(`ferry_api_request_duration_seconds_sum{operation="${l}"} ${h.sum}`);
        out.push(`ferry_api_request_duration_seconds_count{operation="${l}"} ${h.count}`);
      }
      for (const [name, v] of Object.entries(gauges)) out.push(`# TYPE ${name} gauge`, `${name} ${v}`);
      return `${out.join("\n")}\n`;
    },
  };
}
