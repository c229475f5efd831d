#!/usr/bin/env python3
"""Joins a k6 summary with the server's CPU and memory samples into one JSON
summary and prints a short human one (called by loadtest/run.sh).

Server figures are taken over the k6 run: CPU seconds (utime + stime), CPU
seconds per second of audio streamed (= cores per real-time stream), RSS
before the run (idle), its peak, and the peak's growth per planned stream.
For `ramp` it splits them per step; for `slow-reader` and `flood` it checks
that memory stayed flat and that the bad clients were cut off as documented.
Exit status 1 when such an expectation failed.
"""
import argparse
import json
import os

# Memory counts as flat when the last third of the run peaks at most this much
# above the first third: either this many KiB or this fraction, whichever is larger.
FLAT_RSS_SLACK_KB = 16 * 1024
FLAT_RSS_SLACK_FRACTION = 0.10


def load_samples(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def metric(summary, name, field, default=None):
    return summary.get('metrics', {}).get(name, {}).get(field, default)


def latency(summary, name='frame_latency'):
    m = summary.get('metrics', {}).get(name)
    if not m:
        return None
    return {k: round(m[s], 2) for k, s in
            (('p50', 'med'), ('p90', 'p(90)'), ('p95', 'p(95)'), ('p99', 'p(99)'), ('max', 'max'), ('avg', 'avg'))
            if s in m}


def window(samples, start, end):
    """Samples from the last one at or before `start` to the first at or after `end`."""
    before = [s for s in samples if s['t'] <= start]
    inside = [s for s in samples if start < s['t'] < end]
    after = [s for s in samples if s['t'] >= end]
    return before[-1:] + inside + after[:1]


def server_figures(samples, start, end, audio_s, streams):
    w = window(samples, start, end)
    if len(w) < 2:
        return {}
    idle = w[0]['rss_kb']
    peak = max(s['rss_kb'] for s in w)
    cpu = w[-1]['cpu_s'] - w[0]['cpu_s']
    wall = w[-1]['t'] - w[0]['t']
    out = {
        'cpu_seconds': round(cpu, 2),
        'wall_seconds': round(wall, 1),
        'cpu_cores_busy': round(cpu / wall, 3) if wall else None,
        'rss_idle_mib': round(idle / 1024, 1),
        'rss_peak_mib': round(peak / 1024, 1),
        'rss_hwm_mib': round(samples[-1]['hwm_kb'] / 1024, 1),
    }
    if audio_s:
        out['audio_seconds'] = round(audio_s, 1)
        out['cpu_seconds_per_audio_second'] = round(cpu / audio_s, 5)
    if streams:
        out['streams'] = streams
        out['rss_per_stream_kib'] = round((peak - idle) / streams, 1)
    return out


def memory_flat(samples, start, end):
    w = [s for s in samples if start <= s['t'] <= end]
    if len(w) < 6:
        return {'flat': None, 'why': 'too few samples'}
    third = len(w) // 3
    first = max(s['rss_kb'] for s in w[:third])
    last = max(s['rss_kb'] for s in w[-third:])
    slack = max(FLAT_RSS_SLACK_KB, FLAT_RSS_SLACK_FRACTION * first)
    return {'flat': last - first <= slack, 'first_third_peak_mib': round(first / 1024, 1),
            'last_third_peak_mib': round(last / 1024, 1), 'slack_mib': round(slack / 1024, 1)}


def ramp_steps(summary, samples, t0_ms):
    steps = int(os.environ.get('STEPS', 6))
    step_s = float(os.environ.get('STEP_SECONDS', 30))
    add = int(os.environ.get('STEP_STREAMS', 50))
    knee_ms = float(os.environ.get('KNEE_P99_MS', 250))
    t0 = t0_ms / 1000.0
    rows, knee = [], None
    for i in range(steps):
        lat = latency(summary, f'frame_latency{{step:{i}}}') or {}
        fails = metric(summary, f'stream_failures{{step:{i}}}', 'count', 0) or 0
        streams = add * (i + 1)
        w = window(samples, t0 + i * step_s, t0 + (i + 1) * step_s)
        cpu = w[-1]['cpu_s'] - w[0]['cpu_s'] if len(w) >= 2 else None
        wall = w[-1]['t'] - w[0]['t'] if len(w) >= 2 else None
        row = {'step': i, 'streams': streams, 'latency_ms': lat, 'failed_streams': fails,
               'cpu_cores_busy': round(cpu / wall, 3) if cpu is not None and wall else None,
               'cpu_seconds_per_audio_second': round(cpu / (streams * wall), 5) if cpu is not None and wall else None,
               'rss_peak_mib': round(max(s['rss_kb'] for s in w) / 1024, 1) if w else None}
        rows.append(row)
        if knee is None and (fails > 0 or lat.get('p99', 0) > knee_ms):
            knee = streams
    return rows, knee


def server_histogram(path, name):
    """Quantiles of a Prometheus histogram in the server's /metrics text,
    read off its cumulative buckets: each quantile is the upper bound of the
    first bucket holding it (so 'p99 <= 5 ms'), plus the share of samples at
    or under each bound."""
    if not os.path.exists(path):
        return None
    buckets, count = [], 0
    for line in open(path):
        if line.startswith(name + '_bucket{'):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float('inf') if le == '+Inf' else float(le), float(line.rsplit(' ', 1)[1])))
        elif line.startswith(name + '_count'):
            count = float(line.rsplit(' ', 1)[1])
    if not buckets or not count:
        return None
    buckets.sort()
    out = {'count': int(count)}
    for q, key in ((0.5, 'p50_le_ms'), (0.95, 'p95_le_ms'), (0.99, 'p99_le_ms'), (0.999, 'p999_le_ms')):
        bound = next((le for le, n in buckets if n >= q * count), float('inf'))
        out[key] = None if bound == float('inf') else round(bound * 1000, 2)
    out['share_at_or_under_ms'] = {
        (f'{le * 1000:g}' if le != float('inf') else 'inf'): round(n / count, 5) for le, n in buckets}
    return out


def minute_rows(summary, samples, start):
    """Frame latency and server figures per minute of a live run, so a long
    run shows whether latency or memory grows (k6 tags each latency sample
    with its minute; the thresholds hold for every minute)."""
    rows = []
    for m in range(1000):
        lat = latency(summary, f'frame_latency{{minute:{m}}}')
        if not lat:
            break
        w = window(samples, start + 60 * m, start + 60 * (m + 1))
        row = {'minute': m, 'latency_ms': lat}
        if len(w) >= 2:
            cpu = w[-1]['cpu_s'] - w[0]['cpu_s']
            wall = w[-1]['t'] - w[0]['t']
            row['cpu_cores_busy'] = round(cpu / wall, 3) if wall else None
            row['rss_peak_mib'] = round(max(s['rss_kb'] for s in w) / 1024, 1)
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--scenario', required=True)
    ap.add_argument('--run-dir', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--k6-start', type=float, required=True)
    ap.add_argument('--k6-end', type=float, required=True)
    ap.add_argument('--k6-status', type=int, required=True)
    a = ap.parse_args()

    k6_path = os.path.join(a.run_dir, 'k6-summary.json')
    k6 = json.load(open(k6_path)) if os.path.exists(k6_path) else {}
    samples = load_samples(os.path.join(a.run_dir, 'samples.jsonl'))
    streams = metric(k6, 'planned_streams', 'value')
    audio_s = (metric(k6, 'audio_seconds', 'count') or 0) + (metric(k6, 'converted_audio_seconds', 'count') or 0)

    report = {
        'scenario': a.scenario,
        'k6_exit_status': a.k6_status,
        'thresholds_passed': a.k6_status == 0,
        'knobs': {k: os.environ[k] for k in sorted(os.environ) if k in (
            'STREAMS', 'STREAMS_PER_VU', 'DURATION', 'LEVEL', 'CONNECTIONS', 'CONNECTIONS_PER_VU', 'HOLD', 'ENDPOINT', 'RECORD', 'CHUNK_MS', 'BLOCK_SIZE',
            'STEPS', 'STEP_SECONDS', 'STEP_STREAMS', 'WS_VUS', 'HTTP_VUS', 'BAD_CLIENTS', 'FLOODERS')
            or k.startswith('FLACSTREAM_')},
        'server': server_figures(samples, a.k6_start, a.k6_end, audio_s, streams),
        'frame_latency_ms': latency(k6),
        'server_frame_latency': server_histogram(os.path.join(a.run_dir, 'metrics.txt'),
                                                 'flacstream_frame_latency_seconds'),
        'server_encode_seconds': server_histogram(os.path.join(a.run_dir, 'metrics.txt'),
                                                  'flacstream_encode_seconds'),
        'send_lag_ms': latency(k6, 'send_lag'),
        'streams_ok': metric(k6, 'streams_ok', 'passes'),
        'streams_failed': metric(k6, 'streams_ok', 'fails'),
        'k6_summary': k6_path,
        'server_samples': os.path.join(a.run_dir, 'samples.jsonl'),
    }
    expectations_ok = True
    minutes = minute_rows(k6, samples, a.k6_start)
    if minutes:
        report['minutes'] = minutes
    if a.scenario == 'burst':
        report['burst'] = {
            name: {'conversions': metric(k6, f'conversions{{api:{name}}}', 'count'),
                   'failures': metric(k6, f'conversion_failures{{api:{name}}}', 'count'),
                   'time_ms': latency(k6, f'conversion_time{{api:{name}}}')}
            for name in ('ws', 'convert')}
        wall = report['server'].get('wall_seconds')
        report['burst']['audio_seconds_per_second'] = round(audio_s / wall, 1) if wall else None
    if a.scenario == 'ramp':
        t0 = metric(k6, 'ramp_t0_ms', 'value')
        if t0:
            report['steps'], report['knee_streams'] = ramp_steps(k6, samples, t0)
    if a.scenario in ('slow-reader', 'flood'):
        report['memory'] = memory_flat(samples, a.k6_start, a.k6_end)
        expectations_ok &= report['memory']['flat'] is not False
        if a.scenario == 'flood':
            report['flooders'] = {
                kind: {'ok': metric(k6, f'flood_ok{{kind:{kind}}}', 'passes'),
                       'unexpected': metric(k6, f'flood_ok{{kind:{kind}}}', 'fails')}
                for kind in ('oversize', 'garbage', 'bad_text', 'fast')}
            report['flooders']['fast']['times_real_time'] = latency(k6, 'flood_fast_speed')
    bad_path = os.path.join(a.run_dir, 'bad-clients.json')
    if os.path.exists(bad_path):
        report['bad_clients'] = json.load(open(bad_path))
        expectations_ok &= bool(report['bad_clients'].get('ok'))
    report['expectations_passed'] = bool(expectations_ok)

    with open(a.out, 'w') as f:
        json.dump(report, f, indent=2)

    s = report['server']
    lines = [f"{a.scenario}: thresholds {'passed' if a.k6_status == 0 else 'FAILED'}"
             + ('' if expectations_ok else ', expectations FAILED')]
    if report['streams_ok'] is not None:
        lines.append(f"  streams ok {report['streams_ok']}, failed {report['streams_failed']}")
    if report['frame_latency_ms']:
        l = report['frame_latency_ms']
        lines.append(f"  frame latency ms p50 {l.get('p50')} p95 {l.get('p95')} p99 {l.get('p99')} max {l.get('max')}")
    sl = report['server_frame_latency']
    if sl:
        lines.append(f"  server-side frame latency ({sl['count']} frames): p50 <= {sl['p50_le_ms']} ms,"
                     f" p99 <= {sl['p99_le_ms']} ms, p99.9 <= {sl['p999_le_ms']} ms")
    if s:
        lines.append(f"  server cpu {s['cpu_seconds']} s over {s['wall_seconds']} s ({s['cpu_cores_busy']} cores busy)"
                     + (f", {s['cpu_seconds_per_audio_second']} cpu-s per audio-s" if 'cpu_seconds_per_audio_second' in s else ''))
        lines.append(f"  server rss idle {s['rss_idle_mib']} MiB, peak {s['rss_peak_mib']} MiB"
                     + (f", {s['rss_per_stream_kib']} KiB per stream ({streams} streams)" if 'rss_per_stream_kib' in s else ''))
    if 'burst' in report:
        for name in ('ws', 'convert'):
            b = report['burst'][name]
            lines.append(f"  {name}: {b['conversions']} conversions, {b['failures'] or 0} failed, time ms {b['time_ms']}")
        lines.append(f"  {report['burst']['audio_seconds_per_second']} audio-s converted per second")
    if len(report.get('minutes', [])) > 1:
        for row in report['minutes']:
            l = row['latency_ms']
            lines.append(f"  minute {row['minute']}: p50 {l.get('p50')} p99 {l.get('p99')} max {l.get('max')} ms, "
                         f"{row.get('cpu_cores_busy')} cores, rss {row.get('rss_peak_mib')} MiB")
    for row in report.get('steps', []):
        l = row['latency_ms']
        lines.append(f"  step {row['step']}: {row['streams']} streams, p50 {l.get('p50')} p99 {l.get('p99')} ms, "
                     f"{row['failed_streams']} failed, {row['cpu_cores_busy']} cores, rss {row['rss_peak_mib']} MiB")
    if a.scenario == 'ramp':
        lines.append(f"  knee: {report.get('knee_streams') or 'not reached'}")
    if 'memory' in report:
        m = report['memory']
        lines.append(f"  memory flat: {m['flat']} (peak first third {m.get('first_third_peak_mib')} MiB,"
                     f" last third {m.get('last_third_peak_mib')} MiB)")
    if 'flooders' in report:
        lines.append('  flooders: ' + ', '.join(f"{k} {v['ok']} ok/{v['unexpected']} unexpected"
                                                for k, v in report['flooders'].items()))
        speed = report['flooders']['fast']['times_real_time'] or {}
        lines.append(f"  fast flooder: {speed.get('p50')} x real time (median)")
    if 'bad_clients' in report:
        b = report['bad_clients']
        lines.append(f"  bad clients: {b.get('summary')} -> {'ok' if b.get('ok') else 'UNEXPECTED'}")
    print('\n'.join(lines))
    raise SystemExit(0 if expectations_ok else 1)


if __name__ == '__main__':
    main()
