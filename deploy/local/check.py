#!/usr/bin/env python3
"""Checks what the rehearsal's clients sent against what the replicas stored,
and writes the rehearsal's JSON summary and a short human one (called by
deploy/local/run.sh after both k6 phases).

For every recorded session a client opened (the `REHEARSAL ` records of
deploy/local/rehearsal.js):

* asks each replica directly, `GET /api/audio/sessions/{id}`: exactly one may
  answer 200 (the one that served it);
* downloads the recording from that replica, tests it with `flac -t`, decodes
  it with `flac -d` to raw PCM and compares it, byte for byte, with the audio
  the client sent (rebuilt from the excerpt, the client's offset and the
  session's first sample);
* checks that nothing acknowledged was lost: the stored sample count is at
  least the largest `samples_durable` and `samples_received` any ack or
  `session` message reported, and equals the `done`'s count;
* for a client that continued in new sessions after a drain, that the
  sessions follow each other without a gap or an overlap;
* asks nginx (`GET /api/audio/sessions/{id}` through it) whether the id still
  reaches the session's replica.

From nginx's access log (one JSON line per request) it takes which replica
each request reached: the distribution of sessions and /stream streams per
replica, and whether an open and every resume of a session reached the same
replica. Exit status 1 when an expectation failed.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

UUID = r'[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}'
RECORD_PREFIX = 'REHEARSAL '
# Below this many sessions a replica may get none by chance (3 * (2/3)^20 = 0.1 %),
# so "every replica served some" is reported but not required.
MIN_SESSIONS_FOR_SPREAD_CHECK = 20
DRAIN_CLOSE_CODES = (1001, 1012)
HTTP_TIMEOUT_SECONDS = 10

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url):
    """(status, body bytes) of a GET; status 0 when nothing answered."""
    try:
        with OPENER.open(url, timeout=HTTP_TIMEOUT_SECONDS) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b''


def load_records(path):
    out = []
    if not os.path.exists(path):
        return out
    for line in open(path, errors='replace'):
        if RECORD_PREFIX not in line:
            continue
        text = line.strip()
        try:
            text = json.loads(text).get('msg', text)  # --log-format json
        except (ValueError, AttributeError):
            pass
        text = text[text.index(RECORD_PREFIX) + len(RECORD_PREFIX):]
        try:
            out.append(json.loads(text))
        except ValueError:
            # The text log format quotes the message: msg="REHEARSAL {\"kind\"…}"
            out.append(json.loads(text.rstrip().rsplit('" source=', 1)[0].encode().decode('unicode_escape')))
    return out


def load_access(path, since, until):
    out = []
    if not os.path.exists(path):
        return out
    for line in open(path, errors='replace'):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        # A WebSocket is logged when it ends: keep requests that ended after the phase began.
        if since <= r['msec'] <= until:
            out.append(r)
    return out


def request_session(uri):
    m = re.match(r'^/api/(?:ws/audio|audio/sessions)/(' + UUID + ')', uri)
    if m:
        return m.group(1).lower()
    m = re.search(r'[?&]session_id=(' + UUID + ')', uri)
    return m.group(1).lower() if m else None


def final_upstream(r):
    """The replica that answered: nginx lists every one it tried, the last answered."""
    ups = [u.strip() for u in r.get('upstream', '').split(',') if u.strip() and u.strip() != '-']
    return ups[-1] if ups else None


class Excerpt:
    def __init__(self, path, channels):
        self.pcm = open(path, 'rb').read()
        self.frame = 2 * channels

    def slice(self, offset, start, count):
        n = len(self.pcm)
        out = bytearray()
        p = (offset + start * self.frame) % n
        left = count * self.frame
        while left:
            take = min(left, n - p)
            out += self.pcm[p:p + take]
            left -= take
            p = (p + take) % n
        return bytes(out)


def decode(flac_path, raw_path):
    """(ok, message) of flac -t, then decodes to raw s16le."""
    t = subprocess.run(['flac', '--silent', '--test', flac_path], capture_output=True, text=True)
    if t.returncode != 0:
        return False, f'flac -t: {t.stderr.strip()[-300:]}'
    d = subprocess.run(['flac', '--silent', '--decode', '--force', '--force-raw-format', '--endian=little',
                        '--sign=signed', '-o', raw_path, flac_path], capture_output=True, text=True)
    if d.returncode != 0:
        return False, f'flac -d: {d.stderr.strip()[-300:]}'
    return True, 'ok'


class Checker:
    def __init__(self, args):
        self.args = args
        self.ports = [int(p) for p in args.ports.split(',')]
        self.replica_of = {f'127.0.0.1:{p}': i + 1 for i, p in enumerate(self.ports)}
        self.speech = Excerpt(args.pcm_speech, 1)
        self.music = Excerpt(args.pcm_music, 2)
        self.failures = []
        os.makedirs(args.out_dir, exist_ok=True)

    def fail(self, phase, what):
        self.failures.append(f'{phase}: {what}')

    def replica(self, upstream):
        return self.replica_of.get(upstream)

    def stored(self, phase, seg, rec):
        """Finds the session on the replicas, fetches and verifies its recording."""
        sid = seg['session_id']
        out = {'session_id': sid}
        holders = []
        for i, port in enumerate(self.ports):
            status, body = get(f'http://127.0.0.1:{port}/api/audio/sessions/{sid}')
            if status == 200:
                holders.append((i + 1, json.loads(body)))
        out['replicas'] = [h[0] for h in holders]
        if len(holders) != 1:
            self.fail(phase, f'session {sid} is on replicas {out["replicas"]}, not on exactly one')
            return out
        replica, info = holders[0]
        out.update(replica=replica, status=info['status'], error=info.get('error'), catalog_samples=info['samples'])
        if info['status'] == 'live':
            self.fail(phase, f'session {sid} is still live after the run')
        status, body = get(f'http://127.0.0.1:{self.ports[replica - 1]}/api/audio/sessions/{sid}/audio')
        if status != 200:
            self.fail(phase, f'session {sid}: its recording answers {status}')
            return out
        flac = os.path.join(self.args.out_dir, f'{sid}.flac')
        raw = os.path.join(self.args.out_dir, f'{sid}.raw')
        with open(flac, 'wb') as f:
            f.write(body)
        ok, msg = decode(flac, raw)
        out['flac_test'] = msg
        if not ok:
            self.fail(phase, f'session {sid}: {msg}')
            return out
        pcm = open(raw, 'rb').read()
        os.remove(raw)
        frame = 2 * rec['channels']
        n = len(pcm) // frame
        out['stored_samples'] = n
        expected = self.speech.slice(rec['offset_bytes'], seg['start_sample'], n)
        if pcm != expected:
            first = next(i for i in range(0, len(pcm), frame) if pcm[i:i + frame] != expected[i:i + frame]) // frame
            out['first_wrong_sample'] = first
            self.fail(phase, f'session {sid}: stored sample {first} (stream sample {seg["start_sample"] + first}) '
                             'differs from what was sent')
        out['pcm_equal'] = pcm == expected
        if n < seg['acked_durable']:
            self.fail(phase, f'session {sid}: {seg["acked_durable"]} samples acknowledged durable, {n} stored')
        if n < seg['acked_received']:
            self.fail(phase, f'session {sid}: {seg["acked_received"]} samples acknowledged received, {n} stored')
        if seg.get('done') and seg['done']['samples'] != n:
            self.fail(phase, f'session {sid}: done says {seg["done"]["samples"]} samples, {n} stored')
        if info['samples'] != n:
            self.fail(phase, f'session {sid}: the catalog says {info["samples"]} samples, {n} stored')
        status, _ = get(f'http://{self.args.nginx}/api/audio/sessions/{sid}')
        out['via_nginx'] = status
        return out

    def phase(self, name, records, access):
        producers = [r for r in records if r['kind'] == 'producer']
        streams = [r for r in records if r['kind'] == 'stream']
        k6_producers = sum(1 for r in producers if not r.get('witness'))
        k6_streams = sum(1 for r in streams if not r.get('witness'))
        res = {'producers': len(producers), 'streams': len(streams),
               'witness_producers': len(producers) - k6_producers, 'witness_streams': len(streams) - k6_streams}
        if k6_producers != self.args.sessions or k6_streams != self.args.streams:
            self.fail(name, f'{k6_producers} producer and {k6_streams} stream records from k6, '
                            f'expected {self.args.sessions} and {self.args.streams} (a client did not finish?)')
        for r in records:
            for f in r.get('failures', []):
                self.fail(name, f'{"witness " if r.get("witness") else ""}{r["kind"]} {r["index"]}: {f}')

        # Routing, from nginx's log.
        by_session = collections.defaultdict(list)
        for a in access:
            sid = request_session(a['uri'])
            if sid:
                by_session[sid].append(a)
        stream_upstreams = collections.Counter(
            self.replica(final_upstream(a)) for a in access if a['uri'].startswith('/stream') and a['status'] == 101)

        sessions = []
        for r in producers:
            who = f'{"witness " if r.get("witness") else ""}client {r["index"]}'
            prev_end = 0
            for k, seg in enumerate(r['segments']):
                if not seg.get('session_id'):
                    continue
                s = self.stored(name, seg, r)
                s.update(client=r['index'], segment=k, witness=bool(r.get('witness')), start_sample=seg['start_sample'],
                         acked_received=seg['acked_received'], acked_durable=seg['acked_durable'],
                         done_samples=seg['done']['samples'] if seg.get('done') else None,
                         end=seg.get('end'), close_code=seg.get('close_code'),
                         resumes=seg.get('resumes', []), after_end=seg.get('after_end', []),
                         open_failures=seg.get('open_failures', []),
                         done_ms=seg.get('done_ms') or seg.get('dropped_ms'), opened_ms=seg.get('opened_ms'))
                reqs = by_session.get(seg['session_id'], [])
                # Requests the client made (the checker's own come after the phase window).
                s['routes'] = sorted({self.replica(final_upstream(a)) for a in reqs if final_upstream(a)})
                s['requests'] = [{'uri': a['uri'].split('?')[0], 'status': a['status'],
                                  'replica': self.replica(final_upstream(a)),
                                  'tried': [self.replica(u.strip()) for u in a['upstream'].split(',')
                                            if u.strip() in self.replica_of]} for a in reqs]
                if seg['start_sample'] != prev_end:
                    self.fail(name, f'{who}: session {seg["session_id"]} starts at sample '
                                    f'{seg["start_sample"]}, the previous one ended at {prev_end}')
                prev_end = seg['start_sample'] + s.get('stored_samples', 0)
                sessions.append(s)
            if r['outcome'] != 'incomplete' and prev_end != r['total_samples']:
                self.fail(name, f'{who}: its sessions hold {prev_end} of {r["total_samples"]} samples')
        res['sessions'] = sessions

        per_replica = collections.Counter(s.get('replica') for s in sessions)
        res['sessions_per_replica'] = {str(i + 1): per_replica.get(i + 1, 0) for i in range(len(self.ports))}
        res['streams_per_replica'] = {str(i + 1): stream_upstreams.get(i + 1, 0) for i in range(len(self.ports))}
        res['stored'] = {
            'sessions': len(sessions),
            'flac_test_ok': sum(1 for s in sessions if s.get('flac_test') == 'ok'),
            'pcm_equal': sum(1 for s in sessions if s.get('pcm_equal')),
            'samples_acked_durable': sum(s['acked_durable'] for s in sessions),
            'samples_acked_received': sum(s['acked_received'] for s in sessions),
            'samples_stored': sum(s.get('stored_samples', 0) for s in sessions),
            'min_stored_minus_durable': min((s.get('stored_samples', 0) - s['acked_durable'] for s in sessions), default=None),
            'reachable_via_nginx': sum(1 for s in sessions if s.get('via_nginx') == 200),
        }
        res['producer_outcomes'] = dict(collections.Counter(r['outcome'] for r in producers))
        res['stream_outcomes'] = dict(collections.Counter(
            f'{r["outcome"]}/{r.get("close_code") or "clean"}' for r in streams if not r.get('witness')))
        res['witness_stream_outcomes'] = dict(collections.Counter(
            f'{r["outcome"]}/{r.get("close_code")}' for r in streams if r.get('witness')))
        res['stream_failures'] = sum(1 for r in streams if r.get('failures'))
        if name == 'spread':
            self.spread_checks(res, sessions)
        else:
            self.restart_figures(res, sessions, producers)
        return res

    def spread_checks(self, res, sessions):
        resumed = [s for s in sessions if s['resumes']]
        res['resumes'] = {
            'sessions': len(resumed),
            'resumed_true': sum(1 for s in resumed if all(x.get('resumed') is True for x in s['resumes'])),
            'same_replica': sum(1 for s in resumed if len(s['routes']) == 1 and s['routes'] == [s.get('replica')]),
            'samples_resent': sum(x['left_at'] - x.get('samples_received', x['left_at'])
                                  for s in resumed for x in s['resumes']),
        }
        for s in sessions:
            if s['routes'] != [s.get('replica')]:
                self.fail('spread', f'session {s["session_id"]} on replica {s.get("replica")}: '
                                    f'its requests reached replicas {s["routes"]}')
            if s.get('via_nginx') != 200:
                self.fail('spread', f'session {s["session_id"]}: GET through nginx answers {s.get("via_nginx")}')
        if len(sessions) >= MIN_SESSIONS_FOR_SPREAD_CHECK and 0 in res['sessions_per_replica'].values():
            self.fail('spread', f'a replica served no session: {res["sessions_per_replica"]}')

    def restart_figures(self, res, sessions, producers):
        drained = [s for s in sessions if s['end'] == 'going_away']
        # A connection the drain ended without `done` (a server fault, listed
        # in the failures) is counted with the drained ones for what its
        # client saw afterwards.
        ended = [s for s in sessions if s['end'] in ('going_away', 'bare_disconnect')]
        res['drained_sessions'] = {
            'count': len(drained),
            # k6 sees no close code: a clean close (1000 or 1001) is null there; the
            # witness (witness.py) reads the code itself.
            'close_codes_witness': dict(collections.Counter(str(s['close_code']) for s in drained if s['witness'])),
            'close_codes_k6': dict(collections.Counter(
                'clean' if s['close_code'] is None else str(s['close_code']) for s in drained if not s['witness'])),
            'samples_flushed_beyond_durable_ack': sum((s['done_samples'] or 0) - s['acked_durable'] for s in drained),
            'bare_disconnects': sum(1 for s in sessions if s['end'] == 'bare_disconnect'),
            'bare_disconnect_close_codes': dict(collections.Counter(
                str(s['close_code']) for s in sessions if s['end'] == 'bare_disconnect')),
        }
        # What a drained producer saw when it came back (the first answer and the last).
        after = collections.Counter()
        first = collections.Counter()
        for s in ended:
            steps = [f'{x["http"]}{"/" + x["session"] if x.get("session") else ""}' for x in s['after_end']]
            if steps:
                first[steps[0]] += 1
            after[' -> '.join(collections.OrderedDict.fromkeys(steps))] += 1
        res['after_drain'] = {
            'first_answer': dict(first),
            'answer_sequences': dict(after),
            'clients': len(ended),
            'resumed_in_place': sum(1 for s in ended for x in s['after_end'] if isinstance(x.get('resume'), dict)),
            'continued_in_new_session': sum(1 for s in sessions if s['segment'] > 0),
            # From the drain's `done` to the next session's `session` message.
            'continue_gap_ms': gap_stats(sessions),
            'new_session_open_failures': dict(collections.Counter(
                re.sub(UUID, '<id>', f['why'])[:80] for s in sessions for f in s['open_failures'])),
        }
        for s in sessions:
            if s['end'] not in ('completed', 'going_away'):
                self.fail('restart', f'session {s["session_id"]} ended {s["end"]}')
            if s['end'] == 'going_away' and s['close_code'] not in DRAIN_CLOSE_CODES + ((None,) if not s['witness'] else ()):
                self.fail('restart', f'session {s["session_id"]}: going_away with close {s["close_code"]}')


def gap_stats(sessions):
    by_client = collections.defaultdict(dict)
    for s in sessions:
        if not s['witness']:
            by_client[s['client']][s['segment']] = s
    gaps = sorted(segs[k + 1]['opened_ms'] - segs[k]['done_ms'] for segs in by_client.values()
                  for k in segs if k + 1 in segs and segs[k].get('done_ms') and segs[k + 1].get('opened_ms'))
    if not gaps:
        return None
    return {'count': len(gaps), 'min': gaps[0], 'median': gaps[len(gaps) // 2], 'max': gaps[-1]}


def summary_lines(summary):
    lines = []
    for name in ('spread', 'restart'):
        p = summary.get(name)
        if not p:
            continue
        st = p['stored']
        lines.append(f'{name}: {p["producers"]} producers, {p["streams"]} /stream streams; '
                     f'sessions per replica {p["sessions_per_replica"]}, streams per replica {p["streams_per_replica"]}')
        lines.append(f'  producers {p["producer_outcomes"]}; streams {p["stream_outcomes"]}')
        lines.append(f'  recordings: {st["sessions"]} sessions, flac -t ok {st["flac_test_ok"]}, PCM equal to what was sent '
                     f'{st["pcm_equal"]}; samples acked durable {st["samples_acked_durable"]}, acked received '
                     f'{st["samples_acked_received"]}, stored {st["samples_stored"]} (min stored-durable '
                     f'{st["min_stored_minus_durable"]}); reachable through nginx {st["reachable_via_nginx"]}')
        if 'resumes' in p:
            r = p['resumes']
            lines.append(f'  resumes: {r["sessions"]} sessions left and resumed, resumed:true {r["resumed_true"]}, '
                         f'on the same replica {r["same_replica"]}, samples resent {r["samples_resent"]}')
        if 'drained_sessions' in p:
            d, a = p['drained_sessions'], p['after_drain']
            lines.append(f'  drained sessions {d["count"]}, close codes (witness) {d["close_codes_witness"]}, '
                         f'(k6) {d["close_codes_k6"]}; witness /stream {p["witness_stream_outcomes"]}; bare disconnects '
                         f'{d["bare_disconnects"]} (close codes {d["bare_disconnect_close_codes"]}); after the drain '
                         f'({a["clients"]} clients): first answer {a["first_answer"]}, sequences {a["answer_sequences"]}, '
                         f'resumed in place {a["resumed_in_place"]}, continued in a new session '
                         f'{a["continued_in_new_session"]} (done -> new session ms {a["continue_gap_ms"]}), '
                         f'refused opens {sum(a["new_session_open_failures"].values())}')
    for r in summary.get('restarts', []):
        lines.append(f'  replica {r["replica"]}: SIGTERM -> /readyz {r.get("readyz_after_term")}, exit {r.get("exit_code")} '
                     f'after {r.get("exit_seconds")} s, ready again after {r.get("ready_seconds")} s')
    lines.append('result: ' + ('OK' if not summary['failures'] else f'{len(summary["failures"])} FAILED'))
    lines += [f'  FAIL {f}' for f in summary['failures'][:40]]
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ports', required=True, help='the replicas\' ports, comma-separated, in order')
    ap.add_argument('--nginx', required=True, help='host:port')
    ap.add_argument('--access-log', required=True)
    ap.add_argument('--pcm-speech', required=True)
    ap.add_argument('--pcm-music', required=True)
    ap.add_argument('--sessions', type=int, required=True)
    ap.add_argument('--streams', type=int, required=True)
    ap.add_argument('--phase', action='append', default=[], metavar='NAME:RECORDS:SINCE:UNTIL',
                    help='a k6 phase: its name, its console output, its start and end (Unix seconds)')
    ap.add_argument('--restarts', help='run.sh\'s restarts.jsonl')
    ap.add_argument('--settings', help='JSON of run.sh\'s knobs, copied into the summary')
    ap.add_argument('--out-dir', required=True, help='where the recordings are downloaded')
    ap.add_argument('--summary', required=True)
    args = ap.parse_args()

    c = Checker(args)
    summary = {}
    if args.settings:
        summary['settings'] = json.loads(args.settings)
    for spec in args.phase:
        name, paths, since, until = spec.split(':')
        records = [r for path in paths.split(',') for r in load_records(path)]
        access = load_access(args.access_log, float(since), float(until))
        summary[name] = c.phase(name, records, access)
    if args.restarts and os.path.exists(args.restarts):
        summary['restarts'] = [json.loads(l) for l in open(args.restarts) if l.strip()]
        for r in summary['restarts']:
            if r.get('exit_code') != 0:
                c.fail('restart', f'replica {r["replica"]} exited {r.get("exit_code")} after SIGTERM')
            if not r.get('ready_seconds'):
                c.fail('restart', f'replica {r["replica"]} did not become ready again')
            if r.get('readyz_after_term') not in (503, 0):
                c.fail('restart', f'replica {r["replica"]}: /readyz answered {r.get("readyz_after_term")} while draining')
    summary['failures'] = c.failures
    with open(args.summary, 'w') as f:
        json.dump(summary, f, indent=1)
    print('\n'.join(summary_lines(summary)))
    sys.exit(1 if c.failures else 0)


if __name__ == '__main__':
    main()
