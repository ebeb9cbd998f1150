"""Checks data.py against the protos, so that the hand-written map cannot drift silently.

- Every event subject and payload message in each events.proto, in order, matches
  data.EVENTS (referrals: the list below) and every feed message matches data.FEED.
- Every consumer link declared in an events.proto "What ... consumes" header matches
  data.CONSUMERS (partner systems aside), and the other way round.

Run on its own (`python3 tools/event-map/checks.py`) or through the generators.
"""
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import SERVICES, CONSUMERS, EVENTS, FEED, FEED_STREAM  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
CODE_CONSUMERS = ('assessments', 'delivery', 'evaluation')  # catalogued in data.EVENTS
# Every service declares what it consumes in its events.proto header.
DECLARING = ('referrals',) + CODE_CONSUMERS


def proto_events(root, rel):
    """(subject, message) for each event message in an events/feed proto, in order.

    An event message is one whose leading comment starts with its subject in backticks.
    """
    out = []
    comment = []
    for line in open(os.path.join(root, rel)).read().split('\n'):
        s = line.strip()
        if s.startswith('//'):
            comment.append(s[2:].strip())
            continue
        m = re.match(r'message (\w+) \{', s)
        if m and comment:
            m2 = re.match(r'`(hearth\.[a-z]+\.v1\.[a-z_.]+)`', comment[0])
            if m2:
                out.append((m2.group(1), m.group(1)))
        comment = []
    return out


def referral_subjects(root):
    return [s for s, _ in proto_events(root, SERVICES['referrals']['file'])]


def all_subjects(root):
    subs = set(referral_subjects(root))
    for svc in CODE_CONSUMERS:
        subs |= {s for s, _ in proto_events(root, SERVICES[svc]['file'])}
    return subs


def consumes_section(root, rel):
    """The comment lines of the header's 'What ... consumes' list."""
    lines = open(os.path.join(root, rel)).read().split('\n')
    start = next(i for i, l in enumerate(lines) if re.match(r'^// What (this service|evaluation) consumes', l))
    out = []
    for l in lines[start + 1:]:
        if not l.startswith('//'):
            break
        out.append(l[2:].strip())
    return out


# Prose in a consumes list that stands for subjects.
ALIASES = {
    'the five decision events': ['referral.accepted', 'referral.signposted', 'referral.redirected',
                                 'referral.declined', 'referral.withdrawn'],
}


def declared(root):
    """{(consumer, subject)} from every events.proto consumes header."""
    subjects = all_subjects(root)
    pairs = set()
    for consumer in DECLARING:
        prefix = None
        for line in consumes_section(root, SERVICES[consumer]['file']):
            m = re.match(r'^- (referrals|assessments|delivery): ', line)
            if m:
                prefix = f'hearth.{m.group(1)}.v1.'
            tokens = re.findall(r'`([^`]+)`', line)
            for alias, subs in ALIASES.items():
                if alias in line:
                    tokens += subs
            for t in tokens:
                m = re.match(r'^(hearth\.[a-z]+\.v1\.)([a-z_]+\.[a-z_*]+)$', t)
                if m:
                    prefix, short = m.group(1), m.group(2)
                elif re.match(r'^[a-z_]+\.[a-z_*]+$', t) and prefix:
                    short = t
                else:
                    continue
                if short.endswith('.*'):
                    ent = short[:-1]
                    hits = {s for s in subjects if s.startswith(prefix + ent)}
                    if not hits:
                        raise SystemExit(f'{consumer}: `{t}` matches no subject')
                    pairs |= {(consumer, s) for s in hits}
                elif prefix + short in subjects:
                    pairs.add((consumer, prefix + short))
                # else: an event this service publishes as an effect, e.g. `enrolment.withdrawn`
    # A service never consumes its own events (effects named in its own list).
    return {(c, s) for c, s in pairs if not s.startswith(f'hearth.{c}.v1.')}


def run(root=ROOT):
    problems = []
    # events and messages, in proto order
    for svc in CODE_CONSUMERS:
        want = proto_events(root, SERVICES[svc]['file'])
        have = [(e[0], e[1]) for e in EVENTS[svc]]
        if want != have:
            problems.append(f'{svc}: data.EVENTS differs from {SERVICES[svc]["file"]}:\n'
                            f'  only in proto: {[w for w in want if w not in have]}\n'
                            f'  only in data:  {[h for h in have if h not in want]}\n'
                            f'  (or the order differs)')
    want = [(s.replace('hearth.evaluation.v1.feed.', ''), m)
            for s, m in proto_events(root, FEED_STREAM['file'])]
    have = [(f[0], f[1]) for f in FEED]
    if want != have:
        problems.append(f'feed: data.FEED differs from {FEED_STREAM["file"]}: '
                        f'{set(want) ^ set(have)} (or the order differs)')
    # every subject has an entry in CONSUMERS
    subjects = all_subjects(root)
    if set(CONSUMERS) != subjects:
        problems.append(f'CONSUMERS keys differ from the protos\' subjects: {set(CONSUMERS) ^ subjects}')
    # consumer links
    want = declared(root)
    have = {(c, s) for s, cs in CONSUMERS.items() for c, _ in cs if c in DECLARING}
    for c, s in sorted(want - have):
        problems.append(f'declared in {SERVICES[c]["file"]} but not in data.CONSUMERS: {c} <- {s}')
    for c, s in sorted(have - want):
        problems.append(f'in data.CONSUMERS but not declared in {SERVICES[c]["file"]}: {c} <- {s}')
    if problems:
        raise SystemExit('event-map checks failed:\n- ' + '\n- '.join(problems))
    return len(want)


if __name__ == '__main__':
    n = run(sys.argv[1] if len(sys.argv) > 1 else ROOT)
    print(f'ok: data.py matches the protos ({n} declared consumer links)')
